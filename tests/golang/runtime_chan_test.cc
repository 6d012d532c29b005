// Ports of Go's src/runtime/chan_test.go (Go 1.19), by description
// (re-implemented, not copied), keeping Go's test names: TestChan,
// TestNonblockRecvRace, TestNonblockSelectRace, TestNonblockSelectRace2,
// TestSelfSelect, TestSelectStress, TestSelectFairness, TestPseudoRandomSend,
// TestMultiConsumer, TestSelectDuplicateChannel. Each runs at GOMAXPROCS 1,
// 2, 4. The tests not ported are listed, with the reason, at the end.
#include <atomic>
#include <cmath>
#include <vector>

#include "common.h"

namespace goro::test {
namespace {

using namespace std::chrono_literals;

class RuntimeChan : public ProcsTest {};
GORO_INSTANTIATE_PROCS(RuntimeChan);

TEST_P(RuntimeChan, TestChan) {
  run([] {
    const int N = 200;
    for (int cap = 0; cap < N; cap = cap < 4 ? cap + 1 : cap * 3) {
      {
        // A receive from an empty channel blocks until a send.
        Chan<int> c(cap);
        std::atomic<bool> recv1{false}, recv2{false};
        WaitGroup wg;
        wg.add(2);
        go([&] { c.recv(); recv1 = true; wg.done(); });
        go([&] { c.recv(); recv2 = true; wg.done(); });
        sleep_for(1ms);
        EXPECT_FALSE(recv1.load() || recv2.load()) << "chan[" << cap << "]: receive from empty chan";
        // A non-blocking receive does not block.
        EXPECT_FALSE(c.try_recv().has_value()) << "chan[" << cap << "]: receive from empty chan";
        c.send(0);
        c.send(0);
        wg.wait();
      }
      {
        // A send to a full channel blocks until a receive.
        Chan<int> c(cap);
        for (int i = 0; i < cap; ++i) c.send(i);
        std::atomic<bool> sent{false};
        WaitGroup wg;
        wg.add(1);
        go([&] { c.send(0); sent = true; wg.done(); });
        sleep_for(1ms);
        EXPECT_FALSE(sent.load()) << "chan[" << cap << "]: send to full chan";
        // A non-blocking send does not block.
        int v = 0;
        EXPECT_FALSE(c.try_send(v)) << "chan[" << cap << "]: send to full chan";
        c.recv();
        wg.wait();
      }
      {
        // A closed channel yields nullopt, and close unblocks receivers.
        Chan<int> c(cap);
        for (int i = 0; i < cap; ++i) c.send(i);
        c.close();
        for (int i = 0; i < cap; ++i) EXPECT_EQ(c.recv(), i);
        EXPECT_EQ(c.recv(), std::nullopt);
        EXPECT_EQ(c.recv(), std::nullopt);
      }
      {
        Chan<int> c(cap);
        WaitGroup wg;
        wg.add(1);
        std::optional<int> got = 7;
        go([&] { got = c.recv(); wg.done(); });
        sleep_for(1ms);
        c.close();
        wg.wait();
        EXPECT_EQ(got, std::nullopt) << "chan[" << cap << "]: close did not unblock recv";
      }
      {
        // 100 values arrive uncorrupted and in FIFO order.
        Chan<int> c(cap);
        go([c] {
          for (int i = 0; i < 100; ++i) c.send(i);
        });
        for (int i = 0; i < 100; ++i) EXPECT_EQ(c.recv(), i);
        // The same with the two-value receive form (range-for stops at close).
        go([c] {
          for (int i = 0; i < 100; ++i) c.send(i);
          c.close();
        });
        int want = 0;
        for (int v : c) EXPECT_EQ(v, want++);
        EXPECT_EQ(want, 100);
      }
      {
        // 4 senders, 4 receivers, 1000 values each: every value arrives once.
        const int P = 4, L = 1000;
        Chan<int> c(cap);
        for (int p = 0; p < P; ++p) {
          go([c] {
            for (int i = 0; i < L; ++i) c.send(i);
          });
        }
        Chan<std::vector<int>> done(0);
        for (int p = 0; p < P; ++p) {
          go([c, done] {
            std::vector<int> recv(L, 0);
            for (int i = 0; i < L; ++i) recv[*c.recv()]++;
            done.send(std::move(recv));
          });
        }
        std::vector<int> total(L, 0);
        for (int p = 0; p < P; ++p) {
          auto r = *done.recv();
          for (int i = 0; i < L; ++i) total[i] += r[i];
        }
        for (int i = 0; i < L; ++i) EXPECT_EQ(total[i], P) << "chan[" << cap << "]: value " << i;
      }
      {
        // len and cap.
        Chan<int> c(cap);
        EXPECT_EQ(c.size(), 0u);
        EXPECT_EQ(c.capacity(), std::size_t(cap));
        for (int i = 0; i < cap; ++i) c.send(i);
        EXPECT_EQ(c.size(), std::size_t(cap));
        EXPECT_EQ(c.capacity(), std::size_t(cap));
      }
    }
  });
}

TEST_P(RuntimeChan, TestSelectFairness) {
  const int trials = 10000;
  run([] {
    Chan<char> c1(trials + 1), c2(trials + 1);
    for (int i = 0; i < trials + 1; ++i) {
      c1.send(1);
      c2.send(2);
    }
    Chan<char> c3(0), c4(0), out(0), done(0);
    go([=] {
      for (;;) {
        char b = 0;
        select(recv(c3, [&](std::optional<char> v) { b = *v; }), recv(c4, [&](std::optional<char> v) { b = *v; }),
               recv(c1, [&](std::optional<char> v) { b = *v; }), recv(c2, [&](std::optional<char> v) { b = *v; }));
        bool stop = false;
        select(send(out, b), recv(done, [&](std::optional<char>) { stop = true; }));
        if (stop) return;
      }
    });
    int cnt1 = 0, cnt2 = 0;
    for (int i = 0; i < trials; ++i) {
      char b = *out.recv();
      if (b == 1) ++cnt1;
      else if (b == 2) ++cnt2;
      else ADD_FAILURE() << "unexpected value " << int(b);
    }
    // A fair select picks c1 and c2 about equally: with 10,000 trials the
    // margin at six nines of confidence is 4.891676 / (2 * sqrt(trials)).
    double r = double(cnt1) / trials;
    double e = std::abs(r - 0.5);
    EXPECT_LE(e, 4.891676 / (2 * std::sqrt(double(trials)))) << "unfair select: " << cnt1 << " vs " << cnt2;
    done.close();
  });
}

TEST_P(RuntimeChan, TestMultiConsumer) {
  const int nwork = 23;
  const int niter = int(scaled(271828));
  const int pn[] = {2, 3, 7, 11, 13, 17, 19, 23, 27, 31};
  run([&] {
    Chan<int> q(nwork * 3), r(nwork * 3);
    auto wg = std::make_shared<WaitGroup>();
    for (int i = 0; i < nwork; ++i) {
      wg->add(1);
      go([=, &pn] {
        for (int v : q) {
          // Mess with the fifo-ish nature of range.
          if (pn[i % 10] == v) yield();
          r.send(v);
        }
        wg->done();
      });
    }
    long expect = 0;
    go([=, &pn, &expect] {
      for (int i = 0; i < niter; ++i) {
        int v = pn[i % 10];
        expect += v;
        q.send(v);
      }
      q.close();
      wg->wait();
      r.close();
    });
    long n = 0, s = 0;
    for (int v : r) {
      ++n;
      s += v;
    }
    EXPECT_EQ(n, niter);
    EXPECT_EQ(s, expect);
  });
}

TEST_P(RuntimeChan, TestSelectDuplicateChannel) {
  // A select with the same channel twice must leave that channel's wait
  // queue intact when another of its cases wins.
  run([] {
    Chan<int> c(0), d(0), e(0);
    go([=] {  // A
      select(recv(c), recv(c), recv(d));
      e.send(9);
    });
    sleep_for(1ms);  // let A queue first on c
    WaitGroup b_done;
    b_done.add(1);
    go([=, &b_done] {  // B
      c.recv();
      b_done.done();
    });
    sleep_for(1ms);  // let B queue on c behind A
    d.send(7);       // wakes A, which dequeues itself from c
    e.recv();        // A is done
    c.send(8);       // must wake B (a corrupted queue would wake the finished A)
    b_done.wait();
  });
}

TEST_P(RuntimeChan, TestNonblockRecvRace) {
  const int n = int(scaled(10000));
  std::atomic<int> not_ready{0};
  run([&] {
    for (int i = 0; i < n; ++i) {
      Chan<int> c(1);
      c.send(1);
      WaitGroup wg;
      wg.add(1);
      go([&, c] {
        select(recv(c), default_case([&] { not_ready.fetch_add(1); }));
        wg.done();
      });
      c.close();
      c.recv();
      wg.wait();
    }
  });
  EXPECT_EQ(not_ready.load(), 0) << "a closed or non-empty channel was reported not ready";
}

TEST_P(RuntimeChan, TestSelectStress) {
  const int N = int(scaled(100000)) / (GetParam() == 4 ? 2 : 1);
  run([&] {
    Chan<int> c[4] = {Chan<int>(0), Chan<int>(0), Chan<int>(2), Chan<int>(3)};
    // 4 goroutines send N values on each channel, 4 receive N from each, one
    // sends N on each in a single select, one receives N from each in a single
    // select; all interact chaotically, and the whole must not deadlock.
    WaitGroup wg;
    wg.add(10);
    for (int k = 0; k < 4; ++k) {
      go([&, k] {
        for (int i = 0; i < N; ++i) c[k].send(0);
        wg.done();
      });
      go([&, k] {
        for (int i = 0; i < N; ++i) c[k].recv();
        wg.done();
      });
    }
    go([&] {
      int n[4] = {};
      Chan<int> c1[4] = {c[0], c[1], c[2], c[3]};
      for (int i = 0; i < 4 * N; ++i) {
        auto sent = [&](int k) {
          return [&, k] {
            if (++n[k] == N) c1[k] = Chan<int>();
          };
        };
        select(send(c1[3], 0, sent(3)), send(c1[2], 0, sent(2)), send(c1[0], 0, sent(0)), send(c1[1], 0, sent(1)));
      }
      wg.done();
    });
    go([&] {
      int n[4] = {};
      Chan<int> c1[4] = {c[0], c[1], c[2], c[3]};
      for (int i = 0; i < 4 * N; ++i) {
        auto got = [&](int k) {
          return [&, k](std::optional<int>) {
            if (++n[k] == N) c1[k] = Chan<int>();
          };
        };
        select(recv(c1[0], got(0)), recv(c1[1], got(1)), recv(c1[2], got(2)), recv(c1[3], got(3)));
      }
      wg.done();
    });
    wg.wait();
  });
}

TEST_P(RuntimeChan, TestPseudoRandomSend) {
  const int n = 100;
  for (int cap : {0, n}) {
    run([&] {
      Chan<int> c(cap);
      std::vector<int> l(n);
      WaitGroup done;
      done.add(1);
      go([&] {
        for (int i = 0; i < n; ++i) {
          yield();
          l[i] = *c.recv();
        }
        done.done();
      });
      for (int i = 0; i < n; ++i) select(send(c, 1), send(c, 0));
      done.wait();
      int n0 = 0, n1 = 0;
      for (int i : l) {
        n0 += (i + 1) % 2;
        n1 += i;
      }
      EXPECT_GT(n0, n / 10) << "want pseudorandom, got " << n0 << " zeros and " << n1 << " ones (cap " << cap << ")";
      EXPECT_GT(n1, n / 10) << "want pseudorandom, got " << n0 << " zeros and " << n1 << " ones (cap " << cap << ")";
    });
  }
}

// TestNonblockSelectRace(2): a select acts on the channels' state at one
// moment. c1 is ready before the goroutine starts; the spawner then makes c2
// ready (a send; in Race2, close of an unbuffered c2) and only afterwards
// tries to drain c1, so at every moment at least one of them is ready: the
// goroutine's non-blocking select must never take its default case.
void nonblock_select_race(bool close_c2) {
  run([close_c2] {
    const std::size_t n = scaled(20000);  // Go: 100,000 (1,000 with -short)
    Chan<bool> done(1);
    for (std::size_t i = 0; i < n; ++i) {
      Chan<int> c1(1), c2(close_c2 ? 0 : 1);
      c1.send(1);
      go([c1, c2, done] {
        bool got = select(recv(c1), recv(c2), default_case()) != 2;
        done.send(got);
      });
      if (close_c2) {
        c2.close();
      } else {
        c2.send(1);
      }
      select(recv(c1), default_case());
      ASSERT_TRUE(*done.recv()) << "no channel was ready, round " << i;
    }
  });
}

TEST_P(RuntimeChan, TestNonblockSelectRace) { nonblock_select_race(false); }
TEST_P(RuntimeChan, TestNonblockSelectRace2) { nonblock_select_race(true); }

// TestSelfSelect: two goroutines each select between sending on and
// receiving from the same channel (in both case orders); this must neither
// crash nor deadlock, and on an unbuffered channel a goroutine never
// receives its own value.
TEST_P(RuntimeChan, TestSelfSelect) {
  run([] {
    for (std::size_t cap : {std::size_t{0}, std::size_t{10}}) {
      Chan<int> c(cap);
      std::atomic<int> self_receives{0};
      WaitGroup wg;
      for (int p = 0; p < 2; ++p) {
        wg.add(1);
        go([&, p] {
          auto check = [&](int v) {
            if (cap == 0 && v == p) self_receives.fetch_add(1);
          };
          for (int i = 0; i < 1000; ++i) {
            if (p == 0 || i % 2 == 0) {
              select(send(c, p), recv(c, check));
            } else {
              select(recv(c, check), send(c, p));
            }
          }
          wg.done();
        });
      }
      wg.wait();
      EXPECT_EQ(self_receives.load(), 0) << "cap " << cap;
    }
  });
}

}  // namespace
}  // namespace goro::test

// Not ported from chan_test.go, and why:
//  - TestChanSendInterface: sends interface values, a Go type-system case;
//    element types are covered by tests/unit/chan_test.cc.
//  - TestShrinkStackDuringBlockedSend, TestNoShrinkStackWhileParking,
//    TestSelectStackAdjust: Go moves and shrinks goroutine stacks while they
//    are parked; goro's stacks never move (C++ holds pointers into them).
