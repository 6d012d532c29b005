// Bridge: a producer that hands out a sequence of channels (one per batch,
// page or connection) read by its consumer as one stream. Go: the bridge
// channel idiom over a `<-chan <-chan T`.
// The mistake it prevents: the consumer hand-writing nested loops and
// select statements, and leaking the inner reader on cancellation.
#include <goro/goro.h>

#include <cstdio>

#include "leakcheck.h"

// Pages of results, each on its own channel, as a paginated API returns them.
goro::RecvChan<goro::RecvChan<int>> pages(int n, int per_page) {
  goro::Chan<goro::RecvChan<int>> out(0);
  goro::go([out, n, per_page] {
    for (int p = 0; p < n; ++p) {
      goro::Chan<int> page(per_page);
      for (int i = 0; i < per_page; ++i) page.send(p * per_page + i);
      page.close();
      out.send(page);
    }
    out.close();
  });
  return out;
}

int main() {
  goro::run([] {
    std::printf("all results:");
    for (int v : goro::bridge(goro::background(), pages(4, 3))) std::printf(" %d", v);
    std::printf("\n");
  });
  return report_leaks();
}
