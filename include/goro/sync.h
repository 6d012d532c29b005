// goro/sync.h: Go's sync package (and x/sync's semaphore), for goroutines
// and plain threads alike.
//
// Defines WaitGroup, Mutex, RWMutex, Once, Cond and Semaphore. Every
// blocking call parks the calling goroutine (its worker thread runs others),
// or blocks the calling thread when called from a plain thread; the two mix
// freely on one object. Mutex and RWMutex meet the standard Lockable /
// SharedLockable requirements, so std::lock_guard, std::unique_lock,
// std::shared_lock and std::scoped_lock work with them.
//
// Destruction safety, as std::latch and std::mutex promise it: the call that
// releases a waiter (WaitGroup::done, Mutex::unlock, Semaphore::release,
// Cond::signal/broadcast, the end of Once::call) does not touch the object
// once that waiter can proceed, so a WaitGroup on the waiting function's
// stack, with done() as each goroutine's last act, is safe.
#pragma once

#include <goro/detail/raw_mutex.h>
#include <goro/detail/spawn.h>
#include <goro/export.h>
#include <goro/panic.h>

#include <atomic>
#include <cstdint>
#include <mutex>
#include <utility>

namespace goro {

namespace detail {
// GORO_DEBUG=leaks=1 (read at runtime start, never changed afterwards):
// Mutex records its holder and reports lock cycles. Off, it costs the inline
// lock and unlock one predictable branch.
GORO_EXPORT extern std::atomic<bool> leak_checks;
struct MutexDiag;  // the runtime's view of a Mutex (src/sync/mutex.cc)
}  // namespace detail

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

  // Go 1.25's wg.Go(f): add(1), then run f(args...) in a new goroutine and
  // call done() when it returns or throws (after its closure, and so its
  // captures, are destroyed). Arguments are decay-copied as by goro::go; the
  // spawn site recorded is the caller's. A throwing f still ends the process
  // as an unrecovered panic, after done().
  template <class... Args>
  void go(std::type_identity_t<detail::Spawnable<Args...>> f, Args&&... args) {
    add(1);
    f.launch_then(detail::Finally{[](void* wg) { static_cast<WaitGroup*>(wg)->done(); }, this},
                  std::forward<Args>(args)...);
  }

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

// Mutex (sync.Mutex): mutual exclusion that parks contended goroutines.
//  - lock(): blocks until acquired. A contender spins briefly, then parks.
//    Fairness: newcomers may barge ahead of a woken waiter, but a waiter that
//    has waited more than 1 ms is handed the lock directly (FIFO), as in Go's
//    starvation mode, so no goroutine starves.
//  - try_lock(): never blocks.
//  - unlock(): may be called by any goroutine or thread, not only the one
//    that locked (as in Go). Unlocking an unlocked Mutex panics
//    "sync: unlock of unlocked mutex", the Mutex unchanged; of two unlocks
//    of one lock that race each other, one releases it and the other
//    panics so (Go makes both a fatal error).
// Not recursive.
class Mutex {
 public:
  Mutex() = default;
  Mutex(const Mutex&) = delete;
  Mutex& operator=(const Mutex&) = delete;

  void lock() {
    std::uint32_t s = 0;
    // Acquire pairs with the release (the CAS) in unlock().
    if (!state_.compare_exchange_weak(s, kLocked, std::memory_order_acquire, std::memory_order_relaxed)) {
      lock_slow();
    } else if (detail::leak_checks.load(std::memory_order_relaxed)) [[unlikely]] {
      note_locked();
    }
  }
  bool try_lock() {
    std::uint32_t s = state_.load(std::memory_order_relaxed);
    while ((s & kLocked) == 0) {
      if (state_.compare_exchange_weak(s, s | kLocked, std::memory_order_acquire, std::memory_order_relaxed)) {
        if (detail::leak_checks.load(std::memory_order_relaxed)) [[unlikely]] note_locked();
        return true;
      }
    }
    return false;
  }
  void unlock() {
    if (detail::leak_checks.load(std::memory_order_relaxed)) [[unlikely]] note_unlocking();
    // One compare-exchange from exactly "locked, nobody waiting": anything
    // else (an unlocked Mutex, parked waiters) goes to the slow path with
    // the word unchanged, so an unlock of an unlocked Mutex panics before
    // anything changes. Go releases with an atomic add and checks after;
    // the check before it here was a plain load between the lock's and the
    // unlock's locked instructions, which waited for the first: 20.5 ns per
    // lock and unlock against 14-15 ns now, on this project's VM (Go's
    // 16-18 ns in the same run). Release pairs with the acquire in lock().
    std::uint32_t seen = kLocked;
    if (!state_.compare_exchange_strong(seen, 0, std::memory_order_release, std::memory_order_relaxed)) [[unlikely]]
      unlock_slow(seen);
  }

 private:
  friend struct detail::MutexDiag;
  static constexpr std::uint32_t kLocked = 1;
  static constexpr std::uint32_t kParked = 2;  // the wait queue is not empty
  GORO_EXPORT void lock_slow();
  // seen: the word unlock() found, not "locked, nobody waiting": unlocked
  // (a panic, the word untouched), or a waiter is queued (kParked): then
  // it releases and wakes or hands over.
  GORO_EXPORT void unlock_slow(std::uint32_t seen);
  [[noreturn]] GORO_EXPORT void unlock_of_unlocked();
  // GORO_DEBUG=leaks=1: the holder is recorded (for lock-cycle reports) and
  // only the holder may unlock.
  GORO_EXPORT void note_locked();
  GORO_EXPORT void note_unlocking();

  std::atomic<std::uint32_t> state_{0};
  std::atomic<void*> owner_{nullptr};  // the holder, under GORO_DEBUG=leaks=1 only
  detail::RawMutex qlock_;   // protects the wait queue; taken before changing kParked
  void* head_ = nullptr;     // FIFO of waiters on their goroutines' stacks (qlock_)
  void* tail_ = nullptr;
};

// RWMutex (sync.RWMutex): many readers or one writer.
//  - lock()/unlock(): exclusive. lock_shared()/unlock_shared(): shared.
//  - A writer waiting in lock() blocks new readers (so writers do not
//    starve); when a writer unlocks, the readers that queued meanwhile go
//    first, then the next writer.
//  - try_lock()/try_lock_shared() never block.
//  - Misuse panics: "sync: Unlock of unlocked RWMutex",
//    "sync: RUnlock of unlocked RWMutex".
class RWMutex {
 public:
  RWMutex() = default;
  RWMutex(const RWMutex&) = delete;
  RWMutex& operator=(const RWMutex&) = delete;

  GORO_EXPORT void lock();
  GORO_EXPORT bool try_lock();
  GORO_EXPORT void unlock();
  GORO_EXPORT void lock_shared();
  GORO_EXPORT bool try_lock_shared();
  GORO_EXPORT void unlock_shared();

 private:
  detail::RawMutex m_;
  std::int64_t readers_ = 0;     // active readers (m_)
  bool writer_ = false;          // a writer holds it (m_)
  std::int64_t writers_waiting_ = 0;
  void* readq_ = nullptr;        // waiting readers (m_)
  void* writeq_head_ = nullptr;  // waiting writers, FIFO (m_)
  void* writeq_tail_ = nullptr;
};

// Once (sync.Once): call(f) runs f exactly once across all callers; the
// others wait until it has returned. If f throws, the exception propagates
// to that caller and the Once still counts as done (unlike std::call_once).
class Once {
 public:
  template <class F>
  void call(F&& f) {
    // Acquire pairs with the release store that marks completion, so a
    // caller that sees done_ also sees everything f did.
    if (done_.load(std::memory_order_acquire)) return;
    std::lock_guard<Mutex> lk(m_);
    if (done_.load(std::memory_order_relaxed)) return;
    struct MarkDone {
      std::atomic<bool>& d;
      ~MarkDone() { d.store(true, std::memory_order_release); }
    } mark{done_};
    std::forward<F>(f)();
  }

 private:
  std::atomic<bool> done_{false};
  Mutex m_;
};

// Cond (sync.Cond): a condition variable for goro::Mutex.
//  - wait(lk): atomically unlocks lk's Mutex and parks; relocks before
//    returning. As in Go, wakeups may be spurious only in the sense that the
//    condition must be re-checked in a loop.
//  - signal(): wakes the longest-waiting waiter, if any.
//  - broadcast(): wakes all waiters.
class Cond {
 public:
  Cond() = default;
  Cond(const Cond&) = delete;
  Cond& operator=(const Cond&) = delete;

  GORO_EXPORT void wait(std::unique_lock<Mutex>& lk);
  template <class Pred>
  void wait(std::unique_lock<Mutex>& lk, Pred pred) {
    while (!pred()) wait(lk);
  }
  GORO_EXPORT void signal();
  GORO_EXPORT void broadcast();

 private:
  detail::RawMutex m_;
  void* head_ = nullptr;  // FIFO of waiters (m_)
  void* tail_ = nullptr;
};

// Semaphore (x/sync/semaphore.Weighted): a weighted semaphore of size n.
//  - acquire(k): blocks until k units are free; waiters are served in FIFO
//    order (a large request is not overtaken by later small ones). Asking for
//    more than the size panics "semaphore: acquire more than size".
//  - try_acquire(k): takes k units only if free and nobody waits.
//  - release(k): returns k units; releasing more than held panics
//    "semaphore: released more than held".
class Semaphore {
 public:
  explicit Semaphore(std::int64_t n) : size_(n) {}
  Semaphore(const Semaphore&) = delete;
  Semaphore& operator=(const Semaphore&) = delete;

  GORO_EXPORT void acquire(std::int64_t k = 1);
  GORO_EXPORT bool try_acquire(std::int64_t k = 1);
  GORO_EXPORT void release(std::int64_t k = 1);

 private:
  detail::RawMutex m_;
  const std::int64_t size_;
  std::int64_t cur_ = 0;  // units held (m_)
  void* head_ = nullptr;  // FIFO of waiters (m_)
  void* tail_ = nullptr;
};

}  // namespace goro
