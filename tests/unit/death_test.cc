// tests/unit/death_test.cc: how goroutines die: an unrecovered
// panic and a stack overflow each end the process with status 2 and a
// message naming the goroutine.
#include "common.h"

namespace goro::test {
namespace {

class DeathTest : public ::testing::Test {
 protected:
  void SetUp() override { GTEST_FLAG_SET(death_test_style, "threadsafe"); }
};

TEST_F(DeathTest, UncaughtExceptionInGoroutineIsAPanic) {
  EXPECT_EXIT(run([] {
                WaitGroup wg;
                wg.add(1);
                go([] { throw std::runtime_error("boom"); });
                wg.wait();
              }),
              ::testing::ExitedWithCode(2), "panic: boom\n\ngoroutine [0-9]+ \\[running\\], created at .*death_test.cc");
}

TEST_F(DeathTest, PanicErrorEscapingMainExitsWithStatus2) {
  EXPECT_EXIT(run([] { throw panic_error("send on closed channel"); }), ::testing::ExitedWithCode(2),
              "panic: send on closed channel");
}

volatile bool g_keep_going = true;

int overflow(int n) {
  volatile char frame[512];
  frame[0] = static_cast<char>(n);
  if (!g_keep_going) return frame[0];
  return overflow(n + 1) + frame[0];
}

TEST_F(DeathTest, StackOverflowIsReportedWithTheGoroutine) {
  EXPECT_EXIT(run([] {
                WaitGroup wg;
                wg.add(1);
                go([&] {
                  overflow(0);
                  wg.done();
                });
                wg.wait();
              }),
              ::testing::ExitedWithCode(2), "stack overflow.*\n.*goroutine [0-9]+, created at .*death_test.cc");
}

// goro::blocking's call runs on its P's 8 MiB system stack; running out of
// that is reported too, naming the goroutine that made the call.
TEST_F(DeathTest, SystemStackOverflowInABlockingCallNamesTheGoroutine) {
  EXPECT_EXIT(run([] {
                WaitGroup wg;
                wg.add(1);
                go([&] {
                  goro::blocking([] { overflow(0); });
                  wg.done();
                });
                wg.wait();
              }),
              ::testing::ExitedWithCode(2),
              "stack overflow.*\n.*system stack exhausted by a goro::blocking call in goroutine [0-9]+, created at "
              ".*death_test.cc");
}

}  // namespace
}  // namespace goro::test
