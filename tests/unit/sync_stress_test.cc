// tests/unit/sync_stress_test.cc: the sync/time/context stress tests of the
// issue: 8 goroutines x 10^6 lock/unlock pairs count exactly; readers share
// and writers exclude under 20 goroutines; 100,000 goroutines waiting on
// contexts cancelled by one parent; 1,000,000 timers pending then stopped.
#include <atomic>
#include <shared_mutex>
#include <thread>

#include "common.h"

namespace goro::test {
namespace {

using namespace std::chrono_literals;

class SyncStress : public ProcsTest {};
GORO_INSTANTIATE_PROCS(SyncStress);

TEST_P(SyncStress, EightGoroutinesMillionLockUnlockPairsCountExactly) {
  const long per = long(scaled(1000000)) / (GetParam() == 4 ? 2 : 1);
  long counter = 0;
  run([&] {
    Mutex m;
    WaitGroup wg;
    for (int g = 0; g < 8; ++g) {
      wg.add(1);
      go([&] {
        for (long i = 0; i < per; ++i) {
          m.lock();
          ++counter;
          m.unlock();
        }
        wg.done();
      });
    }
    wg.wait();
  });
  EXPECT_EQ(counter, 8 * per);
}

TEST_P(SyncStress, MutexBetweenGoroutinesAndThreads) {
  const long per = long(scaled(100000));
  long counter = 0;
  Mutex m;
  WaitGroup wg;
  for (int g = 0; g < 4; ++g) {
    wg.add(1);
    go([&] {
      for (long i = 0; i < per; ++i) {
        std::lock_guard<Mutex> lk(m);
        ++counter;
      }
      wg.done();
    });
  }
  std::vector<std::thread> ts;
  for (int t = 0; t < 2; ++t) {
    ts.emplace_back([&] {
      for (long i = 0; i < per; ++i) {
        std::lock_guard<Mutex> lk(m);
        ++counter;
      }
    });
  }
  for (auto& t : ts) t.join();
  wg.wait();
  EXPECT_EQ(counter, 6 * per);
}

// Holders that now and then keep the lock over 1 ms make the waiters
// starve, so unlocks hand the lock to the first waiter (starvation mode);
// meanwhile newcomers, goroutines and plain threads retrying on the word,
// take it whenever it is free, among them in the moment between an
// unlock's release and its hand-off. Nobody may ever hold it beside
// another.
TEST_P(SyncStress, StarvationHandOffNeverLetsTwoHoldTheLock) {
  const long per = long(scaled(20000));
  std::atomic<int> inside{0};
  std::atomic<long> overlaps{0};
  long counter = 0;
  Mutex m;
  auto one = [&](long i) {
    m.lock();
    if (inside.fetch_add(1) != 0) overlaps.fetch_add(1);
    ++counter;
    if (i % 500 == 0) {  // a long hold, on the CPU (goroutines and threads alike)
      const auto until = std::chrono::steady_clock::now() + 1500us;
      while (std::chrono::steady_clock::now() < until) {
      }
    }
    inside.fetch_sub(1);
    m.unlock();
  };
  WaitGroup wg;
  for (int g = 0; g < 4; ++g) {
    wg.add(1);
    go([&] {
      for (long i = 0; i < per; ++i) one(i);
      wg.done();
    });
  }
  std::vector<std::thread> ts;
  for (int t = 0; t < 2; ++t) {
    ts.emplace_back([&] {
      for (long i = 0; i < per; ++i) one(i + 250);
    });
  }
  // A barger: try_lock in a loop takes the lock the moment it is released,
  // before a starving waiter can be handed it.
  std::atomic<bool> stop{false};
  long barged = 0;
  std::thread barger([&] {
    while (!stop.load(std::memory_order_relaxed)) {
      if (!m.try_lock()) continue;
      if (inside.fetch_add(1) != 0) overlaps.fetch_add(1);
      ++counter;
      ++barged;
      inside.fetch_sub(1);
      m.unlock();
    }
  });
  for (auto& t : ts) t.join();
  wg.wait();
  stop.store(true);
  barger.join();
  EXPECT_EQ(overlaps.load(), 0);
  EXPECT_EQ(counter, 6 * per + barged);
}

TEST_P(SyncStress, ReadersShareWritersExcludeUnderTwentyGoroutines) {
  const int iters = int(scaled(5000));
  run([&] {
    RWMutex m;
    std::atomic<int> readers{0}, writers{0};
    std::atomic<int> violations{0}, max_readers{0};
    WaitGroup wg;
    for (int g = 0; g < 20; ++g) {
      wg.add(1);
      go([&, g] {
        for (int i = 0; i < iters; ++i) {
          if (g % 5 == 0) {
            std::lock_guard<RWMutex> lk(m);
            if (writers.fetch_add(1) != 0 || readers.load() != 0) violations.fetch_add(1);
            writers.fetch_sub(1);
          } else {
            std::shared_lock<RWMutex> lk(m);
            int r = readers.fetch_add(1) + 1;
            if (writers.load() != 0) violations.fetch_add(1);
            atomic_max(max_readers, r);
            if (i % 64 == 0) yield();
            readers.fetch_sub(1);
          }
        }
        wg.done();
      });
    }
    wg.wait();
    EXPECT_EQ(violations.load(), 0);
  });
}

TEST_P(SyncStress, HundredThousandGoroutinesWaitOnContextsOfOneParent) {
  const int n = int(scaled_live(100000));
  std::atomic<int> woke{0};
  run([&] {
    auto [parent, cancel] = with_cancel(background());
    WaitGroup started, finished;
    for (int i = 0; i < n; ++i) {
      started.add(1);
      finished.add(1);
      go([&, parent = parent] {
        auto [ctx, stop] = with_cancel(parent);
        started.done();
        ctx.done().recv();
        if (ctx.err() == errc::canceled) woke.fetch_add(1);
        stop();
        finished.done();
      });
    }
    started.wait();
    cancel();
    finished.wait();
  });
  EXPECT_EQ(woke.load(), n);
}

TEST_P(SyncStress, MillionTimersPendingThenStopped) {
  const int n = int(scaled(1000000)) / (GetParam() == 4 ? 2 : 1);
  run([&] {
    std::atomic<int> fired{0};
    std::vector<Timer> timers;
    timers.reserve(n);
    for (int i = 0; i < n; ++i) timers.push_back(after_func(1h + std::chrono::microseconds(i), [&] { fired++; }));
    int stopped = 0;
    for (auto& t : timers) stopped += t.stop();
    EXPECT_EQ(stopped, n);
    EXPECT_EQ(fired.load(), 0);
  });
}

}  // namespace
}  // namespace goro::test
