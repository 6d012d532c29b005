// goro/rate.h: golang.org/x/time/rate: a token-bucket rate limiter.
//
// A Limiter lets events happen at rate r per second on average, with bursts
// of at most b. The bucket starts full (b tokens) and refills at r tokens a
// second; each event takes one token (n for the _n forms).
//
//  - allow(): whether an event may happen now (takes a token if so). Never
//    blocks. allow_n(t, n): n events at time t.
//  - wait(ctx): blocks until an event may happen (parks a goroutine; blocks
//    a plain thread). Returns errc::canceled / errc::deadline_exceeded when
//    the context ends first (the tokens it had reserved are given back),
//    errc::would_exceed_deadline at once when the wait could not end before
//    the context's deadline, errc::exceeds_burst at once for n > burst.
//    wait() without a context throws std::system_error for the latter.
//  - reserve() / reserve_n(t, n): take the tokens now and learn how long to
//    wait (Reservation::delay()); cancel() gives back what it can.
//  - set_limit(r), set_burst(b), tokens(), limit(), burst().
//  - rate::inf: no limit (burst is then ignored); every(d): one event per d.
// A rate of 0 allows the initial burst and nothing after it.
//
// All members are thread-safe; the _at / _n forms that take a time are for
// tests and simulations (Go's AllowN, ReserveN, TokensAt, SetLimitAt, ...).
// Time is goro::Clock (monotonic); a time earlier than the last one used
// counts as that earlier time (it never adds tokens).
#pragma once

#include <goro/context.h>
#include <goro/detail/raw_mutex.h>
#include <goro/errc.h>
#include <goro/export.h>
#include <goro/runtime.h>

#include <chrono>
#include <limits>
#include <system_error>

namespace goro::rate {

// Events per second.
using Limit = double;

// No limit: every request is allowed, whatever the burst.
inline constexpr Limit inf = std::numeric_limits<double>::infinity();

// The delay of a reservation that can never act.
inline constexpr Clock::duration inf_duration = Clock::duration::max();

// One event every `interval` (rate::inf for interval <= 0).
GORO_EXPORT Limit every(Clock::duration interval);
template <class Rep, class Period>
Limit every(std::chrono::duration<Rep, Period> interval) {
  return every(std::chrono::duration_cast<Clock::duration>(interval));
}

class Limiter;

// Tokens taken from a Limiter for an event that may act at time_to_act().
class Reservation {
 public:
  // Whether the limiter can provide the tokens within the longest wait the
  // request allowed. A reservation that is not ok took nothing.
  bool ok() const { return ok_; }
  // How long to wait before acting: 0 if it may act now; inf_duration if not ok.
  GORO_EXPORT Clock::duration delay_from(Clock::time_point t) const;
  Clock::duration delay() const { return delay_from(Clock::now()); }
  Clock::time_point time_to_act() const { return time_to_act_; }
  // The event will not happen: give the tokens back, as far as that does not
  // let reservations made after this one act earlier than they were told.
  // No effect once time_to_act() has passed, or for one that is not ok.
  GORO_EXPORT void cancel_at(Clock::time_point t);
  void cancel() { cancel_at(Clock::now()); }

 private:
  friend class Limiter;
  Limiter* lim_ = nullptr;
  bool ok_ = false;
  int tokens_ = 0;
  Clock::time_point time_to_act_{};
  Limit limit_ = 0;  // the limiter's limit when reserved
};

class Limiter {
 public:
  // rate.NewLimiter(r, b): r events per second, bursts of at most b.
  Limiter(Limit r, int b) : limit_(r), burst_(b), tokens_(static_cast<double>(b)) {}
  Limiter(const Limiter&) = delete;
  Limiter& operator=(const Limiter&) = delete;

  GORO_EXPORT Limit limit() const;
  GORO_EXPORT int burst() const;
  // Tokens available at t (or now); negative while reservations wait.
  GORO_EXPORT double tokens_at(Clock::time_point t) const;
  double tokens() const { return tokens_at(Clock::now()); }

  bool allow() { return allow_n(Clock::now(), 1); }
  GORO_EXPORT bool allow_n(Clock::time_point t, int n);

  Reservation reserve() { return reserve_n(Clock::now(), 1); }
  // reserve_n(t, n): always "ok" unless n exceeds the burst (and the limit is
  // not inf); max_wait bounds the delay a successful reservation may have.
  GORO_EXPORT Reservation reserve_n(Clock::time_point t, int n, Clock::duration max_wait = inf_duration);

  std::error_code wait(const Context& ctx) { return wait_n(ctx, 1); }
  GORO_EXPORT std::error_code wait_n(const Context& ctx, int n);
  // Waits without a context; throws std::system_error(errc::exceeds_burst)
  // when the burst is 0 and the limit is not inf.
  GORO_EXPORT void wait();

  void set_limit(Limit r) { set_limit_at(Clock::now(), r); }
  GORO_EXPORT void set_limit_at(Clock::time_point t, Limit r);
  void set_burst(int b) { set_burst_at(Clock::now(), b); }
  GORO_EXPORT void set_burst_at(Clock::time_point t, int b);

 private:
  friend class Reservation;
  double advance(Clock::time_point t) const;  // tokens at t (mu_ held)

  mutable detail::RawMutex mu_;
  Limit limit_;
  int burst_;
  double tokens_;
  // The last time tokens_ was brought up to date; min(): never (the bucket
  // is still as constructed, full).
  Clock::time_point last_ = Clock::time_point::min();
  Clock::time_point last_event_ = Clock::time_point::min();  // latest time_to_act of a reservation
};

}  // namespace goro::rate
