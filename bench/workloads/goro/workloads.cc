// The goro side of the side-by-side workloads (bench/compare); the Go side
// is bench/workloads/go/main.go, Boost.Fiber's bench/workloads/fiber.
#include <goro/goro.h>

#include <algorithm>
#include <atomic>
#include <memory>
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

void pingpong(long n) {
  goro::run([n] {
    goro::Chan<long> a(0), b(0);
    goro::go([a, b] {
      for (long v : a) b.send(v + 1);
      b.close();
    });
    auto start = Clock::now();
    for (long i = 0; i < n; ++i) {
      a.send(i);
      b.recv();
    }
    auto el = Clock::now() - start;
    a.close();
    bench::report("pingpong", el, 2 * n);
  });
}

void chan_spsc(long n) {
  goro::run([n] {
    goro::Chan<long> c(128);
    auto start = Clock::now();
    goro::go([c, n] {
      for (long i = 0; i < n; ++i) c.send(i);
      c.close();
    });
    long sum = 0;
    for (long v : c) sum += v;
    bench::check(sum == n * (n - 1) / 2, "spsc sum");
    bench::report("chan_spsc", Clock::now() - start, n);
  });
}

void mpmc(const char* name, long n, std::size_t cap) {
  goro::run([=] {
    goro::Chan<long> c(cap);
    constexpr int P = 4, C = 4;
    goro::WaitGroup pw, cw;
    std::vector<long> sums(C);
    auto start = Clock::now();
    for (int p = 0; p < P; ++p) {
      pw.add(1);
      goro::go([&, p] {
        for (long i = p; i < n; i += P) c.send(i);
        pw.done();
      });
    }
    for (int k = 0; k < C; ++k) {
      cw.add(1);
      goro::go([&, k] {
        long s = 0;
        for (long v : c) s += v;
        sums[k] = s;
        cw.done();
      });
    }
    pw.wait();
    c.close();
    cw.wait();
    long total = 0;
    for (long s : sums) total += s;
    bench::check(total == n * (n - 1) / 2, "mpmc sum");
    bench::report(name, Clock::now() - start, n);
  });
}

// Receives n values 0..n-1 from a and b through a two-case select and checks
// that each arrived once (their sum).
void receive_all_by_select(goro::Chan<long> a, goro::Chan<long> b, long n) {
  long sum = 0;
  for (long i = 0; i < n; ++i) {
    goro::select(goro::recv(a, [&](std::optional<long> v) { sum += *v; }),
                 goro::recv(b, [&](std::optional<long> v) { sum += *v; }));
  }
  bench::check(sum == n * (n - 1) / 2, "select sum");
}

void select_2way(long n) {
  goro::run([n] {
    goro::Chan<long> a(0), b(0);
    goro::go([a, b, n] {
      for (long i = 0; i < n; ++i) (i % 2 == 0 ? a : b).send(i);
    });
    auto start = Clock::now();
    receive_all_by_select(a, b, n);
    bench::report("select_2way", Clock::now() - start, n);
  });
}

// Two buffered channels (capacity 128), each fed by its own producer, one
// consumer selecting over both: producers and consumer can sit on
// different Ps, so wake-ups cross threads.
void select_buffered(long n) {
  goro::run([n] {
    goro::Chan<long> a(128), b(128);
    auto start = Clock::now();
    goro::go([a, n] {
      for (long i = 0; i < n; i += 2) a.send(i);
    });
    goro::go([b, n] {
      for (long i = 1; i < n; i += 2) b.send(i);
    });
    receive_all_by_select(a, b, n);
    bench::report("select_buffered", Clock::now() - start, n);
  });
}

void fanout_pipeline(long n) {
  goro::run([n] {
    goro::Chan<long> src(256), sq(256);
    auto start = Clock::now();
    goro::go([src, n] {
      for (long i = 0; i < n; ++i) src.send(i);
      src.close();
    });
    auto wg = std::make_shared<goro::WaitGroup>();
    for (int w = 0; w < 8; ++w) {
      wg->add(1);
      goro::go([src, sq, wg] {
        for (long v : src) sq.send(v * v);
        wg->done();
      });
    }
    goro::go([sq, wg] {
      wg->wait();
      sq.close();
    });
    unsigned long sum = 0, want = 0;
    for (long v : sq) sum += static_cast<unsigned long>(v);
    for (long i = 0; i < n; ++i) want += static_cast<unsigned long>(i * i);
    bench::check(sum == want, "pipeline sum");
    bench::report("fanout_pipeline", Clock::now() - start, n);
  });
}

void prime_sieve(long n) {
  goro::run([n] {
    auto start = Clock::now();
    goro::Chan<long> ch(0);
    goro::go([ch] {
      for (long i = 2;; ++i) ch.send(i);
    });
    long last = 0;
    for (long i = 0; i < n; ++i) {
      long prime = *ch.recv();
      last = prime;
      goro::Chan<long> out(0);
      goro::go([in = ch, out, prime] {
        for (;;) {
          long v = *in.recv();
          if (v % prime != 0) out.send(v);
        }
      });
      ch = out;
    }
    bench::report("prime_sieve", Clock::now() - start, n, " last_prime=" + std::to_string(last));
  });
}

void mutex_contended(long n) {
  goro::run([n] {
    goro::Mutex mu;
    long counter = 0;
    constexpr int G = 8;
    goro::WaitGroup wg;
    auto start = Clock::now();
    for (int g = 0; g < G; ++g) {
      wg.add(1);
      goro::go([&] {
        for (long i = 0; i < n / G; ++i) {
          mu.lock();
          ++counter;
          mu.unlock();
        }
        wg.done();
      });
    }
    wg.wait();
    bench::check(counter == (n / G) * G, "mutex count");
    bench::report("mutex_contended", Clock::now() - start, (n / G) * G);
  });
}

void mutex_uncontended(long n) {
  goro::run([n] {
    goro::Mutex mu;
    long counter = 0;
    auto start = Clock::now();
    for (long i = 0; i < n; ++i) {
      mu.lock();
      ++counter;
      mu.unlock();
    }
    bench::check(counter == n, "count");
    bench::report("mutex_uncontended", Clock::now() - start, n);
  });
}

void wg_round(long n) {
  goro::run([n] {
    auto start = Clock::now();
    for (long i = 0; i < n; ++i) {
      goro::WaitGroup wg;
      wg.add(1);
      goro::go([&wg] { wg.done(); });
      wg.wait();
    }
    bench::report("wg_round", Clock::now() - start, n);
  });
}

void ctx_fanout(long n) {
  goro::run([n] {
    auto [ctx, cancel] = goro::with_cancel(goro::background());
    goro::WaitGroup started, finished;
    started.add(n);
    finished.add(n);
    for (long i = 0; i < n; ++i) {
      goro::go([&, c = ctx] {
        started.done();
        c.done().recv();
        finished.done();
      });
    }
    started.wait();
    auto start = Clock::now();
    cancel();
    finished.wait();
    bench::report("ctx_fanout", Clock::now() - start, n);
  });
}

const char* const kPending[] = {nullptr};

}  // namespace

int main(int argc, char** argv) {
  std::map<std::string, bench::Workload> all = {
      {"spawn_join", {1000000, spawn_join}},
      {"yield_switch", {10000000, yield_switch}},
      {"timers", {100000, timers}},
      {"million_blocked", {1000000, million_blocked}},
      {"pingpong", {4000000, pingpong}},
      {"chan_spsc", {20000000, chan_spsc}},
      {"chan_mpmc", {16000000, [](long n) { mpmc("chan_mpmc", n, 1024); }}},
      {"chan_unbuffered_mpmc", {3000000, [](long n) { mpmc("chan_unbuffered_mpmc", n, 0); }}},
      {"select_2way", {4000000, select_2way}},
      {"select_buffered", {4000000, select_buffered}},
      {"fanout_pipeline", {6000000, fanout_pipeline}},
      {"prime_sieve", {5000, prime_sieve}},
      {"mutex_contended", {40000000, mutex_contended}},
      {"mutex_uncontended", {100000000, mutex_uncontended}},
      {"wg_round", {2000000, wg_round}},
      {"ctx_fanout", {100000, ctx_fanout}},
  };
  return bench::dispatch(argc, argv, all, kPending);
}
