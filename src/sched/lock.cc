// Slow paths of goro::detail::RawMutex (see raw_mutex.h for the protocol).
#include <goro/detail/raw_mutex.h>

#include "sched/futex.h"
#include "sched/sched.h"

namespace goro::detail {

void RawMutex::lock_slow() {
  // Spin with exponential back-off: fewer attempts on the contended cache
  // line, which the holder needs too. The first look comes after 16
  // pauses, not 1: a waiter that looked at once pulled the line away from
  // the holder, which needs it again to unlock (channel locks at
  // GOMAXPROCS=2, medians of 5 interleaved: fanout_pipeline 175 -> 114 ns
  // per item, chan_mpmc 68 -> 54, chan_unbuffered_mpmc 204 -> 148). The
  // whole spin is as long as before (1,008 pauses against 1,023), then
  // the waiter sleeps on the futex.
  for (int round = 0, pauses = 16; round < 6; ++round, pauses *= 2) {
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
