// goro/errgroup.h: x/sync/errgroup: a group of goroutines working on
// subtasks of one task, with the first failure reported and the group's
// context cancelled.
//
//  - ErrGroup() or ErrGroup(parent): with a parent, context() is derived from
//    it and cancelled on the first failure (or when wait() returns).
//  - go(f): runs f (a void() callable that throws to fail) in a new
//    goroutine. With a limit set, go blocks until a slot is free.
//  - try_go(f): like go, but returns false instead of blocking at the limit.
//  - wait(): blocks until every member has returned, then rethrows the first
//    exception any of them threw.
//  - set_limit(n): at most n members run at once (n < 0: no limit). Changing
//    it while members run panics, as in Go.
// An ErrGroup must outlive its members: call wait() before destroying it.
#pragma once

#include <goro/context.h>
#include <goro/runtime.h>
#include <goro/sync.h>

#include <atomic>
#include <exception>
#include <memory>
#include <string>

namespace goro {

class ErrGroup {
 public:
  ErrGroup() = default;
  explicit ErrGroup(const Context& parent) {
    auto [c, cancel] = with_cancel(parent);
    ctx_ = c;
    cancel_ = cancel;
    has_ctx_ = true;
  }
  ErrGroup(const ErrGroup&) = delete;
  ErrGroup& operator=(const ErrGroup&) = delete;

  template <class F>
  void go(F&& f) {
    Semaphore* sem = sem_.get();
    if (sem != nullptr) sem->acquire();
    start(sem, std::forward<F>(f));
  }

  template <class F>
  bool try_go(F&& f) {
    Semaphore* sem = sem_.get();
    if (sem != nullptr && !sem->try_acquire()) return false;
    start(sem, std::forward<F>(f));
    return true;
  }

  void wait() {
    wg_.wait();
    if (has_ctx_) cancel_();
    std::exception_ptr e;
    {
      std::lock_guard<detail::RawMutex> lk(m_);
      e = err_;
    }
    if (e) std::rethrow_exception(e);
  }

  Context context() const { return ctx_; }

  // sem_ is read and written only by the goroutine that calls go/try_go and
  // set_limit (as in Go, the limit must not change while members run); a
  // member releases the semaphore it was started with, and does so before
  // it stops counting as active, so a set_limit that sees no active member
  // (acquire, pairing with the member's release decrement) may free it.
  void set_limit(int n) {
    int a = active_.load(std::memory_order_acquire);
    if (a != 0)
      throw panic_error("errgroup: modify limit while " + std::to_string(a) + " goroutines in the group are still active");
    if (n < 0) sem_.reset(); else sem_ = std::make_unique<Semaphore>(n);
  }

 private:
  template <class F>
  void start(Semaphore* sem, F&& f) {
    active_.fetch_add(1, std::memory_order_relaxed);
    wg_.add(1);
    ::goro::go([this, sem, fn = std::decay_t<F>(std::forward<F>(f))]() mutable {
      try {
        fn();
      } catch (...) {
        fail(std::current_exception());
      }
      if (sem != nullptr) sem->release();
      active_.fetch_sub(1, std::memory_order_release);
      wg_.done();  // last act: wait() may return and the group be destroyed
    });
  }

  void fail(std::exception_ptr e) {
    bool first = false;
    {
      std::lock_guard<detail::RawMutex> lk(m_);
      if (!err_) {
        err_ = e;
        first = true;
      }
    }
    if (first && has_ctx_) cancel_();
  }

  WaitGroup wg_;
  detail::RawMutex m_;
  std::exception_ptr err_;  // m_
  Context ctx_;
  CancelFunc cancel_;
  bool has_ctx_ = false;
  std::unique_ptr<Semaphore> sem_;
  std::atomic<int> active_{0};
};

}  // namespace goro
