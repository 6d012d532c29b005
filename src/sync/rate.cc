// src/sync/rate.cc: the token bucket of goro/rate.h (x/time/rate's design:
// the bucket is brought up to date lazily, at each call, from the time
// elapsed since the last; a reservation may drive it negative, and the
// debt is the time later events wait).
#include "goro/rate.h"

#include <cmath>
#include <mutex>
#include <optional>

#include "goro/select.h"
#include "goro/time.h"

namespace goro::rate {

namespace {

// Tokens that accrue at `limit` over `d` (0 for a limit <= 0).
double tokens_from_duration(Limit limit, double seconds) {
  if (limit <= 0) return 0;
  return seconds * limit;
}

// The time it takes `limit` to accrue `tokens` (inf_duration when it never
// does or the result does not fit).
Clock::duration duration_from_tokens(Limit limit, double tokens) {
  if (limit <= 0) return inf_duration;
  double ns = tokens / limit * 1e9;
  if (!(ns < static_cast<double>(inf_duration.count()))) return inf_duration;
  return Clock::duration(static_cast<Clock::rep>(ns));
}

double seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

}  // namespace

Limit every(Clock::duration interval) {
  if (interval <= Clock::duration::zero()) return inf;
  return 1 / seconds(interval);
}

double Limiter::advance(Clock::time_point t) const {
  double elapsed = 0;
  if (last_ == Clock::time_point::min()) {
    elapsed = std::numeric_limits<double>::infinity();  // never used: as long ago as it gets
  } else if (t > last_) {
    elapsed = seconds(t - last_);
  }
  double tokens = tokens_ + tokens_from_duration(limit_, elapsed);
  return std::min(tokens, static_cast<double>(burst_));
}

Limit Limiter::limit() const {
  std::lock_guard<detail::RawMutex> lk(mu_);
  return limit_;
}

int Limiter::burst() const {
  std::lock_guard<detail::RawMutex> lk(mu_);
  return burst_;
}

double Limiter::tokens_at(Clock::time_point t) const {
  std::lock_guard<detail::RawMutex> lk(mu_);
  return advance(t);
}

// reserve_n(t, n, 0).ok() without building a Reservation (the hot path of
// allow()): the same decision and the same state change.
bool Limiter::allow_n(Clock::time_point t, int n) {
  std::lock_guard<detail::RawMutex> lk(mu_);
  if (limit_ == inf) return true;
  if (n > burst_) return false;
  const double tokens = advance(t) - n;
  Clock::duration wait = Clock::duration::zero();
  if (tokens < 0) {
    wait = duration_from_tokens(limit_, -tokens);  // may round to 0 for a tiny deficit, as Go's does
    if (wait > Clock::duration::zero()) return false;
  }
  last_ = t;
  tokens_ = tokens;
  last_event_ = t;
  return true;
}

Reservation Limiter::reserve_n(Clock::time_point t, int n, Clock::duration max_wait) {
  Reservation r;
  r.lim_ = this;
  std::lock_guard<detail::RawMutex> lk(mu_);
  if (limit_ == inf) {
    r.ok_ = true;
    r.tokens_ = n;
    r.time_to_act_ = t;
    return r;
  }
  const double tokens = advance(t) - n;
  Clock::duration wait = Clock::duration::zero();
  if (tokens < 0) wait = duration_from_tokens(limit_, -tokens);
  // A wait that never ends, or whose end does not fit a time_point, is never ok.
  const bool never = wait == inf_duration || wait > Clock::time_point::max() - t;
  r.limit_ = limit_;
  r.ok_ = n <= burst_ && !never && wait <= max_wait;
  if (r.ok_) {
    r.tokens_ = n;
    r.time_to_act_ = t + wait;
    last_ = t;
    tokens_ = tokens;
    last_event_ = r.time_to_act_;
  }
  return r;
}

Clock::duration Reservation::delay_from(Clock::time_point t) const {
  if (!ok_) return inf_duration;
  if (time_to_act_ <= t) return Clock::duration::zero();
  return time_to_act_ - t;
}

void Reservation::cancel_at(Clock::time_point t) {
  if (!ok_ || lim_ == nullptr) return;
  Limiter& lim = *lim_;
  std::lock_guard<detail::RawMutex> lk(lim.mu_);
  if (lim.limit_ == inf || tokens_ == 0 || time_to_act_ < t) return;
  // Reservations made after this one were promised times computed with
  // these tokens spent: the tokens they took after time_to_act_ stay spent.
  const double restore = tokens_ - tokens_from_duration(limit_, seconds(lim.last_event_ - time_to_act_));
  if (restore <= 0) return;
  lim.tokens_ = std::min(lim.advance(t) + restore, static_cast<double>(lim.burst_));
  lim.last_ = t;
  if (time_to_act_ == lim.last_event_ && limit_ > 0) {
    // This was the latest reservation: the previous one's time is the latest now.
    Clock::time_point prev = time_to_act_ - duration_from_tokens(limit_, tokens_);
    if (prev >= t) lim.last_event_ = prev;
  }
  tokens_ = 0;  // given back: a second cancel has nothing to return (Go's would return it again)
}

std::error_code Limiter::wait_n(const Context& ctx, int n) {
  int burst = 0;
  Limit limit = 0;
  {
    std::lock_guard<detail::RawMutex> lk(mu_);
    burst = burst_;
    limit = limit_;
  }
  if (n > burst && limit != inf) return make_error_code(errc::exceeds_burst);
  if (std::error_code ec = ctx.err()) return ec;
  const Clock::time_point now = Clock::now();
  Clock::duration wait_limit = inf_duration;
  if (std::optional<Clock::time_point> d = ctx.deadline()) wait_limit = *d - now;
  Reservation r = reserve_n(now, n, wait_limit);
  if (!r.ok()) return make_error_code(errc::would_exceed_deadline);
  const Clock::duration delay = r.delay_from(now);
  if (delay == Clock::duration::zero()) return {};
  Timer timer(delay);
  std::error_code ec;
  select(recv(timer.c()), recv(ctx.done(), [&](std::optional<std::monostate>) {
           // Not acting: give the tokens back, so that others may act sooner.
           r.cancel();
           ec = ctx.err();
         }));
  timer.stop();
  return ec;
}

void Limiter::wait() {
  if (std::error_code ec = wait_n(background(), 1)) throw std::system_error(ec);
}

void Limiter::set_limit_at(Clock::time_point t, Limit r) {
  std::lock_guard<detail::RawMutex> lk(mu_);
  tokens_ = advance(t);
  last_ = t;
  limit_ = r;
}

void Limiter::set_burst_at(Clock::time_point t, int b) {
  std::lock_guard<detail::RawMutex> lk(mu_);
  tokens_ = advance(t);
  last_ = t;
  burst_ = b;
}

}  // namespace goro::rate
