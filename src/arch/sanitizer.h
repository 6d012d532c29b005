// src/arch/sanitizer.h: context-switch annotations for AddressSanitizer and
// ThreadSanitizer, compiled to nothing in ordinary builds.
//
// ASan must be told which stack is live after each switch
// (__sanitizer_start_switch_fiber before, __sanitizer_finish_switch_fiber
// after); TSan needs one fiber object per context and a
// __tsan_switch_to_fiber before each switch. The scheduler calls these
// through SanFiber so that no #if appears in scheduler code.
//
// ThreadSanitizer and the user's races (Go's race detector does the same:
// its runtime is not instrumented, and only the synchronization a Go
// program can see creates happens-before edges):
//  - Switching goroutines creates no edge (__tsan_switch_to_fiber_no_sync),
//    and a goroutine's fiber starts with an empty history (it is created
//    while its creator ignores synchronization).
//  - Runtime code runs inside a SanRuntimeScope: TSan ignores its memory
//    accesses and its synchronization (run queues, timer heaps, the
//    scheduler lock, futexes, channel locks), which would otherwise order
//    any two goroutines that ever touched the same scheduler state. Every
//    entry point from user code into src/ opens one; g0 (the scheduler loop)
//    runs in one for life.
//  - The synchronization the user can see is stated explicitly, inside a
//    scope, with san_acquire / san_release on the object's address:
//    channel operations (per buffer slot, as Go's chanbuf, and on the channel
//    for hand-offs to a parked goroutine), close, Mutex, RWMutex, WaitGroup,
//    Semaphore, Cond (through its Mutex), context cancellation, the spawn of
//    a goroutine, goroutine::blocking, socket writes and reads (Go's ioSync),
//    and exit (every goroutine's last action before the static destructors).
//  - Memory that the runtime hands from one goroutine to an unrelated later
//    one gets a fresh shadow: a stack is re-mapped (inside a scope, which
//    makes TSan reset its shadow) before a new goroutine runs on it, and
//    closures are heap-allocated in TSan builds.
//  - Timer callbacks run san_quiet(): a timer's send on its channel or an
//    after_func's spawn states no edge (the runtime, not a goroutine, acts).
#pragma once

#include <atomic>
#include <cstddef>
#include <type_traits>

#include <sys/mman.h>
#include <unistd.h>

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
extern "C" {
// Dynamic annotations exported by the TSan runtime (not in its header).
void AnnotateIgnoreSyncBegin(const char* file, int line);
void AnnotateIgnoreSyncEnd(const char* file, int line);
void __tsan_ignore_thread_begin();
void __tsan_ignore_thread_end();
}
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
inline constexpr unsigned kTsanNoSync = 1;  // __tsan_switch_to_fiber_no_sync

// ---- TSan: runtime scopes and explicit edges (see the header comment)
// Scopes nest (an entry point may call another); only the outermost one
// tells TSan, so that inside any scope this fiber's ignore counters are
// exactly one and san_acquire/san_release can lift the sync-ignore. The
// depth belongs to the fiber: the scheduler saves it across every switch
// (san_depth_save / san_depth_restore) and a new fiber starts at 1.
#if GORO_TSAN
// Relaxed atomics, not ints: one thread's fibers share these thread-locals,
// and TSan would otherwise take their accesses for races between fibers.
inline thread_local std::atomic<int> san_depth{0};
inline void san_tsan_ignore_begin() {
  __tsan_ignore_thread_begin();
  AnnotateIgnoreSyncBegin(__FILE__, __LINE__);
}
inline void san_tsan_ignore_end() {
  AnnotateIgnoreSyncEnd(__FILE__, __LINE__);
  __tsan_ignore_thread_end();
}
#endif
inline void san_runtime_enter() {
#if GORO_TSAN
  if (san_depth.fetch_add(1, std::memory_order_relaxed) == 0) san_tsan_ignore_begin();
#endif
}
inline void san_runtime_leave() {
#if GORO_TSAN
  if (san_depth.fetch_sub(1, std::memory_order_relaxed) == 1) san_tsan_ignore_end();
#endif
}
inline int san_depth_save() {
#if GORO_TSAN
  return san_depth.load(std::memory_order_relaxed);
#else
  return 0;
#endif
}
inline void san_depth_restore(int d) {
#if GORO_TSAN
  san_depth.store(d, std::memory_order_relaxed);
#else
  (void)d;
#endif
}
struct SanRuntimeScope {
  SanRuntimeScope() { san_runtime_enter(); }
  ~SanRuntimeScope() { san_runtime_leave(); }
  SanRuntimeScope(const SanRuntimeScope&) = delete;
  SanRuntimeScope& operator=(const SanRuntimeScope&) = delete;
};

#if GORO_TSAN
inline thread_local std::atomic<int> san_quiet_depth{0};  // atomic: see san_depth
#endif
// While alive, san_acquire/san_release state nothing (timer callbacks).
struct SanQuiet {
#if GORO_TSAN
  SanQuiet() { san_quiet_depth.fetch_add(1, std::memory_order_relaxed); }
  ~SanQuiet() { san_quiet_depth.fetch_sub(1, std::memory_order_relaxed); }
#else
  SanQuiet() {}  // user-provided: no unused-variable warning where it is a no-op
  ~SanQuiet() {}
#endif
  SanQuiet(const SanQuiet&) = delete;
  SanQuiet& operator=(const SanQuiet&) = delete;
};
inline bool san_quiet() {
#if GORO_TSAN
  return san_quiet_depth.load(std::memory_order_relaxed) > 0;
#else
  return true;
#endif
}

// Explicit happens-before edges, called inside a SanRuntimeScope (they lift
// the scope's sync-ignore for the one annotation). release: what the current
// goroutine did so far happens before whatever acquires `addr` later.
inline void san_release(const void* addr) {
#if GORO_TSAN
  if (san_quiet() || addr == nullptr) return;
  AnnotateIgnoreSyncEnd(__FILE__, __LINE__);
  __tsan_release(const_cast<void*>(addr));
  AnnotateIgnoreSyncBegin(__FILE__, __LINE__);
#else
  (void)addr;
#endif
}
inline void san_acquire(const void* addr) {
#if GORO_TSAN
  if (san_quiet() || addr == nullptr) return;
  AnnotateIgnoreSyncEnd(__FILE__, __LINE__);
  __tsan_acquire(const_cast<void*>(addr));
  AnnotateIgnoreSyncBegin(__FILE__, __LINE__);
#else
  (void)addr;
#endif
}
// Both: a channel slot or hand-off that orders the operations on it.
inline void san_sync(const void* addr) {
  san_acquire(addr);
  san_release(addr);
}

// A one-shot edge on a fresh heap address (TSan keys edges by address, so a
// reused address would carry old histories): begin releases, end acquires
// and frees. Null outside TSan builds.
// The field that holds an edge between san_edge_begin and san_edge_end:
// a pointer in TSan builds, an empty placeholder elsewhere.
struct NoSanEdge {
  NoSanEdge& operator=(void*) { return *this; }
  operator void*() const { return nullptr; }  // NOLINT: stands in for a null pointer
};
using SanEdgeField = std::conditional_t<kTsan, void*, NoSanEdge>;

inline void* san_edge_begin() {
#if GORO_TSAN
  if (san_quiet()) return nullptr;
  void* e = ::operator new(1);
  san_release(e);
  return e;
#else
  return nullptr;
#endif
}
inline void san_edge_end(void* e) {
#if GORO_TSAN
  if (e == nullptr) return;
  san_acquire(e);
  ::operator delete(e);
#else
  (void)e;
#endif
}

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
  __tsan_switch_to_fiber(to.tsan, kTsanNoSync);
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

// ASan only: the running context moves to another stack for one call
// (goro_call_on_stack) and back. Before the move: san_stack_leave with the
// new stack's bounds (`fake_stack` receives the left stack's fake-stack
// handle, or pass nullptr when leaving a stack for good); first thing after
// it: san_stack_arrive with that handle (nullptr on a fresh stack), which
// may return the bounds of the stack left. TSan needs nothing: the call
// stays in the same fiber.
inline void san_stack_leave(void** fake_stack, const void* bottom, std::size_t size) {
#if GORO_ASAN
  __sanitizer_start_switch_fiber(fake_stack, bottom, size);
#else
  (void)fake_stack;
  (void)bottom;
  (void)size;
#endif
}
inline void san_stack_arrive(void* fake_stack, const void** old_bottom, std::size_t* old_size) {
#if GORO_ASAN
  __sanitizer_finish_switch_fiber(fake_stack, old_bottom, old_size);
#else
  (void)fake_stack;
  (void)old_bottom;
  (void)old_size;
#endif
}

// A goroutine's fiber: created inside the caller's scope (sync ignored, so
// it inherits no history), and put in a scope of its own at once, because
// the first code it runs is the scheduler's (the tail of the switch and
// g_entry, which leaves the scope before the goroutine's function).
inline void* san_create_fiber() {
#if GORO_TSAN
  void* f = __tsan_create_fiber(0);
  void* cur = __tsan_get_current_fiber();
  __tsan_switch_to_fiber(f, kTsanNoSync);
  san_tsan_ignore_begin();  // its depth is set to 1 when it first runs (g_entry)
  __tsan_switch_to_fiber(cur, kTsanNoSync);
  return f;
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
// Destroys an exited goroutine's fiber, which ended inside a scope: TSan
// requires a finished fiber's ignores to be balanced.
inline void san_destroy_fiber(void* fiber) {
#if GORO_TSAN
  if (fiber == nullptr) return;
  void* cur = __tsan_get_current_fiber();
  __tsan_switch_to_fiber(fiber, kTsanNoSync);
  san_tsan_ignore_end();
  __tsan_switch_to_fiber(cur, kTsanNoSync);
  __tsan_destroy_fiber(fiber);
#else
  (void)fiber;
#endif
}

// Replaces [p, p+n) with fresh zero pages; inside a scope, TSan's mmap
// interceptor resets the range's shadow (outside one it would record a write).
inline bool san_remap(void* p, std::size_t n) {
  san_runtime_enter();
  bool ok = ::mmap(p, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED | MAP_NORESERVE, -1, 0) == p;
  san_runtime_leave();
  return ok;
}

// Gives a pooled stack's pages back to the kernel (stack trimming). In TSan
// builds by re-mapping, which also resets the shadow: a stack without
// resident pages is then known to have a clean shadow (san_fresh_stack).
inline void san_release_stack_pages(void* lo, std::size_t n) {
#if GORO_TSAN
  san_remap(lo, n);
#else
  ::madvise(lo, n, MADV_DONTNEED);
#endif
}

// TSan: gives a stack about to carry a new goroutine a fresh shadow, so
// the new goroutine's accesses are not compared with those of the dead
// goroutines that used it before (their fibers share no history with it).
// Re-mapping inside a scope makes TSan's mmap interceptor reset the range's
// shadow. Only the part that holds pages (mincore: from the lowest resident
// page to the top, where a stack is used) is re-mapped: re-mapping and
// resetting whole stacks made spawning several times slower. Returns false
// if the mapping failed (the stack is then unusable).
inline bool san_fresh_stack(void* lo, std::size_t n) {
#if GORO_TSAN
  static const std::size_t page = static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
  auto* base = static_cast<unsigned char*>(lo);
  const std::size_t pages = n / page;
  std::size_t first = pages;  // lowest resident page
  unsigned char vec[256];
  for (std::size_t at = 0; at < pages && first == pages; at += sizeof vec) {
    std::size_t k = pages - at < sizeof vec ? pages - at : sizeof vec;
    if (::mincore(base + at * page, k * page, vec) != 0) {
      first = at;  // cannot tell: re-map from here up
      break;
    }
    for (std::size_t i = 0; i < k; ++i) {
      if ((vec[i] & 1) != 0) {
        first = at + i;
        break;
      }
    }
  }
  if (first == pages) return true;  // nothing resident: no shadow to reset (see san_release_stack_pages)
  return san_remap(base + first * page, n - first * page);
#else
  (void)lo;
  (void)n;
  return true;
#endif
}

// Runs f with the TSan fiber `fiber` current (a parked goroutine's, at exit).
template <class F>
void san_as_fiber(void* fiber, F&& f) {
#if GORO_TSAN
  if (fiber == nullptr) return;
  void* cur = __tsan_get_current_fiber();
  __tsan_switch_to_fiber(fiber, kTsanNoSync);
  f();
  __tsan_switch_to_fiber(cur, kTsanNoSync);
#else
  (void)fiber;
  (void)f;
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
