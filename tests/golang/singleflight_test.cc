// Ports of golang.org/x/sync/singleflight's singleflight_test.go, by
// description (re-implemented, not copied), Go's test names kept: TestDo,
// TestDoErr, TestDoDupSuppress, TestForget, TestDoChan, TestPanicDo,
// TestPanicDoChan, TestPanicDoSharedByDoChan, ExampleGroup.
// Where goro differs: a panic in Go's DoChan callback crashes the process
// (a channel cannot carry a panic); in goro an exception from fn reaches
// every channel waiter as ChanResult::error, so the two DoChan panic tests
// check that delivery instead of a crash.
// Not ported: TestGoexitDo (no runtime.Goexit in goro), TestPanicErrorUnwrap
// (C++ exceptions keep their type; there is no wrapping panicError).
#include <goro/singleflight.h>

#include <atomic>
#include <stdexcept>
#include <string>
#include <thread>

#include "common.h"

namespace goro::test {
namespace {

using namespace std::chrono_literals;

class GoSingleFlight : public ProcsTest {};
GORO_INSTANTIATE_PROCS(GoSingleFlight);

TEST_P(GoSingleFlight, TestDo) {
  run([] {
    SingleFlight<std::string, std::string> g;
    auto r = g.call("key", [] { return std::string("bar"); });
    EXPECT_EQ(r.value, "bar");
    EXPECT_FALSE(r.shared);
  });
}

TEST_P(GoSingleFlight, TestDoErr) {
  run([] {
    SingleFlight<std::string, int> g;
    try {
      g.call("key", []() -> int { throw std::runtime_error("Some error"); });
      ADD_FAILURE() << "no exception";
    } catch (const std::runtime_error& e) {
      EXPECT_STREQ(e.what(), "Some error");
    }
    // The failed call is gone: the next one runs.
    EXPECT_EQ(g.call("key", [] { return 7; }).value, 7);
  });
}

TEST_P(GoSingleFlight, TestDoDupSuppress) {
  run([] {
    SingleFlight<std::string, std::string> g;
    WaitGroup first_in, all_done;
    Chan<std::string> c(1);
    std::atomic<int> calls{0};
    auto fn = [&] {
      if (calls.fetch_add(1) + 1 == 1) first_in.done();  // the first call is inside fn
      std::string v = *c.recv();
      c.send(v);  // pump: available to any later call
      sleep_for(10ms);  // let more callers arrive
      return v;
    };
    constexpr int n = 10;
    first_in.add(1);
    std::atomic<int> shared{0};
    for (int i = 0; i < n; ++i) {
      first_in.add(1);
      all_done.add(1);
      go([&] {
        first_in.done();
        auto r = g.call("key", fn);
        EXPECT_EQ(r.value, "bar");
        if (r.shared) shared.fetch_add(1);
        all_done.done();
      });
    }
    first_in.wait();  // one caller is in fn, all have reached the call
    c.send("bar");
    all_done.wait();
    int got = calls.load();
    EXPECT_GT(got, 0);
    EXPECT_LT(got, n) << "no call was suppressed";
    EXPECT_GT(shared.load(), 0);
  });
}

TEST_P(GoSingleFlight, TestForget) {
  run([] {
    SingleFlight<std::string, int> g;
    Chan<std::monostate> first_started(0), unblock_first(0), first_finished(0);
    // The first call still works on g after its fn returns (it drops its
    // key): joined before g goes out of scope. (Go's test needs no join: its
    // g is garbage-collected.)
    WaitGroup first_returned;
    first_returned.go([&, first_started, unblock_first, first_finished] {
      g.call("key", [&] {
        first_started.close();
        unblock_first.recv();
        first_finished.close();
        return 1;
      });
    });
    first_started.recv();
    g.forget("key");
    Chan<std::monostate> unblock_second(0);
    auto second = g.call_chan("key", [unblock_second] {
      unblock_second.recv();
      return 2;
    });
    unblock_first.close();
    first_finished.recv();
    auto third = g.call_chan("key", [] { return 3; });
    unblock_second.close();
    second.recv();
    auto r = *third.recv();
    ASSERT_TRUE(r.value.has_value());
    EXPECT_EQ(*r.value, 2) << "the third call must share the second's result";
    first_returned.wait();
  });
}

TEST_P(GoSingleFlight, TestDoChan) {
  run([] {
    SingleFlight<std::string, std::string> g;
    auto r = *g.call_chan("key", [] { return std::string("bar"); }).recv();
    ASSERT_TRUE(r.value.has_value());
    EXPECT_EQ(*r.value, "bar");
    EXPECT_FALSE(r.error);
  });
}

TEST_P(GoSingleFlight, TestPanicDo) {
  // Every caller sharing a call whose fn throws gets the exception (none hangs).
  run([] {
    SingleFlight<std::string, int> g;
    Chan<std::monostate> release(0);
    auto fn = [release]() -> int {
      release.recv();
      throw std::logic_error("invalid memory address or nil pointer dereference");
    };
    constexpr int n = 5;
    std::atomic<int> thrown{0};
    WaitGroup wg;
    for (int i = 0; i < n; ++i) {
      wg.go([&] {
        try {
          g.call("key", fn);
        } catch (const std::logic_error& e) {
          EXPECT_STREQ(e.what(), "invalid memory address or nil pointer dereference");
          thrown.fetch_add(1);
        }
      });
    }
    // Let the callers pile up on one call, then fail it; a caller that
    // arrives after the failure starts a new call, which fails the same way.
    for (int i = 0; i < 50; ++i) yield();
    release.close();
    Chan<std::monostate> done(0);
    go([&wg, done] {
      wg.wait();
      done.close();
    });
    bool hung = select(recv(done), recv(after(10s))) == 1;
    ASSERT_FALSE(hung) << "a call hangs";
    EXPECT_EQ(thrown.load(), n);
  });
}

TEST_P(GoSingleFlight, TestPanicDoChan) {
  run([] {
    SingleFlight<std::string, int> g;
    auto r = *g.call_chan("", []() -> int { throw std::runtime_error("Panicking in DoChan"); }).recv();
    EXPECT_FALSE(r.value.has_value());
    ASSERT_TRUE(r.error);
    try {
      std::rethrow_exception(r.error);
    } catch (const std::runtime_error& e) {
      EXPECT_STREQ(e.what(), "Panicking in DoChan");
    }
  });
}

TEST_P(GoSingleFlight, TestPanicDoSharedByDoChan) {
  run([] {
    SingleFlight<std::string, int> g;
    Chan<std::monostate> blocked(0), unblock(0);
    std::atomic<bool> do_threw{false};
    WaitGroup wg;
    wg.go([&, blocked, unblock] {
      try {
        g.call("", [&]() -> int {
          blocked.close();
          unblock.recv();
          throw std::runtime_error("Panicking in Do");
        });
      } catch (const std::runtime_error&) {
        do_threw.store(true);
      }
    });
    blocked.recv();
    std::atomic<bool> ran{false};
    auto ch = g.call_chan("", [&]() -> int {
      ran.store(true);
      return 0;
    });
    unblock.close();
    auto r = *ch.recv();
    wg.wait();
    EXPECT_FALSE(ran.load()) << "call_chan ran its own callback";
    EXPECT_TRUE(r.shared);
    ASSERT_TRUE(r.error);
    try {
      std::rethrow_exception(r.error);
    } catch (const std::runtime_error& e) {
      EXPECT_STREQ(e.what(), "Panicking in Do");
    }
    EXPECT_TRUE(do_threw.load());
  });
}

TEST_P(GoSingleFlight, ExampleGroup) {
  run([] {
    SingleFlight<std::string, std::string> g;
    Chan<std::monostate> block(0);
    auto c1 = g.call_chan("key", [block] {
      block.recv();
      return std::string("func 1");
    });
    auto c2 = g.call_chan("key", [block] {
      block.recv();
      return std::string("func 2");
    });
    block.close();
    auto r1 = *c1.recv();
    auto r2 = *c2.recv();
    EXPECT_TRUE(r2.shared);
    EXPECT_EQ(*r1.value, *r2.value);
    EXPECT_EQ(*r1.value, "func 1");
  });
}

// Beyond Go's tests: plain threads share a call with goroutines, and keys
// stay independent under load: every caller gets its own key's value, and
// each key's fn runs at most once per overlapping burst.
TEST_P(GoSingleFlight, ThreadsAndGoroutinesShareCallsPerKey) {
  SingleFlight<int, int> g;
  std::atomic<int> runs{0}, wrong{0};
  Chan<std::monostate> gate(0);
  auto fn_for = [&](int key) {
    return [&, key] {
      runs.fetch_add(1);
      gate.recv();  // closed below: every fn waits until all callers are in
      return key * 10;
    };
  };
  std::atomic<int> finished{0};
  std::vector<std::thread> threads;
  for (int k = 0; k < 4; ++k) {
    threads.emplace_back([&, k] {
      if (g.call(k, fn_for(k)).value != k * 10) wrong.fetch_add(1);
      finished.fetch_add(1);
    });
  }
  run([&] {
    WaitGroup wg;
    for (int i = 0; i < 40; ++i) {
      wg.go([&, i] {
        if (g.call(i % 4, fn_for(i % 4)).value != (i % 4) * 10) wrong.fetch_add(1);
        finished.fetch_add(1);
      });
    }
    sleep_for(20ms);
    gate.close();
    wg.wait();
  });
  for (auto& t : threads) t.join();
  EXPECT_EQ(wrong.load(), 0);
  EXPECT_EQ(finished.load(), 44);
  EXPECT_GE(runs.load(), 4);
  EXPECT_LT(runs.load(), 44) << "no call was shared";
}

}  // namespace
}  // namespace goro::test
