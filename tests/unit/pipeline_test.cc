// goro/pipeline.h: each combinator delivers every value exactly once, in
// the order Go's idiomatic version does, closes its output exactly when
// that version does, and leaves no goroutine behind when its consumer stops
// early and cancels the context (counted with num_goroutines(): the leak
// proof is not available under sanitizers, and a goroutine still parked on
// a channel the test holds would not be proved leaked anyway).
#include <goro/pipeline.h>

#include <algorithm>
#include <atomic>
#include <numeric>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "common.h"

namespace goro::test {
namespace {

using namespace std::chrono_literals;

class Pipeline : public ProcsTest {};
GORO_INSTANTIATE_PROCS(Pipeline);

// Waits (bounded) until at most `n` goroutines exist; returns how many do.
std::size_t settle_to(std::size_t n) {
  for (int i = 0; i < 5000 && num_goroutines() > n; ++i) sleep_for(1ms);
  return num_goroutines();
}

template <class C>
std::vector<typename C::value_type> drain(const C& c) {
  std::vector<typename C::value_type> out;
  for (auto v : c) out.push_back(v);
  return out;
}

// A source that never closes: counts up until ctx ends.
RecvChan<int> naturals(const Context& ctx) {
  Chan<int> out(0);
  go([ctx, out] {
    for (int i = 0;; ++i) {
      if (select(send(out, i), recv(ctx.done())) == 1) return;
    }
  });
  return out;
}

TEST_P(Pipeline, GenerateSendsTheRangeInOrderThenCloses) {
  run([] {
    std::vector<int> v(100);
    std::iota(v.begin(), v.end(), 0);
    EXPECT_EQ(drain(generate(background(), v)), v);
    EXPECT_EQ(drain(generate(background(), std::vector<std::string>{"a", "b"})), (std::vector<std::string>{"a", "b"}));
    EXPECT_TRUE(drain(generate(background(), std::vector<int>{})).empty());
  });
}

TEST_P(Pipeline, OrDoneForwardsUntilTheInputCloses) {
  run([] {
    Chan<int> in(0);
    go([in] {
      for (int i = 0; i < 50; ++i) in.send(i);
      in.close();
    });
    std::vector<int> want(50);
    std::iota(want.begin(), want.end(), 0);
    EXPECT_EQ(drain(or_done(background(), in)), want);
  });
}

TEST_P(Pipeline, OrDoneStopsOnCancelThoughTheInputNeverCloses) {
  run([] {
    const std::size_t base = num_goroutines();
    auto [ctx, cancel] = with_cancel(background());
    Chan<int> silent(0);  // never sent on, never closed
    RecvChan<int> out = or_done(ctx, silent);
    cancel();
    EXPECT_FALSE(out.recv().has_value()) << "the output must close once the context ends";
    EXPECT_LE(settle_to(base), base);
  });
}

TEST_P(Pipeline, MergeDeliversEveryValueOnceAndClosesAfterAllInputs) {
  run([] {
    constexpr int kInputs = 8, kEach = 500;
    std::vector<Chan<int>> ins;
    for (int i = 0; i < kInputs; ++i) {
      Chan<int> c(i % 2 == 0 ? 0 : 16);
      ins.push_back(c);
      go([c, i] {
        for (int k = 0; k < kEach; ++k) c.send(i * kEach + k);
        c.close();
      });
    }
    std::vector<int> got = drain(merge(background(), ins));
    ASSERT_EQ(got.size(), static_cast<std::size_t>(kInputs * kEach));
    std::sort(got.begin(), got.end());
    for (int i = 0; i < kInputs * kEach; ++i) ASSERT_EQ(got[i], i) << "value " << i << " lost or duplicated";
    // The variadic form.
    Chan<int> a(1), b(1);
    a.send(1);
    b.send(2);
    a.close();
    b.close();
    std::vector<int> two = drain(merge(background(), a, b));
    std::sort(two.begin(), two.end());
    EXPECT_EQ(two, (std::vector<int>{1, 2}));
  });
}

TEST_P(Pipeline, MergeOfEndlessInputsStopsOnCancel) {
  run([] {
    const std::size_t base = num_goroutines();
    auto [ctx, cancel] = with_cancel(background());
    RecvChan<int> out = merge(ctx, std::vector<RecvChan<int>>{naturals(ctx), naturals(ctx), naturals(ctx)});
    for (int i = 0; i < 100; ++i) ASSERT_TRUE(out.recv().has_value());
    cancel();
    for (auto v : out) (void)v;  // drains what was in flight; ends when it closes
    EXPECT_LE(settle_to(base), base);
  });
}

TEST_P(Pipeline, TeeGivesEveryValueToBothOutputs) {
  run([] {
    std::vector<int> v(200);
    std::iota(v.begin(), v.end(), 0);
    auto [a, b] = tee(background(), generate(background(), v));
    std::vector<int> got_a, got_b;
    WaitGroup wg;
    wg.go([&, a = a] { got_a = drain(a); });
    wg.go([&, b = b] { got_b = drain(b); });
    wg.wait();
    EXPECT_EQ(got_a, v);
    EXPECT_EQ(got_b, v);
  });
}

TEST_P(Pipeline, TeeStopsOnCancelWhenOneReaderIsGone) {
  run([] {
    const std::size_t base = num_goroutines();
    auto [ctx, cancel] = with_cancel(background());
    auto [a, b] = tee(ctx, naturals(ctx));
    EXPECT_EQ(*a.recv(), 0);  // b never reads: tee waits on it
    cancel();
    EXPECT_LE(settle_to(base), base);
  });
}

TEST_P(Pipeline, BridgeFlattensChannelsInOrder) {
  run([] {
    Chan<Chan<int>> chans(0);
    go([chans] {
      for (int i = 0; i < 10; ++i) {
        Chan<int> c(3);
        for (int k = 0; k < 3; ++k) c.send(i * 3 + k);
        c.close();
        chans.send(c);
      }
      chans.close();
    });
    std::vector<int> want(30);
    std::iota(want.begin(), want.end(), 0);
    EXPECT_EQ(drain(bridge(background(), chans)), want);
  });
}

TEST_P(Pipeline, BridgeStopsOnCancelInsideAnInnerChannel) {
  run([] {
    const std::size_t base = num_goroutines();
    auto [ctx, cancel] = with_cancel(background());
    Chan<RecvChan<int>> chans(1);
    chans.send(naturals(ctx));  // an inner channel that never ends
    RecvChan<int> out = bridge(ctx, chans);
    EXPECT_EQ(*out.recv(), 0);
    cancel();
    for (auto v : out) (void)v;
    EXPECT_LE(settle_to(base), base);
  });
}

TEST_P(Pipeline, TakeGivesTheFirstNThenCloses) {
  run([] {
    const std::size_t base = num_goroutines();
    auto [ctx, cancel] = with_cancel(background());
    EXPECT_EQ(drain(take(ctx, naturals(ctx), 5)), (std::vector<int>{0, 1, 2, 3, 4}));
    // Fewer when the input closes first.
    EXPECT_EQ(drain(take(ctx, generate(ctx, std::vector<int>{7, 8}), 5)), (std::vector<int>{7, 8}));
    cancel();  // the endless source returns
    EXPECT_LE(settle_to(base), base);
  });
}

// A consumer that stops early: a pipeline of every combinator, fed by an
// endless source, read for a while from a plain thread and then cancelled.
TEST_P(Pipeline, WholePipelineLeavesNothingBehindWhenStoppedEarly) {
  run([] {});  // the runtime is up; count from here
  const std::size_t base = num_goroutines();
  auto [ctx, cancel] = with_cancel(background());
  auto [left, right] = tee(ctx, or_done(ctx, naturals(ctx)));
  Chan<RecvChan<int>> chans(2);
  chans.send(take(ctx, left, 1000000));
  chans.send(right);
  RecvChan<int> out = merge(ctx, bridge(ctx, chans), naturals(ctx));
  std::set<int> seen;
  for (int i = 0; i < 300; ++i) seen.insert(*out.recv());
  EXPECT_GT(seen.size(), 1u);
  cancel();
  for (auto v : out) (void)v;
  EXPECT_LE(settle_to(base), base);
}

}  // namespace
}  // namespace goro::test
