// examples/million: the flagship demo. A million goroutines, all blocked at
// once on one WaitGroup, on a handful of OS threads; then released, joined,
// and their stack memory handed back to the OS.
//
// Go idiom: goroutines are cheap enough to spawn one per task, and a blocked
// goroutine costs memory (about a page), not a thread.
#include <goro/goro.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <dirent.h>

namespace {

long rss_kb() {
  long kb = 0;
  if (FILE* f = std::fopen("/proc/self/status", "r")) {
    char line[256];
    while (std::fgets(line, sizeof line, f))
      if (std::strncmp(line, "VmRSS:", 6) == 0) kb = std::atol(line + 6);
    std::fclose(f);
  }
  return kb;
}

int os_threads() {
  int n = 0;
  if (DIR* d = opendir("/proc/self/task")) {
    while (dirent* e = readdir(d)) n += e->d_name[0] != '.';
    closedir(d);
  }
  return n;
}

double ms_since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t).count();
}

}  // namespace

int main(int argc, char** argv) {
  const long n = argc > 1 ? std::atol(argv[1]) : 1000000;
  return goro::run([n] {
    std::printf("goro demo: %ld goroutines on GOMAXPROCS=%d\n", n, goro::max_procs());
    long rss0 = rss_kb();
    goro::WaitGroup started, release, finished;
    release.add(1);
    started.add(n);
    finished.add(n);

    auto t0 = std::chrono::steady_clock::now();
    for (long i = 0; i < n; ++i) {
      goro::go([&] {
        started.done();
        release.wait();  // parks: costs a stack page, not a thread
        finished.done();
      });
    }
    started.wait();
    double spawn_ms = ms_since(t0);
    long rss1 = rss_kb();
    std::printf("  spawned and blocked: %zu goroutines alive, %d OS threads\n", goro::num_goroutines(),
                os_threads());
    std::printf("  time to spawn:       %.0f ms (%.2f us per goroutine)\n", spawn_ms, spawn_ms * 1000.0 / double(n));
    std::printf("  memory:              %ld MiB RSS, %.0f bytes per blocked goroutine\n", rss1 / 1024,
                double(rss1 - rss0) * 1024.0 / double(n));

    auto t1 = std::chrono::steady_clock::now();
    release.done();
    finished.wait();
    std::printf("  release and join:    %.0f ms\n", ms_since(t1));
    goro::sleep_for(std::chrono::seconds(1));  // idle workers hand stack pages back meanwhile
    std::printf("  after the burst:     %zu goroutines alive, %ld MiB RSS\n", goro::num_goroutines(),
                rss_kb() / 1024);
    return 0;
  });
}
