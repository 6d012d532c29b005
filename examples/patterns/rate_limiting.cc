// Rate limiting, per client and global: every request must pass its
// client's limiter and a global one. Go: golang.org/x/time/rate with a
// map of per-client limiters under a mutex (the usual HTTP middleware).
// The mistake it prevents: one limiter for everyone lets a single noisy
// client starve the others; per-client limiters alone let many clients
// together overload the server.
// Part 1 runs on a simulated clock (allow_n with explicit times) so that
// its counts are exact; part 2 shows wait(ctx) on the real clock.
#include <goro/goro.h>

#include <chrono>
#include <cstdio>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "leakcheck.h"

using namespace std::chrono_literals;

class Limits {
 public:
  Limits(double global_rate, int global_burst, double client_rate, int client_burst)
      : global_(global_rate, global_burst), client_rate_(client_rate), client_burst_(client_burst) {}

  // Whether a request of `client` at time t may proceed. The client's
  // limiter first: a request it refuses must not spend a global token.
  bool allow(const std::string& client, goro::Clock::time_point t) {
    return limiter_of(client).allow_n(t, 1) && global_.allow_n(t, 1);
  }

 private:
  goro::rate::Limiter& limiter_of(const std::string& client) {
    std::lock_guard<goro::Mutex> lk(mu_);
    auto& l = clients_[client];
    if (!l) l = std::make_unique<goro::rate::Limiter>(client_rate_, client_burst_);
    return *l;
  }
  goro::rate::Limiter global_;
  double client_rate_;
  int client_burst_;
  goro::Mutex mu_;
  std::map<std::string, std::unique_ptr<goro::rate::Limiter>> clients_;
};

int main() {
  goro::run([] {
    // Part 1: over one simulated second, "noisy" asks every millisecond,
    // "a" and "b" every 50 ms, "c" every 100 ms; the server takes 25
    // requests a second in all (burst 10). First with the global limit
    // alone, then with 10/s per client (burst 5) in front of it.
    for (bool per_client : {false, true}) {
      Limits limits(25, 10, per_client ? 10 : goro::rate::inf, 5);
      const auto t0 = goro::Clock::now();
      std::map<std::string, int> asked, allowed;
      for (int ms = 0; ms < 1000; ++ms) {
        const auto t = t0 + std::chrono::milliseconds(ms);
        for (auto [client, every] : {std::pair<const char*, int>{"noisy", 1}, {"a", 50}, {"b", 50}, {"c", 100}}) {
          if (ms % every != 0) continue;
          ++asked[client];
          allowed[client] += limits.allow(client, t) ? 1 : 0;
        }
      }
      std::printf("%s:\n", per_client ? "per-client and global limits" : "global limit only");
      int total = 0;
      for (auto& [client, n] : allowed) {
        std::printf("  %-5s asked %4d, allowed %2d\n", client.c_str(), asked[client], n);
        total += n;
      }
      std::printf("  allowed in all: %d (the global limit allows at most 10 + 25 x 1 s = 35)\n", total);
    }

    // Part 2: wait(ctx) paces a loop on the real clock: 5 events at 50/s
    // with a burst of 1 take at least 80 ms.
    goro::rate::Limiter pace(50, 1);
    const auto start = goro::Clock::now();
    for (int i = 0; i < 5; ++i) {
      if (std::error_code ec = pace.wait(goro::background())) std::printf("wait failed: %s\n", ec.message().c_str());
    }
    std::printf("5 paced events took at least 80 ms: %s\n", goro::Clock::now() - start >= 80ms ? "yes" : "no");
    // A deadline that cannot be met fails at once instead of sleeping.
    auto [ctx, cancel] = goro::with_timeout(goro::background(), 5ms);
    goro::rate::Limiter slow(1, 1);
    slow.allow();
    std::printf("wait with a 5 ms deadline on a 1/s limiter: %s\n", slow.wait(ctx).message().c_str());
    cancel();
  });
  return report_leaks();
}
