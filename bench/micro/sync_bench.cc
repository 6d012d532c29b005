// bench/micro/sync_bench.cc: single-operation costs of channels and sync
// primitives, beside std::mutex. Quote medians of --benchmark_repetitions.
#include <benchmark/benchmark.h>
#include <goro/goro.h>

#include <mutex>

namespace {

void BM_MutexUncontended(benchmark::State& state) {
  goro::Mutex m;
  for (auto _ : state) {
    m.lock();
    m.unlock();
  }
}
BENCHMARK(BM_MutexUncontended);

void BM_StdMutexUncontended(benchmark::State& state) {
  std::mutex m;
  for (auto _ : state) {
    m.lock();
    m.unlock();
  }
}
BENCHMARK(BM_StdMutexUncontended);

void BM_ChanBufferedSendRecv(benchmark::State& state) {
  goro::Chan<int> c(1);
  for (auto _ : state) {
    c.send(1);
    benchmark::DoNotOptimize(c.recv());
  }
}
BENCHMARK(BM_ChanBufferedSendRecv);

void BM_ChanTryRecvEmpty(benchmark::State& state) {
  goro::Chan<int> c(1);
  for (auto _ : state) benchmark::DoNotOptimize(c.try_recv());
}
BENCHMARK(BM_ChanTryRecvEmpty);

void BM_SelectDefault(benchmark::State& state) {
  goro::Chan<int> a(1), b(1);
  for (auto _ : state) benchmark::DoNotOptimize(goro::select(goro::recv(a), goro::recv(b), goro::default_case()));
}
BENCHMARK(BM_SelectDefault);

void BM_ContextCancel(benchmark::State& state) {
  auto [root, cancel_root] = goro::with_cancel(goro::background());
  for (auto _ : state) {
    auto [c, cancel] = goro::with_cancel(root);
    cancel();
  }
  cancel_root();
}
BENCHMARK(BM_ContextCancel);

}  // namespace
