// bench/micro/runtime_bench.cc: single-operation costs of the runtime.
// Run with --benchmark_repetitions=N --benchmark_report_aggregates_only=true
// and quote medians.
#include <benchmark/benchmark.h>
#include <goro/goro.h>

namespace {

// Spawn one goroutine and wait for it, from a goroutine.
void BM_SpawnJoin(benchmark::State& state) {
  goro::set_max_procs(static_cast<int>(state.range(0)));
  goro::run([&] {
    for (auto _ : state) {
      goro::WaitGroup wg;
      wg.add(1);
      goro::go([&wg] { wg.done(); });
      wg.wait();
    }
  });
}
BENCHMARK(BM_SpawnJoin)->Arg(1)->Arg(2)->UseRealTime();

// Spawn a batch of 1000 goroutines, then wait for all (per goroutine).
void BM_SpawnBatch(benchmark::State& state) {
  goro::set_max_procs(static_cast<int>(state.range(0)));
  goro::run([&] {
    for (auto _ : state) {
      goro::WaitGroup wg;
      wg.add(1000);
      for (int i = 0; i < 1000; ++i) goro::go([&wg] { wg.done(); });
      wg.wait();
    }
  });
  state.SetItemsProcessed(state.iterations() * 1000);
}
BENCHMARK(BM_SpawnBatch)->Arg(1)->Arg(2)->UseRealTime();

// Two goroutines yielding to each other on one P: cost per switch.
void BM_YieldSwitch(benchmark::State& state) {
  goro::set_max_procs(1);
  goro::run([&] {
    std::atomic<bool> stop{false};
    goro::WaitGroup wg;
    wg.add(1);
    goro::go([&] {
      while (!stop.load(std::memory_order_relaxed)) goro::yield();
      wg.done();
    });
    for (auto _ : state) goro::yield();
    stop = true;
    wg.wait();
  });
  state.SetItemsProcessed(state.iterations() * 2);
}
BENCHMARK(BM_YieldSwitch)->UseRealTime();

// goro::blocking around a call that does not block (the inline path, as
// goro::nats runs each publish): the price of marking a call as blocking.
void BM_BlockingInline(benchmark::State& state) {
  goro::set_max_procs(1);
  goro::run([&] {
    int x = 0;
    for (auto _ : state) goro::blocking([&] { benchmark::DoNotOptimize(++x); });
  });
}
BENCHMARK(BM_BlockingInline)->UseRealTime();

void BM_WaitGroupAddDone(benchmark::State& state) {
  goro::WaitGroup wg;
  for (auto _ : state) {
    wg.add(1);
    wg.done();
  }
  wg.wait();
}
BENCHMARK(BM_WaitGroupAddDone);

}  // namespace
