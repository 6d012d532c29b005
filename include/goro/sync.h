// goro/sync.h: Go's sync package for goroutines and threads.
//
// Defines WaitGroup (more primitives land with the sync issue). Every
// blocking call parks the calling goroutine (its worker thread runs others),
// or blocks the calling thread when called from a plain thread.
//
// Destruction safety, as std::latch promises: the call that releases a waiter
// does not touch the object once that waiter can proceed, so a WaitGroup on
// the waiting function's stack, with done() as each goroutine's last act, is
// safe.
#pragma once

#include <goro/detail/raw_mutex.h>
#include <goro/export.h>
#include <goro/panic.h>

#include <atomic>
#include <cstdint>

namespace goro {

// WaitGroup (sync.WaitGroup): waits for a collection of goroutines to finish.
//  - add(n): adds n (may be negative) to the counter. A counter that goes
//    negative panics "sync: negative WaitGroup counter". When it reaches zero
//    every goroutine and thread blocked in wait() is released.
//  - done(): add(-1).
//  - wait(): blocks until the counter is zero; returns at once if it is.
// Thread-safe. Calls with a positive delta that start when the counter is
// zero must happen before wait(), as in Go.
class WaitGroup {
 public:
  WaitGroup() = default;
  WaitGroup(const WaitGroup&) = delete;
  WaitGroup& operator=(const WaitGroup&) = delete;

  GORO_EXPORT void add(std::int64_t delta);
  void done() { add(-1); }
  GORO_EXPORT void wait();

 private:
  // High 32 bits: the counter (signed); low 32 bits: number of waiters.
  // Updated with acq_rel RMWs; a waiter registers itself (increments the low
  // half and links its node) only while holding lock_, and the waker that
  // sees the counter hit zero with waiters takes lock_ to detach them, so no
  // waiter is missed.
  std::atomic<std::uint64_t> state_{0};
  detail::RawMutex lock_;
  void* waiters_ = nullptr;  // singly linked nodes on the waiters' stacks (lock_)
};

}  // namespace goro
