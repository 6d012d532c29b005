// Tee: one stream, two consumers that each see every value (like the Unix
// tee). Go: the tee-channel idiom, sending each value to both outputs
// before reading the next.
// The mistake it prevents: two goroutines ranging over one channel split
// the values between them instead of each seeing all of them.
#include <goro/goro.h>

#include <cstdio>
#include <vector>

#include "leakcheck.h"

int main() {
  goro::run([] {
    const goro::Context ctx = goro::background();
    auto [to_sum, to_log] = goro::tee(ctx, goro::generate(ctx, std::vector<int>{3, 1, 4, 1, 5, 9, 2, 6}));
    int sum = 0;
    std::vector<int> logged;
    goro::WaitGroup wg;
    wg.go([&, c = to_sum] {
      for (int v : c) sum += v;
    });
    wg.go([&, c = to_log] {
      for (int v : c) logged.push_back(v);
    });
    wg.wait();
    std::printf("sum %d; logged", sum);
    for (int v : logged) std::printf(" %d", v);
    std::printf("\n");
  });
  return report_leaks();
}
