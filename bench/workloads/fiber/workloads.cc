// The Boost.Fiber side of the side-by-side workloads (bench/compare).
// GOMAXPROCS=1: the round_robin scheduler on one thread. GOMAXPROCS=N>1: the
// work_stealing scheduler over N threads (the main thread and N-1 helpers).
// select_2way and select_buffered have no Boost.Fiber form (no select): reported as pending.
#include <boost/fiber/all.hpp>

#include <algorithm>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "../common.h"

namespace bf = boost::fibers;
using bench::Clock;

namespace {

// Runs `body` as a fiber under the configured scheduler and returns when it
// finishes; helper threads join the work-stealing pool meanwhile. A helper
// waits on a fiber condition variable, as Boost's own work_stealing example
// does: that suspends only the helper's main fiber, so its scheduler runs
// and steals. (An std:: condition variable would block the whole thread,
// and every fiber would run on the main thread whatever GOMAXPROCS says.)
template <class F>
void with_scheduler(F body) {
  int procs = 1;
  if (const char* e = std::getenv("GOMAXPROCS")) procs = std::max(1, std::atoi(e));
  if (procs == 1) {
    bf::use_scheduling_algorithm<bf::algo::round_robin>();
    bf::fiber(body).join();
    return;
  }
  std::mutex mu;
  bf::condition_variable_any cv;
  bool finished = false;
  std::vector<std::thread> helpers;
  for (int i = 1; i < procs; ++i) {
    helpers.emplace_back([&, procs] {
      bf::use_scheduling_algorithm<bf::algo::work_stealing>(procs);
      std::unique_lock<std::mutex> lk(mu);
      cv.wait(lk, [&] { return finished; });
    });
  }
  bf::use_scheduling_algorithm<bf::algo::work_stealing>(procs);
  bf::fiber(body).join();
  {
    std::lock_guard<std::mutex> lk(mu);
    finished = true;
  }
  cv.notify_all();
  for (auto& h : helpers) h.join();
}

// A WaitGroup built from Boost.Fiber's mutex and condition variable.
class WaitGroup {
 public:
  void add(long n) {
    std::lock_guard<bf::mutex> lk(mu_);
    count_ += n;
  }
  void done() {
    std::lock_guard<bf::mutex> lk(mu_);
    if (--count_ == 0) cv_.notify_all();
  }
  void wait() {
    std::unique_lock<bf::mutex> lk(mu_);
    cv_.wait(lk, [this] { return count_ == 0; });
  }

 private:
  bf::mutex mu_;
  bf::condition_variable cv_;
  long count_ = 0;
};

void spawn_join(long n) {
  with_scheduler([n] {
    auto start = Clock::now();
    WaitGroup wg;
    wg.add(n);
    for (long i = 0; i < n; ++i) bf::fiber([&wg] { wg.done(); }).detach();
    wg.wait();
    bench::report("spawn_join", Clock::now() - start, n);
  });
}

void yield_switch(long n) {
  setenv("GOMAXPROCS", "1", 1);
  with_scheduler([n] {
    auto start = Clock::now();
    bf::fiber a([n] { for (long i = 0; i < n; ++i) boost::this_fiber::yield(); });
    bf::fiber b([n] { for (long i = 0; i < n; ++i) boost::this_fiber::yield(); });
    a.join();
    b.join();
    bench::report("yield_switch", Clock::now() - start, 2 * n);
  });
}

void pingpong(long n) {
  with_scheduler([n] {
    bf::unbuffered_channel<long> a, b;
    bf::fiber echo([&] {
      long v;
      while (a.pop(v) == bf::channel_op_status::success) b.push(v + 1);
      b.close();
    });
    auto start = Clock::now();
    for (long i = 0; i < n; ++i) {
      a.push(i);
      long v;
      b.pop(v);
    }
    auto el = Clock::now() - start;
    a.close();
    echo.join();
    bench::report("pingpong", el, 2 * n);
  });
}

void chan_spsc(long n) {
  with_scheduler([n] {
    bf::buffered_channel<long> c(128);  // usable capacity 127: Boost needs a power of two
    auto start = Clock::now();
    bf::fiber prod([&] {
      for (long i = 0; i < n; ++i) c.push(i);
      c.close();
    });
    long sum = 0, v;
    while (c.pop(v) == bf::channel_op_status::success) sum += v;
    prod.join();
    bench::check(sum == n * (n - 1) / 2, "spsc sum");
    bench::report("chan_spsc", Clock::now() - start, n);
  });
}

template <class Chan>
void mpmc(const char* name, long n, Chan& c) {
  constexpr int P = 4, C = 4;
  auto start = Clock::now();
  std::vector<bf::fiber> ps, cs;
  std::vector<long> sums(C);
  for (int p = 0; p < P; ++p)
    ps.emplace_back([&, p] {
      for (long i = p; i < n; i += P) c.push(i);
    });
  for (int k = 0; k < C; ++k)
    cs.emplace_back([&, k] {
      long s = 0, v;
      while (c.pop(v) == bf::channel_op_status::success) s += v;
      sums[k] = s;
    });
  for (auto& f : ps) f.join();
  c.close();
  for (auto& f : cs) f.join();
  long total = 0;
  for (long s : sums) total += s;
  bench::check(total == n * (n - 1) / 2, "mpmc sum");
  bench::report(name, Clock::now() - start, n);
}

void chan_mpmc(long n) {
  with_scheduler([n] {
    bf::buffered_channel<long> c(1024);
    mpmc("chan_mpmc", n, c);
  });
}

void chan_unbuffered_mpmc(long n) {
  with_scheduler([n] {
    bf::unbuffered_channel<long> c;
    mpmc("chan_unbuffered_mpmc", n, c);
  });
}

void fanout_pipeline(long n) {
  with_scheduler([n] {
    bf::buffered_channel<long> src(256), sq(256);
    auto start = Clock::now();
    bf::fiber gen([&] {
      for (long i = 0; i < n; ++i) src.push(i);
      src.close();
    });
    std::vector<bf::fiber> workers;
    for (int w = 0; w < 8; ++w)
      workers.emplace_back([&] {
        long v;
        while (src.pop(v) == bf::channel_op_status::success) sq.push(v * v);
      });
    bf::fiber closer([&] {
      for (auto& w : workers) w.join();
      sq.close();
    });
    unsigned long sum = 0, want = 0;
    long v;
    while (sq.pop(v) == bf::channel_op_status::success) sum += static_cast<unsigned long>(v);
    for (long i = 0; i < n; ++i) want += static_cast<unsigned long>(i * i);
    gen.join();
    closer.join();
    bench::check(sum == want, "pipeline sum");
    bench::report("fanout_pipeline", Clock::now() - start, n);
  });
}

void prime_sieve(long n) {
  with_scheduler([n] {
    auto start = Clock::now();
    using Ch = bf::unbuffered_channel<long>;
    std::vector<std::unique_ptr<Ch>> chans;
    chans.push_back(std::make_unique<Ch>());
    bf::fiber([c = chans.back().get()] {
      for (long i = 2; c->push(i) == bf::channel_op_status::success; ++i) {
      }
    }).detach();
    Ch* ch = chans.back().get();
    long last = 0;
    for (long i = 0; i < n; ++i) {
      long prime;
      ch->pop(prime);
      last = prime;
      chans.push_back(std::make_unique<Ch>());
      Ch* out = chans.back().get();
      bf::fiber([in = ch, out, prime] {
        long v;
        while (in->pop(v) == bf::channel_op_status::success) {
          if (v % prime != 0 && out->push(v) != bf::channel_op_status::success) return;
        }
      }).detach();
      ch = out;
    }
    bench::report("prime_sieve", Clock::now() - start, n, " last_prime=" + std::to_string(last));
    std::fflush(stdout);
    std::_Exit(0);  // abandoned filters, as in Go; Boost cannot tear them down
  });
}

void mutex_contended(long n) {
  with_scheduler([n] {
    bf::mutex mu;
    long counter = 0;
    constexpr int G = 8;
    auto start = Clock::now();
    std::vector<bf::fiber> fs;
    for (int g = 0; g < G; ++g)
      fs.emplace_back([&] {
        for (long i = 0; i < n / G; ++i) {
          std::lock_guard<bf::mutex> lk(mu);
          ++counter;
        }
      });
    for (auto& f : fs) f.join();
    bench::check(counter == (n / G) * G, "mutex count");
    bench::report("mutex_contended", Clock::now() - start, (n / G) * G);
  });
}

void timers(long n) {
  std::mt19937_64 rng(1);
  std::vector<long> delays(n);
  for (auto& d : delays) d = static_cast<long>(rng() % 100000000);
  with_scheduler([&] {
    WaitGroup wg;
    wg.add(n);
    auto start = Clock::now();
    for (long i = 0; i < n; ++i)
      bf::fiber([&wg, d = delays[i]] {
        boost::this_fiber::sleep_for(std::chrono::nanoseconds(d));
        wg.done();
      }).detach();
    wg.wait();
    auto ideal = std::chrono::nanoseconds(*std::max_element(delays.begin(), delays.end()));
    auto over = Clock::now() - start - ideal;
    long ns = static_cast<long>(std::chrono::duration_cast<std::chrono::nanoseconds>(over).count());
    std::printf("name=timers ns_per_op=%ld rss_kb=%ld overshoot_ms=%.2f\n", ns, bench::rss_kb(), ns / 1e6);
  });
}

void million_blocked(long n) {
  with_scheduler([n] {
    long before = bench::rss_kb();
    WaitGroup started, block;
    block.add(1);
    started.add(n);
    auto start = Clock::now();
    // 16 KiB stacks from the heap: Boost's default mmap'd stacks would need a
    // mapping each, past vm.max_map_count long before a million.
    for (long i = 0; i < n; ++i)
      bf::fiber(std::allocator_arg, bf::fixedsize_stack(16 * 1024), [&] {
        started.done();
        block.wait();
      }).detach();
    started.wait();
    auto elapsed = Clock::now() - start;
    long after = bench::rss_kb();
    double ns = std::chrono::duration<double, std::nano>(elapsed).count();
    std::printf("name=million_blocked ns_per_op=%.2f rss_kb=%ld bytes_per_g=%.0f\n", ns / double(n), after,
                double(after - before) * 1024.0 / double(n));
    std::fflush(stdout);
    std::_Exit(0);
  });
}

void mutex_uncontended(long n) {
  with_scheduler([n] {
    bf::mutex mu;
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
  with_scheduler([n] {
    auto start = Clock::now();
    for (long i = 0; i < n; ++i) {
      WaitGroup wg;
      wg.add(1);
      bf::fiber([&wg] { wg.done(); }).detach();
      wg.wait();
    }
    bench::report("wg_round", Clock::now() - start, n);
  });
}

// No select and no context in Boost.Fiber.
const char* const kPending[] = {"select_2way", "select_buffered", "ctx_fanout", nullptr};

}  // namespace

int main(int argc, char** argv) {
  std::map<std::string, bench::Workload> all = {
      // 100,000 rather than 1,000,000: Boost.Fiber spends ~35 us per spawn here.
      {"spawn_join", {100000, spawn_join}},
      {"yield_switch", {10000000, yield_switch}},
      {"pingpong", {4000000, pingpong}},
      {"chan_spsc", {20000000, chan_spsc}},
      {"chan_mpmc", {16000000, chan_mpmc}},
      {"chan_unbuffered_mpmc", {3000000, chan_unbuffered_mpmc}},
      {"fanout_pipeline", {6000000, fanout_pipeline}},
      {"prime_sieve", {5000, prime_sieve}},
      {"mutex_contended", {40000000, mutex_contended}},
      {"timers", {100000, timers}},
      {"million_blocked", {1000000, million_blocked}},
      {"mutex_uncontended", {100000000, mutex_uncontended}},
      {"wg_round", {2000000, wg_round}},
  };
  return bench::dispatch(argc, argv, all, kPending);
}
