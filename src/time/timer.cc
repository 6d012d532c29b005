// src/time/timer.cc: Timer, Ticker and after_func on the runtime's timers.
//
// Each arming of a timer is one heap-allocated Arm (an rt::Timer plus a
// strong reference to the TimerState and the arming's sequence number). The
// scheduler removes an Arm from its heap before firing it; whoever removes it
// frees it: stop/reset if timer_del succeeds, otherwise the fire callback.
// TimerState::m serializes fire against stop/reset: a fire whose seq is not
// the state's current seq belongs to an old schedule and does nothing, and
// stop/reset drain the channel under m. Together these give Go 1.23's
// guarantee: once stop/reset returns, no stale value is received.
#include "goro/time.h"

#include <ctime>
#include <mutex>
#include <optional>

#include "arch/sanitizer.h"
#include "sched/futex.h"
#include "sched/sched.h"

namespace goro {

namespace detail {

struct TimerState : std::enable_shared_from_this<TimerState> {
  RawMutex m;
  // Where fires deliver: the channel's core, or null (after_func, or a
  // ticker whose channel is gone). A Timer's state holds a handle to it
  // (`ch`); a Ticker's does not, since the ticker lives as long as its
  // channel has users (see Ticker::Owner), so it holds the bare core, cleared
  // under m by the channel's last-handle hook before the core is freed.
  ChanCore* core = nullptr;
  Chan<Clock::time_point> ch;       // Timer's channel handle (nil for after_func and Ticker)
  std::function<void()> fn;         // after_func body
  Clock::duration period{0};        // Ticker period; zero for one-shot timers
  std::uint64_t seq = 0;            // current schedule (m)
  bool pending = false;             // armed and not yet fired (m)
  struct Arm* armed = nullptr;      // the current Arm while in a heap (m)
  // TSan: arming an after_func (creation, reset) happens before its
  // function runs, as Go's timer race annotations say. Null otherwise.
  char* san_sync = arch::kTsan ? new char : nullptr;
  TimerState() = default;
  TimerState(const TimerState&) = delete;
  TimerState& operator=(const TimerState&) = delete;
  ~TimerState() { delete san_sync; }
};

struct Arm {
  rt::Timer t;
  std::shared_ptr<TimerState> st;
  std::uint64_t seq;
};

namespace {

void fire(rt::Timer* t);

// Arms st for `when` (ns, CLOCK_MONOTONIC) under st->m.
void arm_locked(TimerState* st, std::int64_t when) {
  auto* a = new Arm{rt::Timer{}, st->shared_from_this(), st->seq};
  a->t.when = when;
  a->t.fire = &fire;
  a->t.arg = a;
  st->armed = a;
  st->pending = true;
  rt::timer_add(&a->t);
}

// Cancels the current schedule under st->m; returns whether it was pending
// (armed, or fired into the channel but not yet received).
bool disarm_locked(TimerState* st) {
  bool was = st->pending;
  st->pending = false;
  ++st->seq;
  if (st->armed != nullptr) {
    // If the scheduler already took it, the fire callback owns it and will
    // see the new seq.
    if (rt::timer_del(&st->armed->t)) delete st->armed;
    st->armed = nullptr;
  }
  // Go 1.23: a value delivered by the old schedule but not received is gone,
  // and such a timer still counts as pending (the program never saw it
  // expire), so `if (!t.stop()) t.c().recv();` cannot block forever.
  if (st->core != nullptr) {
    std::optional<Clock::time_point> drop;
    if (chan_recv(st->core, &drop, false) == RecvResult::value) was = true;
  }
  return was;
}

std::int64_t ns_from_now(Clock::duration d) {
  std::int64_t ns = std::chrono::duration_cast<std::chrono::nanoseconds>(d).count();
  return rt::deadline_after_ns(ns);
}

void fire(rt::Timer* t) {
  auto* a = static_cast<Arm*>(t->arg);
  std::shared_ptr<TimerState> st = std::move(a->st);
  std::uint64_t seq = a->seq;
  std::int64_t when = a->t.when;
  std::function<void()> run;
  st->m.lock();
  if (st->armed == a) st->armed = nullptr;
  delete a;
  if (seq == st->seq && st->pending) {
    if (st->period.count() > 0) {
      // Ticker: deliver if there is room (a slow receiver misses ticks), then
      // re-arm at the next multiple of the period after now.
      Clock::time_point now = Clock::now();
      chan_send(st->core, &now, false);
      std::int64_t p = std::chrono::duration_cast<std::chrono::nanoseconds>(st->period).count();
      std::int64_t next = when + p;
      std::int64_t now_ns = rt::mono_now_ns();
      if (next <= now_ns) next += ((now_ns - next) / p + 1) * p;
      arm_locked(st.get(), next);
    } else {
      st->pending = false;
      if (st->core != nullptr) {
        Clock::time_point now = Clock::now();
        chan_send(st->core, &now, false);
      } else {
        run = st->fn;
      }
    }
  }
  st->m.unlock();
  if (run) {
    go([st, run = std::move(run)] {
      {
        arch::SanRuntimeScope san;
        arch::san_acquire(st->san_sync);
      }
      run();
    });
  }
}

}  // namespace
}  // namespace detail

Chan<Clock::time_point> after(Clock::duration d) {
  arch::SanRuntimeScope san;
  return Timer(d).c();
}

Timer::Timer(Clock::duration d, std::function<void()> fn) : st_(std::make_shared<detail::TimerState>()) {
  arch::SanRuntimeScope san;
  rt::ensure_started();
  if (fn) arch::san_release(st_->san_sync);
  if (fn) {
    st_->fn = std::move(fn);
  } else {
    st_->ch = Chan<Clock::time_point>(1);
    st_->core = detail::core_of(st_->ch);
  }
  std::lock_guard<detail::RawMutex> lk(st_->m);
  detail::arm_locked(st_.get(), detail::ns_from_now(d));
}

Chan<Clock::time_point> Timer::c() const { return st_->ch; }

bool Timer::stop() const {
  arch::SanRuntimeScope san;
  std::lock_guard<detail::RawMutex> lk(st_->m);
  return detail::disarm_locked(st_.get());
}

bool Timer::reset(Clock::duration d) const {
  arch::SanRuntimeScope san;
  if (st_->fn) arch::san_release(st_->san_sync);
  std::lock_guard<detail::RawMutex> lk(st_->m);
  bool was = detail::disarm_locked(st_.get());
  detail::arm_locked(st_.get(), detail::ns_from_now(d));
  return was;
}

Timer after_func_impl(Clock::duration d, std::function<void()> fn) {
  if (!fn) throw panic_error("time: after_func with an empty function");
  return Timer(d, std::move(fn));
}

// A ticker lives while a Ticker handle or a handle to its channel does (Go:
// the channel keeps the ticker alive, so `auto c = Ticker(d).c();` ticks).
// The Owner, shared by the Ticker handles, holds one channel handle; the
// channel's last-handle hook stops the ticker once the Owner's handle and
// every user's handle are gone, before the channel is freed.
struct Ticker::Owner {
  std::shared_ptr<detail::TimerState> st;
  Chan<Clock::time_point> ch;
};

namespace {
// The channel's last handle is going: stop the ticker and forget the core
// (a fire running now finishes first: it holds m). `arg` is a heap
// shared_ptr keeping the state alive until here.
void ticker_channel_gone(void* arg) {
  auto* keep = static_cast<std::shared_ptr<detail::TimerState>*>(arg);
  {
    std::lock_guard<detail::RawMutex> lk((*keep)->m);
    detail::disarm_locked(keep->get());
    (*keep)->core = nullptr;
  }
  delete keep;
}
}  // namespace

Ticker::Ticker(Clock::duration d) {
  if (d <= Clock::duration::zero()) throw panic_error("non-positive interval for NewTicker");
  arch::SanRuntimeScope san;
  rt::ensure_started();
  auto st = std::make_shared<detail::TimerState>();
  Chan<Clock::time_point> ch(1);
  st->core = detail::core_of(ch);
  st->period = d;
  detail::chan_on_last_handle(st->core, &ticker_channel_gone, new std::shared_ptr<detail::TimerState>(st));
  {
    std::lock_guard<detail::RawMutex> lk(st->m);
    detail::arm_locked(st.get(), detail::ns_from_now(d));
  }
  owner_ = std::make_shared<Owner>(Owner{std::move(st), std::move(ch)});
}

Chan<Clock::time_point> Ticker::c() const { return owner_->ch; }

std::chrono::system_clock::time_point wall_time(Clock::time_point t) {
  auto sys_now = std::chrono::system_clock::now();
  auto steady_now = Clock::now();
  return sys_now + std::chrono::duration_cast<std::chrono::system_clock::duration>(t - steady_now);
}

std::string format_time(Clock::time_point t, const char* format) {
  std::time_t tt = std::chrono::system_clock::to_time_t(wall_time(t));
  std::tm local{};
  localtime_r(&tt, &local);
  char buf[256];
  std::size_t n = std::strftime(buf, sizeof buf, format, &local);
  return std::string(buf, n);
}

Chan<Clock::time_point> tick(Clock::duration d) {
  if (d <= Clock::duration::zero()) return Chan<Clock::time_point>();  // Go: Tick returns nil
  return Ticker(d).c();
}

void Ticker::stop() const {
  arch::SanRuntimeScope san;
  std::lock_guard<detail::RawMutex> lk(owner_->st->m);
  detail::disarm_locked(owner_->st.get());
}

void Ticker::reset(Clock::duration d) const {
  if (d <= Clock::duration::zero()) throw panic_error("non-positive interval for Ticker.Reset");
  arch::SanRuntimeScope san;
  std::lock_guard<detail::RawMutex> lk(owner_->st->m);
  detail::disarm_locked(owner_->st.get());
  owner_->st->period = d;
  detail::arm_locked(owner_->st.get(), detail::ns_from_now(d));
}

}  // namespace goro
