// Pipeline with cancellation (Go blog, "Pipelines and cancellation"):
// stages connected by channels, each a goroutine that receives from
// upstream, works, and sends downstream; one context stops them all.
// The mistake it prevents: a consumer that returns early leaves upstream
// stages blocked on sends forever. Here the consumer takes three squares of
// an endless stream and cancels; every stage returns.
#include <goro/goro.h>

#include <cstdio>

#include "leakcheck.h"

goro::RecvChan<int> count_from(const goro::Context& ctx, int start) {
  goro::Chan<int> out(0);
  goro::go([ctx, out, start] {
    for (int n = start;; ++n) {
      if (goro::select(goro::send(out, n), goro::recv(ctx.done())) == 1) break;
    }
    out.close();
  });
  return out;
}

goro::RecvChan<int> square(const goro::Context& ctx, goro::RecvChan<int> in) {
  goro::Chan<int> out(0);
  goro::go([ctx, in, out] {
    for (int n : goro::or_done(ctx, in)) {
      if (goro::select(goro::send(out, n * n), goro::recv(ctx.done())) == 1) break;
    }
    out.close();
  });
  return out;
}

int main() {
  goro::run([] {
    auto [ctx, cancel] = goro::with_cancel(goro::background());
    goro::RecvChan<int> out = square(ctx, square(ctx, count_from(ctx, 2)));  // n^4
    for (int i = 0; i < 3; ++i) std::printf("%d\n", *out.recv());
    cancel();  // the consumer is done: tell every stage
  });
  return report_leaks();
}
