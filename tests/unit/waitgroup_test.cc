// tests/unit/waitgroup_test.cc: WaitGroup, ported from Go's
// src/sync/waitgroup_test.go by description (TestWaitGroup,
// TestWaitGroupMisuse), plus goro's destruction-safety contract.
#include <atomic>
#include <memory>
#include <thread>

#include "common.h"

namespace goro::test {
namespace {

class WaitGroupTest : public ProcsTest {};
GORO_INSTANTIATE_PROCS(WaitGroupTest);

// Go: TestWaitGroup. Two groups; n goroutines each wait on wg1, then signal
// wg2; wg1's counter is released one by one and nobody passes wg2 early.
TEST_P(WaitGroupTest, TestWaitGroup) {
  run([] {
    for (int round = 0; round < 8; ++round) {
      WaitGroup wg1, wg2;
      const int n = 16;
      wg1.add(n);
      wg2.add(n);
      std::atomic<int> passed{0};
      for (int i = 0; i < n; ++i) {
        go([&] {
          wg1.done();
          wg2.wait();
          passed.fetch_add(1);
        });
      }
      wg1.wait();
      for (int i = 0; i < n; ++i) {
        EXPECT_EQ(passed.load(), 0) << "WaitGroup released group too soon";
        wg2.done();
      }
      while (passed.load() != n) yield();
    }
  });
}

// Go: TestWaitGroupMisuse.
TEST_P(WaitGroupTest, TestWaitGroupMisuse) {
  WaitGroup wg;
  wg.add(1);
  wg.done();
  try {
    wg.done();
    FAIL() << "expected a panic";
  } catch (const panic_error& e) {
    EXPECT_STREQ(e.what(), "sync: negative WaitGroup counter");
  }
}

TEST_P(WaitGroupTest, WaitOnZeroCounterReturnsAtOnce) {
  WaitGroup wg;
  wg.wait();
  run([&] { wg.wait(); });
}

// The waiter destroys the WaitGroup as soon as wait() returns, while the
// last done() may still be on its way out: must be safe (checked by ASan).
TEST_P(WaitGroupTest, WaiterMayDestroyRightAfterWait) {
  run([] {
    for (int i = 0; i < int(scaled(2000)); ++i) {
      auto wg = std::make_unique<WaitGroup>();
      wg->add(2);
      WaitGroup* raw = wg.get();
      go([raw] { raw->done(); });
      go([raw] { raw->done(); });
      wg->wait();
      wg.reset();
    }
  });
}

TEST_P(WaitGroupTest, ManyWaitersGoroutinesAndThreads) {
  WaitGroup gate, done;
  gate.add(1);
  std::atomic<int> released{0};
  run([&] {
    for (int i = 0; i < 50; ++i) {
      done.add(1);
      go([&] {
        gate.wait();
        released.fetch_add(1);
        done.done();
      });
    }
  });
  std::vector<std::thread> threads;
  for (int i = 0; i < 3; ++i) {
    done.add(1);
    threads.emplace_back([&] {
      gate.wait();
      released.fetch_add(1);
      done.done();
    });
  }
  gate.done();
  done.wait();
  for (auto& t : threads) t.join();
  EXPECT_EQ(released.load(), 53);
}

}  // namespace
}  // namespace goro::test

// Not ported from Go's src/sync/waitgroup_test.go, and why:
//  - TestWaitGroupRace: Go's race-detector test of Add/Wait reuse; the
//    tsan preset runs every test here with TSan instead.
//  - TestWaitGroupAlign: the 64-bit alignment of Go's state word on 32-bit
//    platforms; goro's std::atomic<uint64_t> is aligned by the compiler.
