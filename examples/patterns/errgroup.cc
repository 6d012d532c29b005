// Error propagation with ErrGroup: run subtasks in goroutines, wait for all,
// get the first error, and cancel the others as soon as one fails. Go:
// golang.org/x/sync/errgroup's WithContext, Go, Wait.
// The mistake it prevents: errors lost in goroutines (nobody reads them),
// and siblings working on after the task has already failed.
#include <goro/goro.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <stdexcept>
#include <string>
#include <vector>

#include "leakcheck.h"

using namespace std::chrono_literals;

int main() {
  std::atomic<int> stopped_early{0};
  goro::run([&] {
    const std::vector<std::string> urls = {"a.example", "b.example", "broken.example", "c.example", "d.example"};
    goro::ErrGroup g(goro::background());
    goro::Context ctx = g.context();
    for (const std::string& url : urls) {
      g.go([&, url] {
        if (url == "broken.example") {
          goro::sleep_for(10ms);
          throw std::runtime_error("fetch " + url + ": connection refused");
        }
        // A slow fetch that gives up when the group's context ends.
        if (goro::select(goro::recv(goro::after(2s)), goro::recv(ctx.done())) == 1) stopped_early.fetch_add(1);
      });
    }
    try {
      g.wait();
      std::printf("all fetched\n");
    } catch (const std::exception& e) {
      std::printf("error: %s\n", e.what());
    }
    std::printf("siblings stopped early: %d of 4 (context: %s)\n", stopped_early.load(), ctx.err().message().c_str());

    // Bounded parallelism with the same tool: set_limit(n).
    goro::ErrGroup bounded;
    bounded.set_limit(2);
    std::atomic<int> running{0}, most{0};
    for (int i = 0; i < 10; ++i) {
      bounded.go([&] {
        int now = running.fetch_add(1) + 1;
        for (int m = most.load(); now > m && !most.compare_exchange_weak(m, now);) {}
        goro::sleep_for(2ms);
        running.fetch_sub(1);
      });
    }
    bounded.wait();
    std::printf("with set_limit(2), at most %d ran at once\n", most.load() <= 2 ? 2 : most.load());
  });
  return report_leaks();
}
