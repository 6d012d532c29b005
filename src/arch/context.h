// src/arch/context.h: the one interface to the per-architecture context
// switch (ctx_x86_64_sysv.S, ctx_aarch64_aapcs.S).
//
// A context is just a saved stack pointer: goro_ctx_switch pushes the
// callee-saved registers of the ABI on the current stack, stores the stack
// pointer in *save, loads `load` as the new stack pointer, pops that
// context's registers and returns into it. `transfer` arrives as the return
// value of the goro_ctx_switch call being resumed (or as the first argument of
// a fresh context's entry function), so a switch can hand over one pointer
// without any thread-local state.
#pragma once

#include <cstddef>
#include <cstdint>

extern "C" {
void* goro_ctx_switch(void** save, void* load, void* transfer);
// Calls fn(arg) on another stack, whose highest address is `top` (16-byte
// aligned), and returns on the caller's (goro::blocking's system stack).
// Unwinders walk from fn's frames back to the caller's.
void goro_call_on_stack(void* arg, void (*fn)(void*), void* top);
}

namespace goro::arch {

// Entry of a fresh context. It must never return: it ends by switching away.
using EntryFn = void (*)(void* transfer, void* arg);

// Prepares a fresh context on the stack whose highest address is `stack_top`
// (16-byte aligned). The first switch into the returned stack pointer calls
// entry(transfer, arg) on that stack.
void* make_context(void* stack_top, EntryFn entry, void* arg);

// The registers of a saved context, in DWARF numbering, for unwinding a
// parked goroutine's stack (goroutine dumps). `frame` points at a copy of the
// kSavedFrameBytes at the saved stack pointer `sp`; `pc` is the return
// address into the code that switched away.
struct SavedRegs {
  int n = 0;
  int num[16] = {};
  std::uint64_t val[16] = {};
  std::uint64_t pc = 0;
};
extern const std::size_t kSavedFrameBytes;
void saved_regs(const void* frame, std::uintptr_t sp, SavedRegs& out);

}  // namespace goro::arch
