// src/arch/sanitizer.h: context-switch annotations for AddressSanitizer and
// ThreadSanitizer, compiled to nothing in ordinary builds.
//
// ASan must be told which stack is live after each switch
// (__sanitizer_start_switch_fiber before, __sanitizer_finish_switch_fiber
// after); TSan needs one fiber object per context and a
// __tsan_switch_to_fiber before each switch. The scheduler calls these
// through SanFiber so that no #if appears in scheduler code.
#pragma once

#include <cstddef>

#if defined(__SANITIZE_ADDRESS__)
#define GORO_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define GORO_ASAN 1
#endif
#endif
#if defined(__SANITIZE_THREAD__)
#define GORO_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define GORO_TSAN 1
#endif
#endif

#ifndef GORO_ASAN
#define GORO_ASAN 0
#endif
#ifndef GORO_TSAN
#define GORO_TSAN 0
#endif

#if GORO_ASAN
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#include <sanitizer/lsan_interface.h>
#endif
#if GORO_TSAN
#include <sanitizer/tsan_interface.h>
#endif

namespace goro::arch {

// Sanitizer state of one context (a goroutine, or a worker's own stack).
struct SanFiber {
  const void* stack_bottom = nullptr;  // lowest address of the stack (ASan)
  std::size_t stack_size = 0;
  void* tsan = nullptr;                // TSan fiber object
};

inline constexpr bool kAsan = GORO_ASAN != 0;
inline constexpr bool kTsan = GORO_TSAN != 0;

// Called on the running context just before switching to `to`. `fake_stack`
// receives ASan's fake-stack handle of the context being left; pass nullptr
// when that context is finished and will never run again.
inline void san_start_switch(void** fake_stack, const SanFiber& to) {
#if GORO_ASAN
  __sanitizer_start_switch_fiber(fake_stack, to.stack_bottom, to.stack_size);
#else
  (void)fake_stack;
#endif
#if GORO_TSAN
  __tsan_switch_to_fiber(to.tsan, 0);
#else
  (void)to;
#endif
}

// Called first thing in the context that was switched to. If `from` is
// non-null it learns the bounds of the stack that was left (used once to
// learn a worker thread's own stack).
inline void san_finish_switch(void* fake_stack, SanFiber* from) {
#if GORO_ASAN
  const void* bottom = nullptr;
  std::size_t size = 0;
  __sanitizer_finish_switch_fiber(fake_stack, &bottom, &size);
  if (from != nullptr) {
    from->stack_bottom = bottom;
    from->stack_size = size;
  }
#else
  (void)fake_stack;
  (void)from;
#endif
}

inline void* san_create_fiber() {
#if GORO_TSAN
  return __tsan_create_fiber(0);
#else
  return nullptr;
#endif
}
inline void* san_current_fiber() {
#if GORO_TSAN
  return __tsan_get_current_fiber();
#else
  return nullptr;
#endif
}
inline void san_destroy_fiber(void* fiber) {
#if GORO_TSAN
  if (fiber != nullptr) __tsan_destroy_fiber(fiber);
#else
  (void)fiber;
#endif
}

// A goroutine that exits never returns from the frames it exited through,
// so ASan's poisoned redzones of those frames stay behind; a stack must be
// unpoisoned before it is reused.
inline void san_unpoison_stack(const void* p, std::size_t n) {
#if GORO_ASAN
  __asan_unpoison_memory_region(p, n);
#else
  (void)p;
  (void)n;
#endif
}

// LeakSanitizer does not scan mmap'd memory; goroutine stacks hold the only
// pointers to much of a blocked goroutine's heap, so they are registered.
inline void san_register_root(const void* p, std::size_t n) {
#if GORO_ASAN
  __lsan_register_root_region(p, n);
#else
  (void)p;
  (void)n;
#endif
}

}  // namespace goro::arch
