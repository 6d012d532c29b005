// src/sync/waitgroup.cc: WaitGroup on the park/ready protocol.
#include "goro/sync.h"

#include "arch/sanitizer.h"
#include "sched/sched.h"

namespace goro {

namespace {
struct WgWaiter {
  rt::G* g;
  WgWaiter* next;
};
}  // namespace

void WaitGroup::add(std::int64_t delta) {
  arch::SanRuntimeScope san;
  // TSan: what a member did before done() happens before wait() returns
  // (stated before the decrement: the waiter may destroy *this right after).
  if (delta < 0) arch::san_release(this);
  const std::uint64_t d = static_cast<std::uint64_t>(delta) << 32;
  const std::uint64_t s = state_.fetch_add(d, std::memory_order_acq_rel) + d;
  const auto v = static_cast<std::int32_t>(s >> 32);
  const auto w = static_cast<std::uint32_t>(s);
  if (v < 0) throw panic_error("sync: negative WaitGroup counter");
  if (w != 0 && delta > 0 && v == delta)
    throw panic_error("sync: WaitGroup misuse: Add called concurrently with Wait");
  if (v > 0 || w == 0) return;
  // The counter hit zero with waiters: release them all. Waiters cannot add
  // themselves now (their CAS needs a non-zero counter), so this is the set.
  lock_.lock();
  state_.store(0, std::memory_order_relaxed);
  auto* list = static_cast<WgWaiter*>(waiters_);
  waiters_ = nullptr;
  lock_.unlock();
  while (list != nullptr) {
    WgWaiter* next = list->next;  // read first: the node dies once its G runs
    rt::ready(list->g);
    list = next;
  }
}

void WaitGroup::wait() {
  arch::SanRuntimeScope san;
  for (;;) {
    std::uint64_t s = state_.load(std::memory_order_acquire);
    if ((s >> 32) == 0) {
      arch::san_acquire(this);
      return;
    }
    lock_.lock();
    if (state_.compare_exchange_strong(s, s + 1, std::memory_order_acq_rel)) {
      WgWaiter node{rt::current_waiter(), static_cast<WgWaiter*>(waiters_)};
      waiters_ = &node;
      rt::park("sync.WaitGroup.Wait", &rt::unlock_lock, &lock_);
      arch::san_acquire(this);
      return;
    }
    lock_.unlock();
  }
}

}  // namespace goro
