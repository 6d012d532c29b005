// Ports of golang.org/x/time/rate's rate_test.go, by description
// (re-implemented, not copied), Go's test names kept: TestEvery,
// TestLimiterBurst1, TestLimiterBurst3, TestLimiterJumpBackwards,
// TestLimiter_noTruncationErrors, TestSimultaneousRequests,
// TestLongRunningQPS, TestSimpleReserve, TestMix, TestCancelInvalid,
// TestCancelLast, TestCancelTooLate, TestCancel0Tokens, TestCancel1Token,
// TestCancelMulti, TestReserveJumpBack, TestReserveJumpBackCancel,
// TestReserveSetLimit, TestReserveSetBurst, TestReserveSetLimitCancel,
// TestReserveMax, TestWaitSimple, TestWaitCancel, TestWaitTimeout,
// TestWaitInf, TestZeroLimit, TestSetAfterZeroLimit, TestTinyLimit.
// Go's wait tests run on a fake clock; these run on the real one and check
// the delay from below (the limiter must have made the caller wait that
// long) and only loosely from above. Plus: a limiter shared by 100
// goroutines for 2 s never lets more through than its rate allows.
#include <goro/rate.h>

#include <atomic>
#include <cmath>
#include <thread>

#include "common.h"

namespace goro::test {
namespace {

using namespace std::chrono_literals;
using rate::Limiter;

class GoRate : public ProcsTest {};
GORO_INSTANTIATE_PROCS(GoRate);

constexpr Clock::duration d = 100ms;
const Clock::time_point t0 = Clock::now();
const Clock::time_point t1 = t0 + 1 * d, t2 = t0 + 2 * d, t3 = t0 + 3 * d, t4 = t0 + 4 * d, t5 = t0 + 5 * d,
                        t9 = t0 + 9 * d;

struct Allow {
  Clock::time_point t;
  double tokens;  // tokens_at(t) before the call
  int n;
  bool ok;
};

void run_allows(Limiter& lim, std::initializer_list<Allow> allows) {
  int step = 0;
  for (const Allow& a : allows) {
    EXPECT_EQ(lim.tokens_at(a.t), a.tokens) << "step " << step;
    EXPECT_EQ(lim.allow_n(a.t, a.n), a.ok) << "step " << step;
    ++step;
  }
}

// Multiples of d from t0, rounded to the nearest.
long d_since(Clock::time_point t) { return std::lround(std::chrono::duration<double>(t - t0) / d); }

struct Request {
  Clock::time_point t;
  int n;
  Clock::time_point act;
  bool ok;
};

rate::Reservation reserve(Limiter& lim, Request q, Clock::duration max_wait = rate::inf_duration) {
  rate::Reservation r = lim.reserve_n(q.t, q.n, max_wait);
  EXPECT_EQ(r.ok(), q.ok) << "reserve_n(t" << d_since(q.t) << ", " << q.n << ")";
  if (r.ok() && q.ok) {
    EXPECT_EQ(d_since(r.time_to_act()), d_since(q.act)) << "reserve_n(t" << d_since(q.t) << ", " << q.n << ")";
  }
  return r;
}

TEST(GoRateTable, TestEvery) {
  struct {
    Clock::duration interval;
    double want;
  } cases[] = {
      {0ns, rate::inf},  {-1ns, rate::inf},  {1ns, 1e9},    {1us, 1e6},     {1ms, 1e3},
      {10ms, 100},       {100ms, 10},        {1s, 1},       {2s, 0.5},      {2500ms, 0.4},
      {4s, 0.25},        {10s, 0.1},         {Clock::duration::max(), 1e9 / static_cast<double>(Clock::duration::max().count())},
  };
  for (auto& c : cases) {
    double got = rate::every(c.interval);
    if (std::isinf(c.want)) {
      EXPECT_TRUE(std::isinf(got)) << c.interval.count();
    } else {
      EXPECT_NEAR(got / c.want, 1.0, 1e-9) << c.interval.count();
    }
  }
  EXPECT_NE(rate::Limit(10), rate::inf);  // TestLimit
}

TEST(GoRateTable, TestLimiterBurst1) {
  Limiter lim(10, 1);
  run_allows(lim, {{t0, 1, 1, true}, {t0, 0, 1, false}, {t0, 0, 1, false}, {t1, 1, 1, true}, {t1, 0, 1, false},
                   {t1, 0, 1, false}, {t2, 1, 2, false},  // the burst is 1: n=2 always fails
                   {t2, 1, 1, true}, {t2, 0, 1, false}});
}

TEST(GoRateTable, TestLimiterBurst3) {
  Limiter lim(10, 3);
  run_allows(lim, {{t0, 3, 2, true}, {t0, 1, 2, false}, {t0, 1, 1, true}, {t0, 0, 1, false}, {t1, 1, 4, false},
                   {t2, 2, 1, true}, {t3, 2, 1, true}, {t4, 2, 1, true}, {t4, 1, 1, true}, {t4, 0, 1, false},
                   {t4, 0, 1, false}, {t9, 3, 3, true}, {t9, 0, 0, true}});
}

TEST(GoRateTable, TestLimiterJumpBackwards) {
  Limiter lim(10, 3);
  run_allows(lim, {{t1, 3, 1, true},  // start at t1
                   {t0, 2, 1, true},  // back to t0: two tokens left
                   {t0, 1, 1, true}, {t0, 0, 1, false}, {t0, 0, 1, false},
                   {t1, 1, 1, true},  // a token accrued
                   {t1, 0, 1, false}, {t1, 0, 1, false},
                   {t2, 1, 1, true},  // another
                   {t2, 0, 1, false}, {t2, 0, 1, false}});
}

TEST(GoRateTable, TestLimiter_noTruncationErrors) {
  // A rate whose period is not a whole number of nanoseconds.
  EXPECT_TRUE(Limiter(0.7692307692307693, 1).allow());
}

TEST_P(GoRate, TestSimultaneousRequests) {
  // A bucket that barely refills: of 15 concurrent requests, exactly the burst of 5 pass.
  Limiter lim(1, 5);
  std::atomic<int> ok{0};
  run([&] {
    WaitGroup wg;
    for (int i = 0; i < 15; ++i) {
      wg.go([&] {
        if (lim.allow()) ok.fetch_add(1);
      });
    }
    wg.wait();
  });
  EXPECT_EQ(ok.load(), 5);
}

TEST(GoRateTable, TestLongRunningQPS) {
  // 5 s of requests every 2 ms against 100/s with a burst of 100, on a
  // simulated clock: at most the ideal count + 1, at least 99.9% of it.
  Limiter lim(100, 100);
  Clock::time_point now = t0, end = t0 + 5s;
  int ok = 0;
  for (; now < end; now += 2ms) ok += lim.allow_n(now, 1) ? 1 : 0;
  double ideal = 100 + 100 * std::chrono::duration<double>(now - t0).count();
  EXPECT_LE(ok, static_cast<int>(ideal + 1));
  EXPECT_GE(ok, static_cast<int>(0.999 * ideal));
}

TEST(GoRateTable, TestSimpleReserve) {
  Limiter lim(10, 2);
  reserve(lim, {t0, 2, t0, true});
  reserve(lim, {t0, 2, t2, true});
  reserve(lim, {t3, 2, t4, true});
}

TEST(GoRateTable, TestMix) {
  Limiter lim(10, 2);
  reserve(lim, {t0, 3, t1, false});  // n exceeds the burst
  reserve(lim, {t0, 2, t0, true});
  EXPECT_FALSE(lim.allow_n(t1, 2));  // not enough tokens
  reserve(lim, {t1, 2, t2, true});
  EXPECT_FALSE(lim.allow_n(t1, 1));  // tokens are negative
  EXPECT_TRUE(lim.allow_n(t3, 1));
}

TEST(GoRateTable, TestCancelInvalid) {
  Limiter lim(10, 2);
  reserve(lim, {t0, 2, t0, true});
  rate::Reservation r = reserve(lim, {t0, 3, t3, false});
  r.cancel_at(t0);                   // not ok: nothing to give back
  reserve(lim, {t0, 2, t2, true});  // no extra tokens appeared
}

TEST(GoRateTable, TestCancelLast) {
  Limiter lim(10, 2);
  reserve(lim, {t0, 2, t0, true});
  rate::Reservation r = reserve(lim, {t0, 2, t2, true});
  r.cancel_at(t1);  // both tokens come back
  reserve(lim, {t1, 2, t2, true});
}

TEST(GoRateTable, TestCancelTooLate) {
  Limiter lim(10, 2);
  reserve(lim, {t0, 2, t0, true});
  rate::Reservation r = reserve(lim, {t0, 2, t2, true});
  r.cancel_at(t3);  // after its time to act: no effect
  reserve(lim, {t3, 2, t4, true});
}

TEST(GoRateTable, TestCancel0Tokens) {
  Limiter lim(10, 2);
  reserve(lim, {t0, 2, t0, true});
  rate::Reservation r = reserve(lim, {t0, 1, t1, true});
  reserve(lim, {t0, 1, t2, true});
  r.cancel_at(t0);  // a later reservation was promised t2: nothing comes back
  reserve(lim, {t0, 1, t3, true});
}

TEST(GoRateTable, TestCancel1Token) {
  Limiter lim(10, 2);
  reserve(lim, {t0, 2, t0, true});
  rate::Reservation r = reserve(lim, {t0, 2, t2, true});
  reserve(lim, {t0, 1, t3, true});
  r.cancel_at(t2);  // one token comes back
  reserve(lim, {t2, 2, t4, true});
}

TEST(GoRateTable, TestCancelMulti) {
  Limiter lim(10, 4);
  reserve(lim, {t0, 4, t0, true});
  rate::Reservation ra = reserve(lim, {t0, 3, t3, true});
  reserve(lim, {t0, 1, t4, true});
  rate::Reservation rc = reserve(lim, {t0, 1, t5, true});
  rc.cancel_at(t1);  // one back
  ra.cancel_at(t1);  // two back, as if C had never been reserved
  reserve(lim, {t1, 3, t5, true});
}

TEST(GoRateTable, TestReserveJumpBack) {
  Limiter lim(10, 2);
  reserve(lim, {t1, 2, t1, true});  // start at t1
  reserve(lim, {t0, 1, t1, true});  // must still respect the limit and burst
  reserve(lim, {t2, 2, t3, true});
  reserve(lim, {t0, 3, {}, false});  // over the burst: the state must not change
  reserve(lim, {t2, 1, t4, true});
  reserve(lim, {t0, 2, {}, false}, d);  // too long a wait: the state must not change
  reserve(lim, {t2, 1, t5, true});
}

TEST(GoRateTable, TestReserveJumpBackCancel) {
  Limiter lim(10, 2);
  reserve(lim, {t1, 2, t1, true});  // start at t1
  rate::Reservation r = reserve(lim, {t1, 2, t3, true});
  reserve(lim, {t1, 1, t4, true});
  r.cancel_at(t0);                   // one token back
  reserve(lim, {t1, 2, t4, true});  // must still respect the limit and burst
}

TEST(GoRateTable, TestReserveSetLimit) {
  Limiter lim(5, 2);
  reserve(lim, {t0, 2, t0, true});
  reserve(lim, {t0, 2, t4, true});
  lim.set_limit_at(t2, 10);
  reserve(lim, {t2, 1, t4, true});
}

TEST(GoRateTable, TestReserveSetBurst) {
  Limiter lim(5, 2);
  reserve(lim, {t0, 2, t0, true});
  reserve(lim, {t0, 2, t4, true});
  lim.set_burst_at(t3, 4);
  reserve(lim, {t0, 4, t9, true});
}

TEST(GoRateTable, TestReserveSetLimitCancel) {
  Limiter lim(5, 2);
  reserve(lim, {t0, 2, t0, true});
  rate::Reservation r = reserve(lim, {t0, 2, t4, true});
  lim.set_limit_at(t2, 10);
  r.cancel_at(t2);  // two back
  reserve(lim, {t2, 2, t3, true});
}

TEST(GoRateTable, TestReserveMax) {
  Limiter lim(10, 2);
  reserve(lim, {t0, 2, t0, true}, d);
  reserve(lim, {t0, 1, t1, true}, d);   // within the longest wait
  reserve(lim, {t0, 1, t2, false}, d);  // beyond it
}

// Waits n and checks the error and that the call took at least `delay`
// multiples of d less half a d (the limiter made it wait), and at most
// that plus 5 s (it did not hang).
void run_wait(Limiter& lim, const char* name, const Context& ctx, int n, int delay, bool want_ok,
              std::error_code want_err = {}) {
  auto start = Clock::now();
  std::error_code ec = lim.wait_n(ctx, n);
  auto took = Clock::now() - start;
  EXPECT_EQ(!ec, want_ok) << name << ": " << ec.message();
  if (want_err) {
    EXPECT_EQ(ec, want_err) << name;
  }
  EXPECT_GE(took, delay * d - d / 2) << name;
  EXPECT_LT(took, delay * d + 5s) << name;
}

TEST_P(GoRate, TestWaitSimple) {
  run([] {
    Limiter lim(10, 3);
    auto [ctx, cancel] = with_cancel(background());
    cancel();
    run_wait(lim, "already-cancelled", ctx, 1, 0, false, errc::canceled);
    run_wait(lim, "exceed-burst-error", background(), 4, 0, false, errc::exceeds_burst);
    run_wait(lim, "act-now", background(), 2, 0, true);
    run_wait(lim, "act-later", background(), 3, 2, true);
  });
}

TEST_P(GoRate, TestWaitCancel) {
  run([] {
    Limiter lim(10, 3);
    auto [ctx, cancel] = with_cancel(background());
    run_wait(lim, "act-now", ctx, 2, 0, true);  // one token left
    go([cancel = cancel] {
      sleep_for(d);
      cancel();
    });
    run_wait(lim, "will-cancel", ctx, 3, 1, false, errc::canceled);
    // The three reserved tokens came back: two are there at once.
    run_wait(lim, "act-now-after-cancel", background(), 2, 0, true);
  });
}

TEST_P(GoRate, TestWaitTimeout) {
  run([] {
    Limiter lim(10, 3);
    auto [ctx, cancel] = with_timeout(background(), d);
    run_wait(lim, "act-now", ctx, 2, 0, true);
    // Two more tokens take 200 ms, past the deadline: an error at once.
    run_wait(lim, "w-timeout-err", ctx, 3, 0, false, errc::would_exceed_deadline);
    cancel();
  });
}

TEST_P(GoRate, TestWaitInf) {
  run([] {
    Limiter lim(rate::inf, 0);
    run_wait(lim, "exceed-burst-no-error", background(), 3, 0, true);
  });
}

TEST(GoRateTable, TestZeroLimit) {
  Limiter lim(0, 1);
  EXPECT_TRUE(lim.allow()) << "the bucket starts full";
  EXPECT_FALSE(lim.allow()) << "and a rate of 0 never refills it";
}

TEST_P(GoRate, TestSetAfterZeroLimit) {
  run([] {
    Limiter lim(0, 1);
    EXPECT_TRUE(lim.allow());
    EXPECT_FALSE(lim.allow());
    lim.set_limit(10);
    run_wait(lim, "wait-after-set-nonzero-after-zero", background(), 1, 1, true);
  });
}

TEST(GoRateTable, TestTinyLimit) {
  Limiter lim(1e-10, 1);
  EXPECT_TRUE(lim.allow());
  EXPECT_FALSE(lim.allow()) << "a tiny rate must not overflow into a token";
}

// Beyond Go's tests.

TEST(RateLimiter, WaitWithoutContextThrowsForAZeroBurst) {
  Limiter lim(10, 0);
  try {
    lim.wait();
    ADD_FAILURE() << "no exception";
  } catch (const std::system_error& e) {
    EXPECT_EQ(e.code(), errc::exceeds_burst);
    EXPECT_STREQ(e.what(), "rate: Wait(n) exceeds limiter's burst");
  }
}

TEST(RateLimiter, CancelTwiceGivesBackOnce) {
  Limiter lim(10, 2);
  reserve(lim, {t0, 2, t0, true});
  rate::Reservation r = reserve(lim, {t0, 2, t2, true});
  r.cancel_at(t1);
  r.cancel_at(t1);
  EXPECT_EQ(lim.tokens_at(t1), 1);  // -2, +1 accrued by t1, +2 given back once
}

// 100 goroutines share one limiter of 50/s with a burst of 10 for 2 s
// (wall time, counted, not timed): at no point may more events have passed
// than burst + rate x elapsed, and every waiter gets through in the end.
TEST_P(GoRate, SharedBy100GoroutinesNeverExceedsItsRate) {
  constexpr double kRate = 50;
  constexpr int kBurst = 10;
  Limiter lim(kRate, kBurst);
  std::atomic<int> passed{0};
  std::atomic<int> violations{0};
  const auto start = Clock::now();
  const auto end = start + 2s;
  run([&] {
    auto [ctx, cancel] = with_deadline(background(), end);
    WaitGroup wg;
    for (int i = 0; i < 100; ++i) {
      wg.go([&, i, ctx = ctx] {
        while (Clock::now() < end) {
          if (i % 2 == 0) {
            if (lim.wait(ctx)) return;  // the deadline: would_exceed_deadline or deadline_exceeded
          } else if (!lim.allow()) {
            sleep_for(1ms);
            continue;
          }
          int n = passed.fetch_add(1) + 1;
          // Read the clock after counting: the bound can only be looser.
          double allowed = kBurst + kRate * std::chrono::duration<double>(Clock::now() - start).count();
          if (n > allowed + 1e-6) violations.fetch_add(1);
        }
      });
    }
    wg.wait();
    cancel();
  });
  EXPECT_EQ(violations.load(), 0);
  double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
  EXPECT_LE(passed.load(), kBurst + kRate * elapsed + 1);
  EXPECT_GE(passed.load(), kBurst + kRate * 1.0) << "fewer than one second's worth passed in two";
}

}  // namespace
}  // namespace goro::test
