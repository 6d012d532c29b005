// bench/stall: how much of a program keeps running while one goroutine blocks
// its OS thread (ARCHITECTURE "Hand-off").
//
//   GOMAXPROCS=1 stall <sleep|read|compute|none> [stall_ms=1000]
//   GOMAXPROCS=1 stall many [n=10000]
//   stall idle        (CPU time over 3 s while every goroutine sleeps)
//
// While one goroutine stalls for stall_ms (std::this_thread::sleep_for; a
// read() of a pipe that a plain thread writes to after stall_ms; or a loop
// that computes without a scheduling point), a ticker goroutine at 5 ms
// counts its ticks and a client goroutine sends 16-byte messages through an
// echo server on goro::net (loopback), one per millisecond, timing each
// round trip. Prints one line:
//   kind=sleep procs=1 ticks=197/200 rtt_n=951 rtt_p50_ms=0.05 rtt_p99_ms=3.10 rtt_max_ms=4.20 threads=4
// "none" is the same without the stall (the baseline).
#include <goro/goro.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

std::atomic<std::uint64_t> g_sink{0};

// Computes until `until` without calling into goro.
void compute_until(Clock::time_point until) {
  std::uint64_t x = 88172645463325252ULL;
  while (Clock::now() < until) {
    for (int i = 0; i < 1000; ++i) {
      x ^= x << 13;
      x ^= x >> 7;
      x ^= x << 17;
    }
  }
  g_sink.store(x, std::memory_order_relaxed);
}

void stall(const std::string& kind, std::chrono::milliseconds d) {
  if (kind == "sleep") {
    std::this_thread::sleep_for(d);
  } else if (kind == "read") {
    int fds[2];
    if (pipe(fds) != 0) std::abort();
    std::thread writer([w = fds[1], d] {
      std::this_thread::sleep_for(d);
      char c = 'x';
      if (write(w, &c, 1) != 1) std::abort();
    });
    char c = 0;
    if (read(fds[0], &c, 1) != 1) std::abort();  // blocks this goroutine's thread
    writer.join();
    close(fds[0]);
    close(fds[1]);
  } else if (kind == "compute") {
    compute_until(Clock::now() + d);
  } else if (kind != "none") {
    std::fprintf(stderr, "stall: unknown kind %s\n", kind.c_str());
    std::exit(2);
  } else {
    goro::sleep_for(d);
  }
}

double ms(Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

}  // namespace

// `stall many N`: N goroutines each block their thread in one 10 ms
// std::this_thread::sleep_for at once. Prints the time until all finished,
// the most OS threads the process had meanwhile, and the hand-offs.
int many(int n) {
  return goro::run([&] {
    std::atomic<bool> done{false};
    std::atomic<long> max_threads{0};
    std::thread watcher([&] {
      while (!done.load()) {
        long t = static_cast<long>(goro::runtime_stats().threads);
        if (t > max_threads.load()) max_threads.store(t);
        std::this_thread::sleep_for(1ms);
      }
    });
    auto t0 = Clock::now();
    goro::WaitGroup wg;
    for (int i = 0; i < n; ++i) wg.go([] { std::this_thread::sleep_for(10ms); });
    wg.wait();
    double took = ms(Clock::now() - t0);
    done.store(true);
    watcher.join();
    std::printf("kind=many n=%d procs=%d took_ms=%.0f max_runtime_threads=%ld handoffs=%llu\n", n, goro::max_procs(), took,
                max_threads.load(), static_cast<unsigned long long>(goro::runtime_stats().handoffs));
    return 0;
  });
}

// `stall idle`: 100 goroutines sleep (goro::sleep_for) while main sleeps
// 3 s; prints the CPU time the whole process used meanwhile.
int idle() {
  return goro::run([] {
    for (int i = 0; i < 100; ++i) goro::go([] { goro::sleep_for(60s); });
    goro::sleep_for(100ms);
    rusage a{}, b{};
    getrusage(RUSAGE_SELF, &a);
    goro::sleep_for(3s);
    getrusage(RUSAGE_SELF, &b);
    auto secs = [](const timeval& t) { return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_usec) / 1e6; };
    double cpu = secs(b.ru_utime) - secs(a.ru_utime) + secs(b.ru_stime) - secs(a.ru_stime);
    std::printf("kind=idle procs=%d cpu_s_over_3s=%.3f\n", goro::max_procs(), cpu);
    std::exit(0);  // the sleepers would keep the program for a minute
  });
}

int main(int argc, char** argv) {
  const std::string kind = argc > 1 ? argv[1] : "sleep";
  if (kind == "many") return many(argc > 2 ? std::atoi(argv[2]) : 10000);
  if (kind == "idle") return idle();
  const std::chrono::milliseconds d(argc > 2 ? std::atoi(argv[2]) : 1000);
  return goro::run([&] {
    goro::net::Listener ln = goro::net::listen("127.0.0.1:0");
    goro::go([&ln] {
      for (;;) {
        std::error_code ec;
        goro::net::Conn c = ln.accept(ec);
        if (ec) return;
        goro::go([c = std::move(c)]() mutable {
          char buf[64];
          std::error_code e;
          for (;;) {
            std::size_t n = c.read(std::span<char>(buf), e);
            if (e) return;
            c.write(std::string_view(buf, n), e);
            if (e) return;
          }
        });
      }
    });

    std::atomic<bool> window{false}, done{false};
    std::atomic<int> ticks{0};
    goro::WaitGroup wg;
    wg.go([&] {
      goro::Ticker t(5ms);
      while (!done.load()) {
        t.c().recv();
        if (window.load()) ticks.fetch_add(1);
      }
      t.stop();
    });
    std::vector<double> rtts;
    wg.go([&] {
      goro::net::Conn c = goro::net::dial(ln.address());
      char msg[16];
      std::memset(msg, 'm', sizeof msg);
      char back[16];
      while (!done.load()) {
        auto t0 = Clock::now();
        c.write(std::string_view(msg, sizeof msg));
        std::size_t got = 0;
        while (got < sizeof back) got += c.read(std::span<char>(back + got, sizeof back - got));
        auto rtt = Clock::now() - t0;
        if (window.load()) rtts.push_back(ms(rtt));
        goro::sleep_for(1ms);
      }
    });
    goro::sleep_for(100ms);  // everything running
    wg.go([&] {
      window.store(true);
      stall(kind, d);
      window.store(false);
      done.store(true);
    });
    wg.wait();
    ln.close();
    std::sort(rtts.begin(), rtts.end());
    auto pct = [&](double p) {
      return rtts.empty() ? 0.0 : rtts[std::min(rtts.size() - 1, static_cast<std::size_t>(p * rtts.size()))];
    };
    std::printf("kind=%s procs=%d ticks=%d/%lld rtt_n=%zu rtt_p50_ms=%.2f rtt_p99_ms=%.2f rtt_max_ms=%.2f threads=%zu handoffs=%llu\n",
                kind.c_str(), goro::max_procs(), ticks.load(), static_cast<long long>(d / 5ms), rtts.size(), pct(0.5),
                pct(0.99), rtts.empty() ? 0.0 : rtts.back(), goro::runtime_stats().threads,
                static_cast<unsigned long long>(goro::runtime_stats().handoffs));
    return 0;
  });
}
