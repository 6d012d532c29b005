// bench/micro/patterns_bench.cc: costs of the pattern helpers (goro/rate.h,
// goro/singleflight.h). Quote medians of --benchmark_repetitions.
#include <benchmark/benchmark.h>
#include <goro/goro.h>

namespace {

// x/time/rate's BenchmarkAllowN shape, uncontended: a limiter that allows
// about one call in a billion, so almost every call is a refusal (the
// bucket's arithmetic under its lock, plus reading the clock).
void BM_RateAllow(benchmark::State& state) {
  goro::rate::Limiter lim(goro::rate::every(std::chrono::seconds(1)), 1);
  for (auto _ : state) benchmark::DoNotOptimize(lim.allow());
}
BENCHMARK(BM_RateAllow);

// The same with the time passed in (Go's AllowN(now, 1)): the limiter alone.
void BM_RateAllowN(benchmark::State& state) {
  goro::rate::Limiter lim(goro::rate::every(std::chrono::seconds(1)), 1);
  auto now = goro::Clock::now();
  for (auto _ : state) benchmark::DoNotOptimize(lim.allow_n(now, 1));
}
BENCHMARK(BM_RateAllowN);

// Every call allowed (an inf limit): the fast path.
void BM_RateAllowInf(benchmark::State& state) {
  goro::rate::Limiter lim(goro::rate::inf, 0);
  for (auto _ : state) benchmark::DoNotOptimize(lim.allow());
}
BENCHMARK(BM_RateAllowInf);

}  // namespace
