// tests/diag/dump_scale.cc: a dump of N goroutines (default 100,000), most
// of them parked in a few different places, taken from a goroutine while
// other goroutines keep working; the program goes on afterwards.
// Prints how long the world was stopped and how long the whole dump took:
//   dump_scale [N]
// Checks (exit status 1 on failure): every parked goroutine is in the dump
// with its frames, the workers made progress during the dump, and all of
// them finish afterwards.
#include <goro/goro.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>

namespace {

__attribute__((noinline)) void parked_reader(goro::Chan<int> c) {
  c.recv();
  asm volatile("" ::: "memory");
}

__attribute__((noinline)) void parked_locker(goro::Mutex* m) {
  m->lock();
  m->unlock();
  asm volatile("" ::: "memory");
}

std::size_t count(const std::string& s, const std::string& what) {
  std::size_t n = 0;
  for (std::size_t at = s.find(what); at != std::string::npos; at = s.find(what, at + 1)) ++n;
  return n;
}

}  // namespace

int main(int argc, char** argv) {
  const int n = argc > 1 ? std::atoi(argv[1]) : 100000;
  return goro::run([n] {
    goro::Chan<int> c(0);
    goro::Mutex m;
    m.lock();
    goro::WaitGroup parked;
    for (int i = 0; i < n; ++i) {
      if (i % 2 == 0) {
        parked.go([c] { parked_reader(c); });
      } else {
        parked.go([&m] { parked_locker(&m); });
      }
    }
    while (goro::runtime_stats().waiting < static_cast<std::size_t>(n)) goro::sleep_for(std::chrono::milliseconds(5));
    // Workers that keep running during the dump.
    std::atomic<bool> stop{false};
    std::atomic<long> work{0};
    goro::WaitGroup workers;
    for (int w = 0; w < 4; ++w) {
      workers.go([&] {
        while (!stop.load()) {
          work.fetch_add(1);
          goro::yield();
        }
      });
    }
    auto t0 = std::chrono::steady_clock::now();
    long work_before = work.load();
    std::string d = goro::goroutine_dump();
    long work_during = work.load() - work_before;
    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    stop.store(true);
    workers.wait();
    std::size_t readers = count(d, "parked_reader");
    std::size_t lockers = count(d, "parked_locker");
    std::printf("dump of %d parked goroutines (+%d running): %.3f s, %zu bytes; frames found: %zu readers, %zu lockers; "
                "workers did %ld steps during the dump\n",
                n, 5, secs, d.size(), readers, lockers, work_during);
    bool ok = readers == static_cast<std::size_t>((n + 1) / 2) && lockers == static_cast<std::size_t>(n / 2) &&
              count(d, "[chan receive]:") >= static_cast<std::size_t>((n + 1) / 2) && work_during > 0;
    for (int i = 0; i < (n + 1) / 2; ++i) c.send(i);
    m.unlock();
    parked.wait();
    std::printf("%s: all %d goroutines finished after the dump\n", ok ? "ok" : "FAILED", n);
    return ok ? 0 : 1;
  });
}
