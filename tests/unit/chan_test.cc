// tests/unit/chan_test.cc: Chan<T> and select beyond Go's own tests: the
// handle, element types, panics, FIFO service, plain threads, and the
// conservation stress (every value sent is received exactly once).
#include <atomic>
#include <memory>
#include <thread>
#include <utility>
#include <vector>

#include "common.h"

namespace goro::test {
namespace {

using namespace std::chrono_literals;

class ChanTest : public ProcsTest {};
GORO_INSTANTIATE_PROCS(ChanTest);

TEST_P(ChanTest, NilChannel) {
  Chan<int> nil;
  EXPECT_FALSE(nil);
  EXPECT_EQ(nil.size(), 0u);
  EXPECT_EQ(nil.capacity(), 0u);
  EXPECT_EQ(panic_message([&] { nil.close(); }), "close of nil channel");
  int v = 1;
  EXPECT_FALSE(nil.try_send(v));
  EXPECT_FALSE(nil.try_recv().has_value());
  EXPECT_EQ(select(recv(nil), default_case()), 1u);
}

TEST_P(ChanTest, ClosePanicsAndWakesEveryone) {
  run([] {
    Chan<int> c(0);
    std::atomic<int> got_nullopt{0}, send_panics{0};
    WaitGroup wg;
    for (int i = 0; i < 5; ++i) {
      wg.add(1);
      go([&] {
        if (!c.recv()) got_nullopt.fetch_add(1);
        wg.done();
      });
    }
    sleep_for(1ms);  // most receivers are parked by now; close wakes parked and late ones alike
    c.close();
    wg.wait();
    EXPECT_EQ(got_nullopt.load(), 5);

    Chan<int> d(0);
    for (int i = 0; i < 5; ++i) {
      wg.add(1);
      go([&] {
        if (panic_message([&] { d.send(1); }) == "send on closed channel") send_panics.fetch_add(1);
        wg.done();
      });
    }
    sleep_for(1ms);
    d.close();
    wg.wait();
    EXPECT_EQ(send_panics.load(), 5);
    EXPECT_EQ(panic_message([&] { d.close(); }), "close of closed channel");
    EXPECT_EQ(panic_message([&] { d.send(1); }), "send on closed channel");
    int v = 1;
    EXPECT_EQ(panic_message([&] { d.try_send(v); }), "send on closed channel");
  });
}

// A close that wakes more waiters than a P's run queue holds (the rest go
// to the global queue in one batch), of every kind: goroutines receiving,
// goroutines in a select whose other case never fires, and plain threads.
// Each must return once, seeing the close.
TEST_P(ChanTest, CloseWakesThousandsOfWaitersOfEveryKindExactlyOnce) {
  constexpr int kGoroutines = 3000, kSelects = 500, kThreads = 4;
  Chan<int> c(0);
  Chan<int> never(0);
  std::atomic<int> closed_seen{0}, other_case{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < kThreads; ++i) {
    threads.emplace_back([&] {
      if (!c.recv()) closed_seen.fetch_add(1);
    });
  }
  run([&] {
    WaitGroup wg;
    for (int i = 0; i < kGoroutines; ++i) {
      wg.go([&] {
        if (!c.recv()) closed_seen.fetch_add(1);
      });
    }
    for (int i = 0; i < kSelects; ++i) {
      wg.go([&] {
        select(recv(c, [&](std::optional<int> v) {
                 if (!v) closed_seen.fetch_add(1);
               }),
               recv(never, [&](auto) { other_case.fetch_add(1); }));
      });
    }
    sleep_for(20ms);  // most are parked by now; close wakes parked and late ones alike
    c.close();
    wg.wait();
  });
  for (auto& t : threads) t.join();
  EXPECT_EQ(closed_seen.load(), kGoroutines + kSelects + kThreads);
  EXPECT_EQ(other_case.load(), 0);
}

// More cases than select keeps on its stack (16): its bookkeeping goes to
// the heap. Each of 20 channels in turn is the ready one, found by the
// first pass (a value already buffered) and by a parked select (sent
// after it waits); the case that ran must be that channel's, with its
// value, and no other channel may lose or gain a value.
template <std::size_t... I>
int select_over_20(std::vector<Chan<int>>& cs, int& got, std::index_sequence<I...>) {
  int which = -1;
  select(recv(cs[I], [&, i = static_cast<int>(I)](int v) {
    which = i;
    got = v;
  })...);
  return which;
}

TEST_P(ChanTest, SelectOverMoreCasesThanItsInlineStorage) {
  run([] {
    std::vector<Chan<int>> cs;
    for (int i = 0; i < 20; ++i) cs.emplace_back(1);
    for (int round = 0; round < 2; ++round) {
      for (int i = 0; i < 20; ++i) {
        WaitGroup wg;
        if (round == 0) {
          cs[i].send(100 + i);
        } else {
          wg.go([&cs, i] {
            sleep_for(1ms);
            cs[i].send(100 + i);
          });
        }
        int got = -1;
        EXPECT_EQ(select_over_20(cs, got, std::make_index_sequence<20>{}), i);
        EXPECT_EQ(got, 100 + i);
        wg.wait();
        for (int k = 0; k < 20; ++k) EXPECT_EQ(cs[k].size(), 0u) << "channel " << k;
      }
    }
  });
}

TEST_P(ChanTest, HandleSemantics) {
  Chan<int> a(3);
  Chan<int> b = a;
  EXPECT_TRUE(a == b);
  EXPECT_FALSE(a != b);
  EXPECT_FALSE(a == Chan<int>(3));
  b.send(1);
  EXPECT_EQ(a.size(), 1u);
  Chan<int> m = std::move(b);
  EXPECT_FALSE(b);  // NOLINT(bugprone-use-after-move): moved-from is nil
  EXPECT_EQ(m.recv(), 1);
  auto made = make_chan<int>();
  EXPECT_EQ(made.capacity(), 0u);
}

struct NoDefault {
  explicit NoDefault(int v) : v(v) {}
  int v;
};

TEST_P(ChanTest, MoveOnlyLargeAndNonDefaultConstructibleElements) {
  run([] {
    Chan<std::unique_ptr<int>> c(2);
    c.send(std::make_unique<int>(5));
    auto p = std::make_unique<int>(6);
    EXPECT_TRUE(c.try_send(p));
    EXPECT_EQ(p, nullptr);  // moved on success
    auto q = std::make_unique<int>(7);
    EXPECT_FALSE(c.try_send(q));
    EXPECT_NE(q, nullptr);  // untouched on failure
    EXPECT_EQ(**c.recv(), 5);
    EXPECT_EQ(**c.recv(), 6);

    Chan<std::array<char, 4096>> big(0);
    go([big] {
      std::array<char, 4096> a;
      a.fill('x');
      big.send(a);
    });
    auto a = big.recv();
    EXPECT_EQ((*a)[4095], 'x');

    Chan<NoDefault> nd(1);
    nd.send(NoDefault(9));
    EXPECT_EQ(nd.recv()->v, 9);
    // Buffered elements left in a dropped channel are destroyed.
    auto counted = std::make_shared<int>(0);
    {
      Chan<std::shared_ptr<int>> keep(4);
      keep.send(counted);
      keep.send(counted);
      EXPECT_EQ(counted.use_count(), 3);
    }
    EXPECT_EQ(counted.use_count(), 1);
  });
}

// FIFO service of blocked receivers. One P makes the queueing order
// deterministic: each new receiver runs (and blocks) at the spawner's yield.
TEST(ChanFifo, BlockedReceiversAreServedFifo) {
  int saved = max_procs();
  set_max_procs(1);
  run([] {
    Chan<int> c(0);
    Chan<int> order(10);
    for (int i = 0; i < 5; ++i) {
      go([=] {
        c.recv();
        order.send(i);
      });
      yield();
    }
    for (int i = 0; i < 5; ++i) {
      c.send(0);
      EXPECT_EQ(order.recv(), i);
    }
  });
  set_max_procs(saved);
}

TEST_P(ChanTest, UnbufferedSendCompletesOnlyWhenReceived) {
  run([] {
    Chan<int> c(0);
    std::atomic<bool> sent{false};
    go([&] {
      c.send(1);
      sent = true;
    });
    sleep_for(2ms);
    EXPECT_FALSE(sent.load());
    EXPECT_EQ(c.recv(), 1);
  });
}

TEST_P(ChanTest, SelectIndexAndHandlers) {
  run([] {
    Chan<int> a(1), b(1);
    Chan<std::string> s(1);
    b.send(2);
    int got = 0;
    std::size_t i = select(recv(a, [&](std::optional<int> v) { got = *v; }),
                           recv(b, [&](std::optional<int> v) { got = *v; }), default_case([&] { got = -1; }));
    EXPECT_EQ(i, 1u);
    EXPECT_EQ(got, 2);
    bool sent = false;
    i = select(default_case(), send(s, "hi", [&] { sent = true; }));
    EXPECT_EQ(i, 1u);
    EXPECT_TRUE(sent);
    EXPECT_EQ(s.recv(), "hi");
    i = select(recv(a), default_case());
    EXPECT_EQ(i, 1u);
  });
}

TEST_P(ChanTest, SelectSendAndReceiveOnOneChannel) {
  run([] {
    Chan<int> c(0);
    WaitGroup wg;
    wg.add(1);
    int received = -1;
    go([&] {
      // A partner that receives: only the send case can complete.
      received = *c.recv();
      wg.done();
    });
    std::size_t i = select(send(c, 42), recv(c));
    wg.wait();
    EXPECT_EQ(i, 0u);
    EXPECT_EQ(received, 42);
  });
}

TEST_P(ChanTest, SelectTimeoutWithAfter) {
  run([] {
    Chan<int> never(0);
    auto start = Clock::now();
    std::size_t i = select(recv(never), recv(after(5ms)));
    EXPECT_EQ(i, 1u);
    EXPECT_GE(Clock::now() - start, 5ms);
  });
}

TEST_P(ChanTest, GoroutinesAndThreadsInEveryCombination) {
  const int n = int(scaled(20000));
  for (int cap : {0, 16}) {
    Chan<int> c(cap);
    std::atomic<long> sum{0};
    // thread -> goroutine
    run([&] {
      std::thread t([&] {
        for (int i = 0; i < n; ++i) c.send(i);
      });
      for (int i = 0; i < n; ++i) sum += *c.recv();
      t.join();
    });
    // goroutine -> thread
    WaitGroup wg;
    wg.add(1);
    go([&] {
      for (int i = 0; i < n; ++i) c.send(i);
      wg.done();
    });
    for (int i = 0; i < n; ++i) sum += *c.recv();
    wg.wait();
    // thread -> thread
    std::thread t([&] {
      for (int i = 0; i < n; ++i) c.send(i);
    });
    for (int i = 0; i < n; ++i) sum += *c.recv();
    t.join();
    // select on a plain thread
    std::thread t2([&] {
      for (int i = 0; i < n; ++i) c.send(i);
    });
    for (int i = 0; i < n; ++i) select(recv(c, [&](std::optional<int> v) { sum += *v; }));
    t2.join();
    EXPECT_EQ(sum.load(), 4L * n * (n - 1) / 2) << "cap " << cap;
  }
}

// Conservation: 4 producers x 4 consumers, every value received exactly
// once, for unbuffered, 1-slot and 64-slot channels, ended by close.
class ChanStress : public ::testing::TestWithParam<std::tuple<int, int>> {};

TEST_P(ChanStress, EveryValueReceivedExactlyOnce) {
  const int procs = std::get<0>(GetParam());
  const int cap = std::get<1>(GetParam());  // (clang 14 cannot capture structured bindings)
  int saved = max_procs();
  set_max_procs(procs);
  const int P = 4, C = 4;
  const int per_producer = int(scaled(1000000)) / P;
  std::vector<std::vector<std::uint8_t>> seen(C, std::vector<std::uint8_t>(std::size_t(P) * per_producer, 0));
  run([&] {
    Chan<int> c(cap);
    WaitGroup producers, consumers;
    for (int p = 0; p < P; ++p) {
      producers.add(1);
      go([&, p] {
        for (int i = 0; i < per_producer; ++i) c.send(p * per_producer + i);
        producers.done();
      });
    }
    for (int k = 0; k < C; ++k) {
      consumers.add(1);
      go([&, k] {
        for (int v : c) seen[k][v]++;
        consumers.done();
      });
    }
    producers.wait();
    c.close();
    consumers.wait();
  });
  set_max_procs(saved);
  long missing = 0, duplicated = 0;
  for (std::size_t v = 0; v < seen[0].size(); ++v) {
    int n = 0;
    for (int k = 0; k < C; ++k) n += seen[k][v];
    missing += n == 0;
    duplicated += n > 1;
  }
  EXPECT_EQ(missing, 0);
  EXPECT_EQ(duplicated, 0);
}

INSTANTIATE_TEST_SUITE_P(Caps, ChanStress, ::testing::Combine(::testing::Values(1, 2, 4), ::testing::Values(0, 1, 64)),
                         [](const auto& info) {
                           return "procs" + std::to_string(std::get<0>(info.param)) + "_cap" +
                                  std::to_string(std::get<1>(info.param));
                         });

}  // namespace
}  // namespace goro::test
