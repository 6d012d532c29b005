// src/sched/futex.h: the Linux futex, the one primitive every OS-level wait
// in goro ends in (idle workers, plain threads blocked on goro primitives,
// the internal Lock).
#pragma once

#include <linux/futex.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>

namespace goro::rt {

// Sleeps while *word == expected, at most until abs_deadline_ns
// (CLOCK_MONOTONIC) when it is >= 0. Spurious returns are possible; callers
// re-check their condition.
inline void futex_wait(std::atomic<std::uint32_t>* word, std::uint32_t expected,
                       std::int64_t abs_deadline_ns = -1) {
  timespec ts{};
  timespec* tsp = nullptr;
  if (abs_deadline_ns >= 0) {
    ts.tv_sec = abs_deadline_ns / 1000000000;
    ts.tv_nsec = abs_deadline_ns % 1000000000;
    tsp = &ts;
  }
  // FUTEX_WAIT_BITSET takes an absolute CLOCK_MONOTONIC deadline.
  syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(word), FUTEX_WAIT_BITSET_PRIVATE, expected,
          tsp, nullptr, FUTEX_BITSET_MATCH_ANY);
}

inline void futex_wake(std::atomic<std::uint32_t>* word, int n) {
  syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(word), FUTEX_WAKE_PRIVATE, n, nullptr,
          nullptr, 0);
}

inline std::int64_t mono_now_ns() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return std::int64_t(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

// now + rel_ns, saturated at INT64_MAX (a deadline that far never comes:
// Go's when() does the same, so the largest duration never wraps around to
// the past). A negative rel_ns counts as 0.
inline std::int64_t deadline_after_ns(std::int64_t rel_ns) {
  std::int64_t now = mono_now_ns();
  if (rel_ns <= 0) return now;
  return rel_ns > INT64_MAX - now ? INT64_MAX : now + rel_ns;
}

// Tells the CPU we are in a spin loop (x86 `pause`, AArch64 `yield`).
inline void cpu_relax() {
#if defined(__x86_64__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#endif
}

}  // namespace goro::rt
