// src/sync/mutex.cc: Mutex, RWMutex, Cond and Semaphore on park/ready.
//
// Mutex protocol. state_ bits: kLocked (held), kParked (the queue under
// qlock_ is non-empty). kParked is only set or cleared with qlock_ held; a
// waiter sets it (CAS) while the mutex is still locked, so the unlocker,
// whose release is a compare-exchange from exactly kLocked, fails and takes
// the slow path, which releases (a CAS clearing kLocked). Then, under
// qlock_, the slow path either hands the lock to the first waiter (it
// waited over kStarveNs: starvation mode; it takes kLocked back for it with
// a CAS, and if a newcomer got there first, leaves the waiter first in the
// queue, where that newcomer's unlock finds it) or wakes the first waiter
// to compete again (normal mode, newcomers may barge), clearing kParked
// when the queue is left empty.
#include <goro/sync.h>

#include "arch/sanitizer.h"
#include "diag/monitor.h"
#include "sched/fatal.h"
#include "sched/futex.h"
#include "sched/sched.h"
#include "sync/waitlist.h"

namespace goro {

namespace detail {
std::atomic<bool> leak_checks{false};

struct MutexDiag {
  static const void* owner(const void* m) {
    return static_cast<const Mutex*>(m)->owner_.load(std::memory_order_relaxed);
  }
  // Cond::wait's unlock happens in a park hook, on another context: the
  // holder check and release of the record are made first, as the waiter.
  static void release_owner(Mutex* m) { m->note_unlocking(); }
};
}  // namespace detail

namespace rt::diag {
// The holder of a Mutex a goroutine is parked on (null if unknown).
const void* mutex_owner(const void* m) { return detail::MutexDiag::owner(m); }
}  // namespace rt::diag

void Mutex::note_locked() { owner_.store(rt::current_waiter(), std::memory_order_relaxed); }

void Mutex::note_unlocking() {
  void* me = rt::current_waiter();
  void* holder = owner_.load(std::memory_order_relaxed);
  if (holder != nullptr && holder != me)
    throw panic_error("sync: unlock of a Mutex held by another goroutine (GORO_DEBUG=leaks=1 requires the holder to unlock)");
  owner_.store(nullptr, std::memory_order_relaxed);
}

namespace {
constexpr std::int64_t kStarveNs = 1000000;  // 1 ms, as Go's starvationThresholdNs
constexpr int kSpins = 4;
constexpr int kSpinPauses = 30;

// TSan (see arch/sanitizer.h): a Mutex's edges are on its address, which is
// its state_ word's, so they join the inline fast paths' atomics. RWMutex
// uses two addresses, as Go's race annotations do: readers acquire `this`
// and release this+1; writers acquire both and release `this` (readers are
// not ordered with each other).
const void* rw_writer_sync(const RWMutex* m) { return reinterpret_cast<const char*>(m) + 1; }
}  // namespace

void Mutex::lock_slow() {
  arch::SanRuntimeScope san;
  rt::WaitNode w;
  int spins = 0;
  for (;;) {
    std::uint32_t s = state_.load(std::memory_order_relaxed);
    if ((s & kLocked) == 0) {
      if (state_.compare_exchange_weak(s, s | kLocked, std::memory_order_acquire, std::memory_order_relaxed)) {
        arch::san_acquire(this);
        if (detail::leak_checks.load(std::memory_order_relaxed)) note_locked();
        return;
      }
      continue;
    }
    // Spin a little while nobody is queued: the holder is likely running on
    // another worker and about to unlock.
    if ((s & kParked) == 0 && spins < kSpins) {
      ++spins;
      for (int i = 0; i < kSpinPauses; ++i) rt::cpu_relax();
      continue;
    }
    qlock_.lock();
    s = state_.load(std::memory_order_relaxed);
    bool queued = false;
    while ((s & kLocked) != 0) {
      if (state_.compare_exchange_weak(s, s | kParked, std::memory_order_relaxed)) {
        queued = true;
        break;
      }
    }
    if (!queued) {  // released meanwhile: compete again
      qlock_.unlock();
      continue;
    }
    w.g = rt::current_waiter();
    w.granted = false;
    if (w.since_ns == 0) w.since_ns = rt::mono_now_ns();
    rt::WaitList(head_, tail_).push_back(&w);
    w.g->wait_obj = this;
    if (detail::leak_checks.load(std::memory_order_relaxed)) {
      // Once parked (the hook runs after the switch), have the monitor look
      // for a lock cycle through this wait.
      rt::park(
          "sync.Mutex.Lock",
          [](void* l) {
            static_cast<detail::RawMutex*>(l)->unlock();
            rt::diag::monitor_poke(rt::diag::kCheckLockCycles);
          },
          &qlock_);
    } else {
      rt::park("sync.Mutex.Lock", &rt::unlock_lock, &qlock_);
    }
    // Handed off: we own it (ready/park order the previous holder's writes
    // before our return; the unlocker recorded us as the holder).
    if (w.granted) {
      arch::san_acquire(this);
      return;
    }
    spins = 0;
  }
}

void Mutex::unlock_of_unlocked() { throw panic_error("sync: unlock of unlocked mutex"); }

void Mutex::unlock_slow(std::uint32_t seen) {
  // Held, and kParked: release. A compare-exchange, so that of two unlocks
  // racing for one lock the second finds it unlocked and panics with the
  // word unchanged. Release pairs with the acquire in lock().
  std::uint32_t s = seen;
  do {
    if ((s & kLocked) == 0) unlock_of_unlocked();
  } while (!state_.compare_exchange_weak(s, s & ~kLocked, std::memory_order_release, std::memory_order_relaxed));
  arch::SanRuntimeScope san;
  arch::san_release(this);
  qlock_.lock();
  rt::WaitList q(head_, tail_);
  rt::WaitNode* w = q.front();
  if (w == nullptr) {  // cannot happen while kParked is consistent
    state_.fetch_and(~kParked, std::memory_order_relaxed);
    qlock_.unlock();
    return;
  }
  if (rt::mono_now_ns() - w->since_ns > kStarveNs) {
    // Starving: take the lock back for w, unless a newcomer holds it now;
    // then w stays first and kParked stays set, and that holder's unlock
    // comes here again.
    std::uint32_t s = state_.load(std::memory_order_relaxed);
    do {
      if ((s & kLocked) != 0) {
        qlock_.unlock();
        return;
      }
    } while (!state_.compare_exchange_weak(s, s | kLocked, std::memory_order_acquire, std::memory_order_relaxed));
    q.pop_front();
    w->granted = true;
    if (detail::leak_checks.load(std::memory_order_relaxed)) owner_.store(w->g, std::memory_order_relaxed);
  } else {
    q.pop_front();
  }
  if (q.empty()) state_.fetch_and(~kParked, std::memory_order_relaxed);
  rt::G* g = w->g;
  qlock_.unlock();
  rt::ready(g);
}

// ---------------------------------------------------------------- RWMutex
// Waiting readers form a LIFO chain (order among readers is irrelevant: they
// are all admitted together); writers a FIFO. All state under m_.

void RWMutex::lock() {
  arch::SanRuntimeScope san;
  auto acquired = [this] {
    arch::san_acquire(this);
    arch::san_acquire(rw_writer_sync(this));
  };
  m_.lock();
  if (!writer_ && readers_ == 0) {
    writer_ = true;
    m_.unlock();
    acquired();
    return;
  }
  rt::WaitNode w;
  w.g = rt::current_waiter();
  ++writers_waiting_;
  rt::WaitList(writeq_head_, writeq_tail_).push_back(&w);
  rt::park("sync.RWMutex.Lock", &rt::unlock_lock, &m_);
  // The unlocker made us the writer before waking us.
  acquired();
}

bool RWMutex::try_lock() {
  arch::SanRuntimeScope san;
  {
    std::lock_guard<detail::RawMutex> g(m_);
    if (writer_ || readers_ != 0) return false;
    writer_ = true;
  }
  arch::san_acquire(this);
  arch::san_acquire(rw_writer_sync(this));
  return true;
}

void RWMutex::lock_shared() {
  arch::SanRuntimeScope san;
  m_.lock();
  if (!writer_ && writers_waiting_ == 0) {
    ++readers_;
    m_.unlock();
    arch::san_acquire(this);
    return;
  }
  rt::WaitNode w;
  w.g = rt::current_waiter();
  w.next = static_cast<rt::WaitNode*>(readq_);
  readq_ = &w;
  rt::park("sync.RWMutex.RLock", &rt::unlock_lock, &m_);
  // The unlocker counted us in readers_ before waking us.
  arch::san_acquire(this);
}

bool RWMutex::try_lock_shared() {
  arch::SanRuntimeScope san;
  {
    std::lock_guard<detail::RawMutex> g(m_);
    if (writer_ || writers_waiting_ != 0) return false;
    ++readers_;
  }
  arch::san_acquire(this);
  return true;
}

void RWMutex::unlock_shared() {
  arch::SanRuntimeScope san;
  m_.lock();
  if (readers_ <= 0) {
    m_.unlock();
    throw panic_error("sync: RUnlock of unlocked RWMutex");
  }
  arch::san_release(rw_writer_sync(this));
  rt::WaitNode* wake = nullptr;
  if (--readers_ == 0 && writers_waiting_ > 0) {
    wake = rt::WaitList(writeq_head_, writeq_tail_).pop_front();
    --writers_waiting_;
    writer_ = true;
  }
  m_.unlock();
  if (wake != nullptr) rt::ready(wake->g);
}

void RWMutex::unlock() {
  arch::SanRuntimeScope san;
  m_.lock();
  if (!writer_) {
    m_.unlock();
    throw panic_error("sync: Unlock of unlocked RWMutex");
  }
  arch::san_release(this);
  writer_ = false;
  rt::WaitNode* wake = nullptr;
  if (readq_ != nullptr) {
    // Readers that queued behind this writer go first, all together.
    wake = static_cast<rt::WaitNode*>(readq_);
    readq_ = nullptr;
    for (rt::WaitNode* w = wake; w != nullptr; w = w->next) ++readers_;
  } else if (writers_waiting_ > 0) {
    wake = rt::WaitList(writeq_head_, writeq_tail_).pop_front();
    wake->next = nullptr;
    --writers_waiting_;
    writer_ = true;
  }
  m_.unlock();
  rt::ready_chain(wake);
}

// ---------------------------------------------------------------- Cond
namespace {
struct CondUnlock {
  detail::RawMutex* queue_lock;
  Mutex* user;
};
}  // namespace

void Cond::wait(std::unique_lock<Mutex>& lk) {
  arch::SanRuntimeScope san;
  Mutex* mu = lk.mutex();
  if (mu == nullptr || !lk.owns_lock()) throw panic_error("sync: Cond.wait without holding the lock");
  // The park hook unlocks the user's Mutex on another context, inside a
  // scope: state the unlock's release here, as the waiter.
  arch::san_release(mu);
  if (detail::leak_checks.load(std::memory_order_relaxed)) detail::MutexDiag::release_owner(mu);
  rt::WaitNode w;
  w.g = rt::current_waiter();
  m_.lock();
  rt::WaitList(head_, tail_).push_back(&w);
  // Both locks are released after we are parked: a signal between the two
  // cannot be lost, since signal needs m_ and finds us queued.
  CondUnlock u{&m_, mu};
  rt::park("sync.Cond.Wait",
           [](void* a) {
             // A park hook must not throw: it runs on the next context.
             auto* cu = static_cast<CondUnlock*>(a);
             cu->queue_lock->unlock();
             // Runs on another goroutine's context: the waiter stated the
             // unlock's edge before parking; this context adds none.
             arch::SanQuiet quiet;
             try {
               cu->user->unlock();
             } catch (const panic_error&) {
               rt::fatal("sync: unlock of unlocked mutex in Cond.wait");
             }
           },
           &u);
  mu->lock();
  arch::san_acquire(mu);  // inside the scope the inline fast path's acquire is not seen
}

void Cond::signal() {
  arch::SanRuntimeScope san;
  m_.lock();
  rt::WaitNode* w = rt::WaitList(head_, tail_).pop_front();
  m_.unlock();
  if (w != nullptr) rt::ready(w->g);
}

void Cond::broadcast() {
  arch::SanRuntimeScope san;
  m_.lock();
  rt::WaitNode* all = rt::WaitList(head_, tail_).take_all();
  m_.unlock();
  rt::ready_chain(all);
}

// ---------------------------------------------------------------- Semaphore
void Semaphore::acquire(std::int64_t k) {
  if (k > size_) throw panic_error("semaphore: acquire more than size");
  arch::SanRuntimeScope san;
  m_.lock();
  rt::WaitList q(head_, tail_);
  if (size_ - cur_ >= k && q.empty()) {
    cur_ += k;
    m_.unlock();
    arch::san_acquire(this);
    return;
  }
  rt::WaitNode w;
  w.g = rt::current_waiter();
  w.n = k;
  q.push_back(&w);
  rt::park("semacquire", &rt::unlock_lock, &m_);
  // release() counted our units in cur_ before waking us.
  arch::san_acquire(this);
}

bool Semaphore::try_acquire(std::int64_t k) {
  arch::SanRuntimeScope san;
  {
    std::lock_guard<detail::RawMutex> g(m_);
    if (size_ - cur_ < k || head_ != nullptr) return false;
    cur_ += k;
  }
  arch::san_acquire(this);
  return true;
}

void Semaphore::release(std::int64_t k) {
  arch::SanRuntimeScope san;
  arch::san_release(this);
  m_.lock();
  cur_ -= k;
  if (cur_ < 0) {
    cur_ += k;
    m_.unlock();
    throw panic_error("semaphore: released more than held");
  }
  // Admit waiters in FIFO order while the first one fits.
  rt::WaitList q(head_, tail_);
  rt::WaitNode* wake = nullptr;
  rt::WaitNode** tail = &wake;
  while (!q.empty() && size_ - cur_ >= q.front()->n) {
    rt::WaitNode* w = q.pop_front();
    cur_ += w->n;
    *tail = w;
    tail = &w->next;
  }
  m_.unlock();
  rt::ready_chain(wake);
}

}  // namespace goro
