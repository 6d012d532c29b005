// The goro side of the side-by-side workloads (bench/compare); the Go side
// is bench/workloads/go/main.go, Boost.Fiber's bench/workloads/fiber.
#include <goro/goro.h>

#include <algorithm>
#include <atomic>
#include <random>
#include <string>
#include <vector>

#include "../common.h"

namespace {

using bench::Clock;

void spawn_join(long n) {
  goro::run([n] {
    auto start = Clock::now();
    goro::WaitGroup wg;
    wg.add(n);
    for (long i = 0; i < n; ++i) goro::go([&wg] { wg.done(); });
    wg.wait();
    bench::report("spawn_join", Clock::now() - start, n);
  });
}

void yield_switch(long n) {
  goro::set_max_procs(1);
  goro::run([n] {
    goro::WaitGroup wg;
    wg.add(2);
    auto start = Clock::now();
    for (int g = 0; g < 2; ++g) {
      goro::go([&wg, n] {
        for (long i = 0; i < n; ++i) goro::yield();
        wg.done();
      });
    }
    wg.wait();
    bench::report("yield_switch", Clock::now() - start, 2 * n);
  });
}

void timers(long n) {
  std::mt19937_64 rng(1);
  std::vector<long> delays(n);
  for (auto& d : delays) d = static_cast<long>(rng() % 100000000);
  goro::run([&] {
    goro::WaitGroup wg;
    wg.add(n);
    auto start = Clock::now();
    for (long i = 0; i < n; ++i) {
      goro::go([&wg, d = delays[i]] {
        goro::sleep_for(std::chrono::nanoseconds(d));
        wg.done();
      });
    }
    wg.wait();
    auto ideal = std::chrono::nanoseconds(*std::max_element(delays.begin(), delays.end()));
    auto over = Clock::now() - start - ideal;
    long ns = static_cast<long>(std::chrono::duration_cast<std::chrono::nanoseconds>(over).count());
    std::printf("name=timers ns_per_op=%ld rss_kb=%ld overshoot_ms=%.2f\n", ns, bench::rss_kb(), ns / 1e6);
  });
}

void million_blocked(long n) {
  goro::run([n] {
    long before = bench::rss_kb();
    goro::WaitGroup block, started;
    block.add(1);
    started.add(n);
    auto start = Clock::now();
    for (long i = 0; i < n; ++i) {
      goro::go([&] {
        started.done();
        block.wait();
      });
    }
    started.wait();
    auto elapsed = Clock::now() - start;
    long after = bench::rss_kb();
    double ns = std::chrono::duration<double, std::nano>(elapsed).count();
    std::printf("name=million_blocked ns_per_op=%.2f rss_kb=%ld bytes_per_g=%.0f\n", ns / double(n), after,
                double(after - before) * 1024.0 / double(n));
    block.done();
  });
}

const char* const kPending[] = {"pingpong",        "chan_spsc",   "chan_mpmc",       "chan_unbuffered_mpmc",
                                "select_2way",     "fanout_pipeline", "prime_sieve", "mutex_contended",
                                nullptr};

}  // namespace

int main(int argc, char** argv) {
  std::map<std::string, bench::Workload> all = {
      {"spawn_join", {1000000, spawn_join}},
      {"yield_switch", {2000000, yield_switch}},
      {"timers", {100000, timers}},
      {"million_blocked", {1000000, million_blocked}},
  };
  return bench::dispatch(argc, argv, all, kPending);
}
