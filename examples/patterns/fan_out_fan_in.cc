// Fan-out, fan-in: several workers read from one channel (fan-out, each
// value goes to exactly one of them), and their outputs are merged into one
// (fan-in). Go: several goroutines ranging over one channel, then `merge`.
// The mistake it prevents: closing the merged output when the first worker
// finishes (values lost) or never (the consumer hangs): merge closes it
// after every input has closed.
#include <goro/goro.h>

#include <cstdio>
#include <numeric>
#include <vector>

#include "leakcheck.h"

int main() {
  goro::run([] {
    const goro::Context ctx = goro::background();
    std::vector<int> numbers(1000);
    std::iota(numbers.begin(), numbers.end(), 1);
    goro::RecvChan<int> source = goro::generate(ctx, numbers);

    constexpr int kWorkers = 4;
    std::vector<goro::RecvChan<long>> outputs;
    std::vector<int> handled(kWorkers, 0);
    for (int w = 0; w < kWorkers; ++w) {
      goro::Chan<long> out(0);
      outputs.push_back(out);
      goro::go([source, out, &handled, w] {
        for (int n : source) {
          ++handled[w];
          out.send(static_cast<long>(n) * n);
        }
        out.close();
      });
    }
    long sum = 0;
    int count = 0;
    for (long sq : goro::merge(ctx, outputs)) {
      sum += sq;
      ++count;
    }
    std::printf("%d squares received, sum %ld (want %ld)\n", count, sum, 1000L * 1001 * 2001 / 6);
    std::printf("workers handled %d values in all\n", std::accumulate(handled.begin(), handled.end(), 0));
  });
  return report_leaks();
}
