// Builds the initial frame of a fresh AArch64 context; the layout is the one
// documented in ctx_aarch64_aapcs.S.
#include "arch/context.h"

#include <cstdint>

extern "C" void goro_ctx_trampoline();

namespace goro::arch {

void* make_context(void* stack_top, EntryFn entry, void* arg) {
  auto top = reinterpret_cast<std::uintptr_t>(stack_top) & ~std::uintptr_t{15};
  auto* frame = reinterpret_cast<std::uint64_t*>(top - 176);
  for (int i = 0; i < 22; ++i) frame[i] = 0;
  frame[0] = reinterpret_cast<std::uint64_t>(entry);                 // x19
  frame[1] = reinterpret_cast<std::uint64_t>(arg);                   // x20
  frame[11] = reinterpret_cast<std::uint64_t>(&goro_ctx_trampoline);  // x30
  frame[20] = 0;                                                     // FPCR: IEEE defaults
  return frame;
}

const std::size_t kSavedFrameBytes = 176;

// DWARF numbers: x19-x30 are 19-30, sp 31.
void saved_regs(const void* frame, std::uintptr_t sp, SavedRegs& out) {
  const auto* w = static_cast<const std::uint64_t*>(frame);
  out.n = 0;
  for (int i = 0; i < 12; ++i) {
    out.num[out.n] = 19 + i;
    out.val[out.n++] = w[i];
  }
  out.num[out.n] = 31;
  out.val[out.n++] = sp + kSavedFrameBytes;
  out.pc = w[11];  // x30: where the switch returns
}

}  // namespace goro::arch
