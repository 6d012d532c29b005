// Ports of Go's src/time/sleep_test.go and tick_test.go cases about Stop,
// Reset and AfterFunc, by description (re-implemented, not copied): TestAfterFunc,
// TestAfterStress-like, TestTimerStopStress, TestSleepZeroDeadlock-like,
// TestReset, TestAfterFuncStop, TestTimerStopped (Go 1.23: no stale value after
// Stop/Reset), TestTicker, TestTickerStopWithDirectInitialization-like.
#include <atomic>

#include "common.h"

namespace goro::test {
namespace {

using namespace std::chrono_literals;

class GoTime : public ProcsTest {};
GORO_INSTANTIATE_PROCS(GoTime);

TEST_P(GoTime, TestAfterFunc) {
  run([] {
    std::atomic<int> i{10};
    Chan<bool> c(0);
    std::function<void()> f;
    f = [&] {
      if (--i >= 0) {
        after_func(0ns, f);
        sleep_for(1s);  // a long body does not hold up the next: each runs in its own goroutine
      } else {
        c.send(true);
      }
    };
    after_func(0ns, f);
    c.recv();
    EXPECT_LT(i.load(), 0);
  });
}

TEST_P(GoTime, TestAfterFuncStop) {
  run([] {
    std::atomic<bool> ran{false};
    Timer t = after_func(1h, [&] { ran = true; });
    EXPECT_TRUE(t.stop());
    EXPECT_FALSE(t.stop());
    EXPECT_FALSE(ran.load());
    Chan<bool> fired(1);
    {
      Timer quick = after_func(1ms, [fired] { fired.send(true); });
    }  // destroying the handle does not cancel
    EXPECT_EQ(fired.recv(), true);
  });
}

TEST_P(GoTime, TestTimerStopStress) {
  run([] {
    for (int i = 0; i < 100; ++i) {
      go([i] {
        Timer t = after_func(2s, [i] { ADD_FAILURE() << "timer " << i << " was not stopped"; });
        sleep_for(1ms);
        t.stop();
      });
    }
    sleep_for(20ms);
  });
}

TEST_P(GoTime, TestReset) {
  run([] {
    Timer t(1h);
    EXPECT_TRUE(t.reset(2ms)) << "reset of a pending timer";
    t.c().recv();
    EXPECT_FALSE(t.reset(1h)) << "reset of a fired timer";
    EXPECT_TRUE(t.stop());
    EXPECT_FALSE(t.stop());
  });
}

// Go 1.23 semantics: after stop or reset returns, nothing from the old
// schedule is ever received, even if the timer had already fired.
TEST_P(GoTime, TestTimerStoppedNoStaleValue) {
  run([] {
    for (int i = 0; i < 20; ++i) {
      Timer t(100us);
      sleep_for(1ms);  // it has fired into its channel by now (or is firing)
      t.stop();
      EXPECT_FALSE(t.c().try_recv().has_value()) << "stale value after stop";
      Timer u(100us);
      sleep_for(1ms);
      u.reset(1h);
      EXPECT_FALSE(u.c().try_recv().has_value()) << "stale value after reset";
      u.stop();
    }
  });
}

TEST_P(GoTime, TestAfter) {
  run([] {
    auto start = Clock::now();
    auto got = after(3ms).recv();
    ASSERT_TRUE(got.has_value());
    EXPECT_GE(*got - start, 3ms);
    EXPECT_GE(Clock::now() - start, 3ms);
  });
}

TEST_P(GoTime, TestTicker) {
  run([] {
    Ticker tk(1ms);
    Clock::time_point prev{};
    for (int i = 0; i < 5; ++i) {
      auto t = *tk.c().recv();
      EXPECT_GT(t, prev);
      prev = t;
    }
    tk.reset(2ms);
    tk.c().recv();
    tk.stop();
    sleep_for(5ms);
    EXPECT_FALSE(tk.c().try_recv().has_value()) << "tick after stop";
    EXPECT_THROW(Ticker(0ns), panic_error);
  });
}

// Regression: a timer falling due exactly while a goroutine parks on that
// timer's channel. The parking goroutine still holds the channel lock until
// its park hook runs; the scheduler used to fire due timers right there, and
// the timer's send then waited for that lock forever. Short timers make the
// window likely; the test hangs (ctest timeout) if the bug is back.
TEST_P(GoTime, TimerDueWhileReceiverParks) {
  run([] {
    for (std::size_t i = 0; i < scaled(20000); ++i) {
      Timer t(std::chrono::microseconds(i % 3));
      EXPECT_TRUE(t.c().recv().has_value());
    }
  });
}

// A slow receiver misses ticks: the channel holds one.
TEST_P(GoTime, TestTickerDropsTicksForSlowReceivers) {
  run([] {
    Ticker tk(1ms);
    sleep_for(10ms);
    EXPECT_LE(tk.c().size(), 1u);
    EXPECT_TRUE(tk.c().recv().has_value());
  });
}

}  // namespace
}  // namespace goro::test
