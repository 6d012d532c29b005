// Generator: a goroutine that produces values on a channel until its
// consumer is done. Go: `func gen(ctx) <-chan int { ch := make(chan int);
// go func() { defer close(ch); for ... { select { case ch <- v: case
// <-ctx.Done(): return } } }(); return ch }`.
// The mistake it prevents: a generator whose send does not also wait on
// ctx.done() blocks forever once the consumer stops reading (a leak).
#include <goro/goro.h>

#include <cstdio>
#include <vector>

#include "leakcheck.h"

// An endless generator: Fibonacci numbers until ctx ends.
goro::RecvChan<long> fibonacci(const goro::Context& ctx) {
  goro::Chan<long> out(0);
  goro::go([ctx, out] {
    long a = 0, b = 1;
    for (;;) {
      if (goro::select(goro::send(out, a), goro::recv(ctx.done())) == 1) break;
      long next = a + b;
      a = b;
      b = next;
    }
    out.close();
  });
  return out;
}

int main() {
  goro::run([] {
    // From a range: goro::generate does the above for any range.
    int sum = 0;
    for (int v : goro::generate(goro::background(), std::vector<int>{1, 2, 3, 4})) sum += v;
    std::printf("sum of generated 1..4: %d\n", sum);

    // Endless: take what we need, then cancel; the generator returns.
    auto [ctx, cancel] = goro::with_cancel(goro::background());
    goro::RecvChan<long> fib = fibonacci(ctx);
    std::printf("first 10 Fibonacci numbers:");
    for (int i = 0; i < 10; ++i) std::printf(" %ld", *fib.recv());
    std::printf("\n");
    cancel();
  });
  return report_leaks();
}
