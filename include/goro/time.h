// goro/time.h: Go's time package, on the runtime's timers.
//
// Timers live in the scheduler's per-P timer heaps: a million pending timers
// cost memory (about 200 bytes each), not threads or polling. Channel
// timers follow Go 1.23: after stop() or reset() returns, no value from the
// old schedule is ever received.
//
//  - after(d) (time.After): a channel that receives the time once, d from now.
//  - Timer(d) (time.NewTimer): c() receives the time when it fires.
//    stop() returns true if it stopped a pending timer; reset(d) re-arms it
//    and returns whether it was pending. As in Go 1.23, a timer that fired
//    but whose value was not received counts as pending (the value is
//    dropped), so `if (!t.stop()) t.c().recv();` never blocks. Timer is a handle: copies share the
//    timer; destroying handles never cancels an after_func.
//  - after_func(d, f) (time.AfterFunc): runs f in its own goroutine after d;
//    stop() prevents that if it has not started.
//  - Ticker(d) (time.NewTicker): c() receives the time every d; a receiver
//    that falls behind misses ticks (the channel holds one). stop(), reset(d).
//    The ticker runs until stop(), or until its last handle and the last
//    handle to its channel are gone: as in Go, the channel keeps the ticker
//    alive, so `auto c = Ticker(d).c();` ticks.
//  - tick(d) (time.Tick): Ticker(d).c(); the nil channel if d <= 0.
// All members are thread-safe and callable from goroutines or plain threads.
// A non-positive Ticker period panics "non-positive interval for NewTicker".
#pragma once

#include <goro/chan.h>
#include <goro/export.h>
#include <goro/runtime.h>

#include <functional>
#include <string>
#include <memory>

namespace goro {

GORO_EXPORT Chan<Clock::time_point> after(Clock::duration d);

template <class Rep, class Period>
Chan<Clock::time_point> after(std::chrono::duration<Rep, Period> d) {
  return after(std::chrono::ceil<Clock::duration>(d));
}

namespace detail {
struct TimerState;  // src/time/timer.cc
}

class Timer {
 public:
  explicit Timer(Clock::duration d) : Timer(d, nullptr) {}
  template <class Rep, class Period>
  explicit Timer(std::chrono::duration<Rep, Period> d) : Timer(std::chrono::ceil<Clock::duration>(d)) {}

  // The channel the time is delivered on (nil for an after_func timer).
  GORO_EXPORT Chan<Clock::time_point> c() const;
  GORO_EXPORT bool stop() const;
  GORO_EXPORT bool reset(Clock::duration d) const;
  template <class Rep, class Period>
  bool reset(std::chrono::duration<Rep, Period> d) const {
    return reset(std::chrono::ceil<Clock::duration>(d));
  }

 private:
  friend Timer after_func_impl(Clock::duration, std::function<void()>);
  GORO_EXPORT Timer(Clock::duration d, std::function<void()> fn);
  std::shared_ptr<detail::TimerState> st_;
};

GORO_EXPORT Timer after_func_impl(Clock::duration d, std::function<void()> fn);

template <class Rep, class Period, class F>
Timer after_func(std::chrono::duration<Rep, Period> d, F f) {
  return after_func_impl(std::chrono::ceil<Clock::duration>(d), std::function<void()>(std::move(f)));
}

class Ticker {
 public:
  GORO_EXPORT explicit Ticker(Clock::duration d);
  template <class Rep, class Period>
  explicit Ticker(std::chrono::duration<Rep, Period> d) : Ticker(std::chrono::ceil<Clock::duration>(d)) {}

  GORO_EXPORT Chan<Clock::time_point> c() const;
  GORO_EXPORT void stop() const;
  GORO_EXPORT void reset(Clock::duration d) const;
  template <class Rep, class Period>
  void reset(std::chrono::duration<Rep, Period> d) const {
    reset(std::chrono::ceil<Clock::duration>(d));
  }

 private:
  struct Owner;  // stops the ticker when the last handle goes
  std::shared_ptr<Owner> owner_;
};

// Printing the time a timer or ticker delivered (Go: t.Format("15:04:05")).
// Clock is steady_clock, whose values are not dates; wall_time converts one
// to system_clock through the clocks' current offset (exact to the
// microseconds that separate two clock reads), and format_time formats it
// as local time with strftime's format (default "%H:%M:%S"):
//   for (auto t : goro::tick(1s)) std::printf("Tick at %s\n", goro::format_time(t).c_str());
GORO_EXPORT std::chrono::system_clock::time_point wall_time(Clock::time_point t);
GORO_EXPORT std::string format_time(Clock::time_point t, const char* format = "%H:%M:%S");

// time.Tick: a channel that receives the time every d, for as long as it has
// a handle. Non-positive d gives the nil channel, as Go's Tick returns nil.
GORO_EXPORT Chan<Clock::time_point> tick(Clock::duration d);
template <class Rep, class Period>
Chan<Clock::time_point> tick(std::chrono::duration<Rep, Period> d) {
  return tick(std::chrono::ceil<Clock::duration>(d));
}

}  // namespace goro
