// goro::blocking: the call runs on a thread's full-size stack (its P's system
// stack inline, or a pool thread's), the caller parks in the meantime as far
// as the rest of the program can tell (others run at every GOMAXPROCS), goro
// primitives inside the call act as on a plain thread, and the result or the
// exception comes back. Runs at GOMAXPROCS 1, 2 and 4.
#include <goro/goro.h>
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <functional>
#include <stdexcept>
#include <string>
#include <thread>

#include "common.h"

namespace goro::test {
namespace {

using namespace std::chrono_literals;

class Blocking : public ProcsTest {};
GORO_INSTANTIATE_PROCS(Blocking);

// Uses about `bytes` of stack, 1 KiB a frame; returns the number of frames
// (each one's array is read back after the call below it returned).
__attribute__((noinline)) int deep(std::size_t bytes) {
  volatile char frame[1024];
  std::memset(const_cast<char*>(frame), 1, sizeof frame);
  if (bytes <= sizeof frame) return frame[0];
  return deep(bytes - sizeof frame) + frame[sizeof frame - 1];
}

// 2 MiB of frames: sixteen times a goroutine's default stack. Before the
// system stack, the inline call ran on the goroutine's stack and overflowed.
TEST_P(Blocking, TheCallHasAThreadsStack) {
  const int one = deep(std::size_t{2} << 20);  // this plain thread's stack holds it
  ASSERT_EQ(one, 2048);
  run([one] {
    WaitGroup wg;
    std::atomic<int> sum{0};
    for (int i = 0; i < 4; ++i) {
      wg.go([&] { sum.fetch_add(goro::blocking([] { return deep(std::size_t{2} << 20); })); });
    }
    wg.wait();
    EXPECT_EQ(sum.load(), 4 * one);
  });
}

// A goro primitive used inside the call blocks the call's thread (the
// caller's goroutine cannot park in the middle of it), and the goroutine
// that unblocks it still runs, at GOMAXPROCS=1 too.
TEST_P(Blocking, ChannelsInsideTheCallActAsOnAPlainThread) {
  run([] {
    Chan<int> in(0), out(0);
    WaitGroup wg;
    wg.go([&] {
      int got = goro::blocking([&] {
        int v = *in.recv();  // parks this thread, not the goroutine
        out.send(v + 1);
        return v * 10;
      });
      EXPECT_EQ(got, 70);
    });
    in.send(7);
    EXPECT_EQ(*out.recv(), 8);
    wg.wait();
  });
}

// While the call blocks, the caller shows as [blocking] in goroutines(),
// and other goroutines run.
TEST_P(Blocking, TheCallerShowsAsBlockingWhileOthersRun) {
  run([] {
    std::atomic<std::uint64_t> id{0};
    std::atomic<bool> release{false};
    WaitGroup wg;
    wg.go([&] {
      id.store(goroutine_id());
      goro::blocking([&] {
        while (!release.load()) std::this_thread::sleep_for(1ms);
      });
    });
    bool seen = false;
    for (int i = 0; i < 20000 && !seen; ++i) {
      for (const GoroutineInfo& g : goroutines()) seen = seen || (g.id == id.load() && g.state == "blocking");
      if (!seen) sleep_for(1ms);  // a goroutine sleeping: it runs beside the call
    }
    EXPECT_TRUE(seen);
    release.store(true);
    wg.wait();
  });
}

// The result comes back by value, an exception is rethrown in the caller,
// nested calls run where they are, and a plain thread runs the call itself.
TEST_P(Blocking, ReturnsThrowsAndNests) {
  run([] {
    EXPECT_EQ(goro::blocking([] { return std::string("done"); }), "done");
    EXPECT_THROW(goro::blocking([]() -> int { throw std::runtime_error("boom"); }), std::runtime_error);
    EXPECT_EQ(goro::blocking([] { return goro::blocking([] { return 5; }) + 1; }), 6);
    goro::blocking([] {});  // void works
  });
  EXPECT_EQ(goro::blocking([] { return std::this_thread::get_id(); }), std::this_thread::get_id());
}

// A named callable (an lvalue, const or not) works as a temporary does.
TEST_P(Blocking, TakesANamedCallable) {
  run([] {
    int calls = 0;
    auto count = [&calls] { return ++calls; };
    EXPECT_EQ(goro::blocking(count), 1);
    const auto twice = [&calls] { return 2 * calls; };
    EXPECT_EQ(goro::blocking(twice), 2);
    std::function<int()> fn = [] { return 7; };
    EXPECT_EQ(goro::blocking(fn), 7);
  });
}

// Many goroutines in calls at once, each handing values through channels
// from inside its call: every value arrives exactly once.
TEST_P(Blocking, ManyCallsLoseNothing) {
  run([] {
    constexpr int kCallers = 64, kEach = 50;
    Chan<int> c(16);
    WaitGroup wg;
    for (int i = 0; i < kCallers; ++i) {
      wg.go([&c, i] {
        goro::blocking([&] {
          for (int k = 0; k < kEach; ++k) c.send(i * kEach + k);
        });
      });
    }
    go([&] {
      wg.wait();
      c.close();
    });
    std::vector<int> seen(kCallers * kEach, 0);
    for (int v : c) ++seen[static_cast<std::size_t>(v)];
    for (int n : seen) ASSERT_EQ(n, 1);
  });
}

}  // namespace
}  // namespace goro::test
