// src/netpoll/netpoll.cc: PollDesc waiting, waking, deadlines; the
// platform-neutral half of the netpoller (see netpoll.h for the protocol).
#include "netpoll/netpoll.h"

#include "arch/sanitizer.h"

#include <vector>

#include "goro/errc.h"
#include "netpoll/poller.h"
#include "sched/fatal.h"
#include "sched/futex.h"

namespace goro::rt {

namespace {

constexpr std::uintptr_t kReady = 1;
constexpr std::uintptr_t kWait = 2;
constexpr std::uint64_t kGenMask = 63;  // PollDesc is 64-aligned: low 6 bits are free

std::atomic<int> nwaiters{0};

// The kernel orders a PollDesc's initialization (before epoll_ctl) before
// any thread reads it from an epoll event, but no C++ atomic says so. This
// counter says it: pd_open increments it (release) after initializing, and
// netpoll reads it (acquire) after epoll returns, so the memory model, and
// ThreadSanitizer, see the order the kernel provides.
std::atomic<std::uint64_t> registrations{0};

// Recycled descriptors; never freed (see netpoll.h, Lifetime).
Lock cache_lock;
PollDesc* cache_free = nullptr;

PollDesc* pd_alloc() {
  cache_lock.lock();
  if (cache_free == nullptr) {
    constexpr int kChunk = 64;
    auto* chunk = new PollDesc[kChunk];
    for (int i = 0; i < kChunk; ++i) {
      chunk[i].next_free = cache_free;
      cache_free = &chunk[i];
    }
  }
  PollDesc* pd = cache_free;
  cache_free = pd->next_free;
  cache_lock.unlock();
  pd->next_free = nullptr;
  return pd;
}

std::atomic<std::uintptr_t>& word(PollDesc* pd, char mode) { return mode == 'r' ? pd->rg : pd->wg; }

// Takes the waiter off w, leaving kReady (ioready) or 0. Returns the G to
// ready, or null.
G* unblock(std::atomic<std::uintptr_t>& w, bool ioready) {
  std::uintptr_t old = w.load(std::memory_order_acquire);
  for (;;) {
    if (old == kReady) return nullptr;
    if (old == 0 && !ioready) return nullptr;
    std::uintptr_t next = ioready ? kReady : 0;
    if (w.compare_exchange_weak(old, next, std::memory_order_seq_cst)) {
      return old == kWait || old == 0 ? nullptr : reinterpret_cast<G*>(old);
    }
  }
}

// Deadline timer: expires the deadline if it is still the one armed.
void expire(PollDesc* pd, char mode) {
  auto& d = mode == 'r' ? pd->rd : pd->wd;
  pd->lock.lock();
  std::int64_t when = d.load(std::memory_order_relaxed);
  G* g = nullptr;
  if (when > 0 && when <= mono_now_ns()) {
    d.store(-1, std::memory_order_seq_cst);
    g = unblock(word(pd, mode), false);
  }
  pd->lock.unlock();
  if (g != nullptr) ready(g, false);
}

void fire_read(Timer* t) { expire(static_cast<PollDesc*>(t->arg), 'r'); }
void fire_write(Timer* t) { expire(static_cast<PollDesc*>(t->arg), 'w'); }

struct Commit {
  std::atomic<std::uintptr_t>* w;
  G* g;
};

// Runs once the waiter's context is saved: publish it, unless a waker came
// first (then the waiter must not sleep: ready it at once).
void commit(void* arg) {
  auto* c = static_cast<Commit*>(arg);
  std::uintptr_t expected = kWait;
  if (!c->w->compare_exchange_strong(expected, reinterpret_cast<std::uintptr_t>(c->g),
                                     std::memory_order_seq_cst)) {
    ready(c->g);
    return;
  }
  poll_wanted();
}

// Sets one direction's deadline (pd->lock held). Returns a G to ready.
G* set_one(PollDesc* pd, char mode, std::int64_t when, std::int64_t now) {
  auto& d = mode == 'r' ? pd->rd : pd->wd;
  Timer& t = mode == 'r' ? pd->rtimer : pd->wtimer;
  timer_del(&t);  // a firing in progress re-checks `d` under the lock
  if (when == 0) {
    d.store(0, std::memory_order_seq_cst);
    return nullptr;
  }
  if (when <= now) {
    d.store(-1, std::memory_order_seq_cst);
    return unblock(word(pd, mode), false);
  }
  d.store(when, std::memory_order_seq_cst);
  t.when = when;
  timer_add(&t);
  return nullptr;
}

}  // namespace

PollDesc* pd_open(int fd, int* err) {
  arch::SanRuntimeScope san;
  poller::init();
  PollDesc* pd = pd_alloc();
  pd->fd = fd;
  pd->rtimer.arg = pd;
  pd->rtimer.fire = &fire_read;
  pd->wtimer.arg = pd;
  pd->wtimer.fire = &fire_write;
  std::uint64_t token = reinterpret_cast<std::uint64_t>(pd) | (pd->gen.load(std::memory_order_relaxed) & kGenMask);
  registrations.fetch_add(1, std::memory_order_release);
  if (int e = poller::add(fd, token)) {
    *err = e;
    pd_close(pd);
    return nullptr;
  }
  return pd;
}

void pd_close(PollDesc* pd) {
  arch::SanRuntimeScope san;
  pd->lock.lock();
  timer_del(&pd->rtimer);
  timer_del(&pd->wtimer);
  pd->rd.store(0, std::memory_order_relaxed);
  pd->wd.store(0, std::memory_order_relaxed);
  pd->lock.unlock();
  if (pd->fd >= 0) poller::remove(pd->fd);  // fails harmlessly if never added
  pd->fd = -1;
  pd->gen.fetch_add(1, std::memory_order_relaxed);
  pd->rg.store(0, std::memory_order_relaxed);
  pd->wg.store(0, std::memory_order_relaxed);
  pd->closing.store(false, std::memory_order_relaxed);
  pd->rexcept.store(false, std::memory_order_relaxed);
  cache_lock.lock();
  pd->next_free = cache_free;
  cache_free = pd;
  cache_lock.unlock();
}

void pd_evict(PollDesc* pd) {
  arch::SanRuntimeScope san;
  pd->closing.store(true, std::memory_order_seq_cst);
  G* r = unblock(pd->rg, false);
  G* w = unblock(pd->wg, false);
  if (r != nullptr) ready(r, false);
  if (w != nullptr) ready(w, false);
}

int pd_check(PollDesc* pd, char mode) {
  if (pd->closing.load(std::memory_order_seq_cst)) return static_cast<int>(errc::closed);
  auto& d = mode == 'r' ? pd->rd : pd->wd;
  if (d.load(std::memory_order_seq_cst) < 0) return static_cast<int>(errc::deadline_exceeded);
  return 0;
}

int pd_wait(PollDesc* pd, char mode) {
  arch::SanRuntimeScope san;
  auto& w = word(pd, mode);
  std::uintptr_t old = w.load(std::memory_order_acquire);
  for (;;) {
    if (old == kReady) {
      if (w.compare_exchange_weak(old, 0, std::memory_order_acquire)) return pd_check(pd, mode);
      continue;
    }
    if (old != 0) fatal("netpoll: two waiters on one descriptor in one direction");
    if (w.compare_exchange_weak(old, kWait, std::memory_order_seq_cst)) break;
  }
  if (int e = pd_check(pd, mode)) {
    w.store(0, std::memory_order_relaxed);  // only we write kWait -> *: nobody parked here
    return e;
  }
  nwaiters.fetch_add(1, std::memory_order_relaxed);
  Commit c{&w, current_waiter()};
  park("IO wait", &commit, &c);
  nwaiters.fetch_sub(1, std::memory_order_relaxed);
  // The waker left kReady or 0; consume it.
  w.store(0, std::memory_order_relaxed);
  return pd_check(pd, mode);
}

void pd_set_deadline(PollDesc* pd, char mode, std::int64_t when_ns) {
  arch::SanRuntimeScope san;
  std::int64_t now = mono_now_ns();
  G* r = nullptr;
  G* w = nullptr;
  pd->lock.lock();
  if (mode == 'r' || mode == 'b') r = set_one(pd, 'r', when_ns, now);
  if (mode == 'w' || mode == 'b') w = set_one(pd, 'w', when_ns, now);
  pd->lock.unlock();
  if (r != nullptr) ready(r, false);
  if (w != nullptr) ready(w, false);
}

int netpoll_waiters() { return nwaiters.load(std::memory_order_relaxed); }

int netpoll(std::int64_t deadline_ns, G** out) {
  poller::Event evs[kNetpollBatch / 2];
  int n = poller::wait(deadline_ns, evs, kNetpollBatch / 2);
  if (n > 0) registrations.load(std::memory_order_acquire);
  int k = 0;
  for (int i = 0; i < n; ++i) {
    auto* pd = reinterpret_cast<PollDesc*>(evs[i].token & ~kGenMask);
    if ((pd->gen.load(std::memory_order_relaxed) & kGenMask) != (evs[i].token & kGenMask)) continue;
    // Before the waiter comes off rg (netpoll.h, Short reads).
    if (evs[i].exceptional && !pd->rexcept.load(std::memory_order_relaxed))
      pd->rexcept.store(true, std::memory_order_release);
    G* gs[2] = {evs[i].readable ? unblock(pd->rg, true) : nullptr,
                evs[i].writable ? unblock(pd->wg, true) : nullptr};
    for (G* g : gs) {
      if (g == nullptr) continue;
      if (g->is_thread) {
        ready(g);
      } else {
        g->status.store(GStatus::runnable, std::memory_order_release);
        out[k++] = g;
      }
    }
  }
  return k;
}

}  // namespace goro::rt
