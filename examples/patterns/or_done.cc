// Or-done: read a channel you do not own, and stop as soon as your context
// ends, even if that channel never closes. Go: the orDone wrapper, so that
// `for v := range orDone(ctx, c)` replaces a select in every loop.
// The mistake it prevents: `for (int v : c)` over a channel that is never
// closed blocks forever after cancellation.
#include <goro/goro.h>

#include <cstdio>

#include "leakcheck.h"

int main() {
  goro::run([] {
    goro::Chan<int> readings(0);  // someone else's channel: sends, never closes
    auto [stop_producer, stop] = goro::with_cancel(goro::background());
    goro::go([readings, stop_producer = stop_producer] {
      for (int i = 1;; ++i) {
        if (goro::select(goro::send(readings, i), goro::recv(stop_producer.done())) == 1) return;
      }
    });

    auto [ctx, cancel] = goro::with_cancel(goro::background());
    int got = 0;
    for (int v : goro::or_done(ctx, readings)) {
      // After the cancel, a value already in flight may still arrive (select
      // picks at random among ready cases, in Go too); it is not printed.
      if (++got <= 3) std::printf("reading %d\n", v);
      if (got == 3) cancel();  // our consumer is done; readings stays open
    }
    std::printf("loop ended after cancel\n");
    stop();  // the owner stops its producer
  });
  return report_leaks();
}
