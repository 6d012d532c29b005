// goro/detail/raw_mutex.h: the runtime's internal OS-thread lock, exposed only
// so that public types can embed it.
//
// A three-state futex mutex (0 free, 1 locked, 2 locked with sleepers) with a
// short spin in the slow path. It blocks the OS thread, so goro uses it only
// around short critical sections; a goroutine never stays parked while
// holding one, except through the park() hook that releases it after the
// goroutine has switched out.
// Destruction safety: after the releasing exchange, unlock() touches nothing
// but the word's address in a wake syscall (harmless if the memory was freed),
// so a waiter released by the holder may destroy the enclosing object.
#pragma once

#include <goro/export.h>

#include <atomic>
#include <cstdint>

namespace goro::detail {

class RawMutex {
 public:
  void lock() {
    std::uint32_t c = 0;
    // Acquire pairs with the release exchange in unlock().
    if (state_.compare_exchange_strong(c, 1, std::memory_order_acquire)) return;
    lock_slow();
  }
  bool try_lock() {
    std::uint32_t c = 0;
    return state_.compare_exchange_strong(c, 1, std::memory_order_acquire);
  }
  void unlock() {
    if (!unlock_unwoken()) wake_one();
  }
  // unlock() in two halves, for callers that release several locks in a
  // loop and keep the call out of it: releases the lock and returns true,
  // or returns false when a sleeper must still be woken by wake_one().
  bool unlock_unwoken() { return state_.exchange(0, std::memory_order_release) != 2; }
  GORO_EXPORT void wake_one();

 private:
  GORO_EXPORT void lock_slow();

  std::atomic<std::uint32_t> state_{0};
};

}  // namespace goro::detail
