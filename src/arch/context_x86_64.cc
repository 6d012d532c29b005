// Builds the initial frame of a fresh x86-64 context; the layout is the one
// documented in ctx_x86_64_sysv.S.
#include "arch/context.h"

#include <cstdint>

extern "C" void goro_ctx_trampoline();

namespace goro::arch {

namespace {
constexpr std::size_t kFrameWords = 8;  // control words, r15..r12, rbx, rbp, ret
constexpr std::uint32_t kMxcsrDefault = 0x1F80;  // all exceptions masked, round to nearest
constexpr std::uint16_t kX87CwDefault = 0x037F;  // ditto for x87, 64-bit precision
}  // namespace

void* make_context(void* stack_top, EntryFn entry, void* arg) {
  // After the 8 pops and `ret`, rsp = frame + 64 must be 16-byte aligned so
  // that the trampoline's `call` enters `entry` with the ABI's alignment.
  auto top = reinterpret_cast<std::uintptr_t>(stack_top) & ~std::uintptr_t{15};
  auto* frame = reinterpret_cast<std::uint64_t*>(top - 16 - kFrameWords * 8);
  frame[0] = kMxcsrDefault | (std::uint64_t{kX87CwDefault} << 32);
  frame[1] = 0;                                          // r15
  frame[2] = 0;                                          // r14
  frame[3] = reinterpret_cast<std::uint64_t>(arg);       // r13
  frame[4] = reinterpret_cast<std::uint64_t>(entry);     // r12
  frame[5] = 0;                                          // rbx
  frame[6] = 0;                                          // rbp
  frame[7] = reinterpret_cast<std::uint64_t>(&goro_ctx_trampoline);
  return frame;
}

const std::size_t kSavedFrameBytes = kFrameWords * 8;

// DWARF numbers: rbx 3, rbp 6, rsp 7, r12-r15 12-15.
void saved_regs(const void* frame, std::uintptr_t sp, SavedRegs& out) {
  const auto* w = static_cast<const std::uint64_t*>(frame);
  static constexpr int kNum[] = {15, 14, 13, 12, 3, 6};  // words 1..6
  out.n = 0;
  for (int i = 0; i < 6; ++i) {
    out.num[out.n] = kNum[i];
    out.val[out.n++] = w[1 + i];
  }
  out.num[out.n] = 7;
  out.val[out.n++] = sp + kFrameWords * 8;  // after the `ret`
  out.pc = w[7];
}

}  // namespace goro::arch
