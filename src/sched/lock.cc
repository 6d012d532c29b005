// Slow paths of goro::detail::RawMutex (see raw_mutex.h for the protocol).
#include <goro/detail/raw_mutex.h>

#include "sched/futex.h"
#include "sched/sched.h"

namespace goro::detail {

void RawMutex::lock_slow() {
  // Spin with exponential back-off: fewer attempts on the contended cache
  // line, which the holder needs too.
  for (int round = 0, pauses = 1; round < 10; ++round, pauses *= 2) {
    for (int i = 0; i < pauses; ++i) rt::cpu_relax();
    std::uint32_t c = 0;
    if (state_.load(std::memory_order_relaxed) == 0 &&
        state_.compare_exchange_weak(c, 1, std::memory_order_acquire))
      return;
  }
  // Mark contended (2) so that the holder's unlock wakes us.
  if (state_.exchange(2, std::memory_order_acquire) == 0) return;
  rt::lock_wait_begin();  // the monitor must not take this for a stuck worker
  while (state_.exchange(2, std::memory_order_acquire) != 0) rt::futex_wait(&state_, 2);
  rt::lock_wait_end();
}

void RawMutex::wake_one() { rt::futex_wake(&state_, 1); }

}  // namespace goro::detail
