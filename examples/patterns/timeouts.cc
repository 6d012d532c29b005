// Timeouts and deadlines with select. Go: `select { case r := <-c: ...
// case <-time.After(d): ... }` for one operation, and context.WithTimeout
// for a deadline shared by a whole call tree.
// The mistake it prevents: a receive with no timeout hangs forever when the
// other side is slow or gone; a per-step timeout lets a long sequence of
// steps overrun its overall budget.
#include <goro/goro.h>

#include <chrono>
#include <cstdio>

#include "leakcheck.h"

using namespace std::chrono_literals;

// A service that answers after `delay` on a channel of its own (buffered:
// it never blocks if nobody waits any more).
goro::RecvChan<int> call_service(std::chrono::milliseconds delay, int answer) {
  goro::Chan<int> reply(1);
  goro::go([reply, delay, answer] {
    goro::sleep_for(delay);
    reply.send(answer);
  });
  return reply;
}

int main() {
  goro::run([] {
    // One operation, one timeout.
    for (auto delay : {10ms, 500ms}) {
      goro::select(goro::recv(call_service(delay, 42), [&](int v) { std::printf("answer %d\n", v); }),
                   goro::recv(goro::after(200ms), [&] { std::printf("timed out after 200 ms\n"); }));
    }

    // A deadline for a sequence of steps: each step waits at most until the
    // shared deadline, so the whole sequence stays within its budget.
    auto [ctx, cancel] = goro::with_timeout(goro::background(), 300ms);
    int done_steps = 0;
    for (int step = 0; step < 10; ++step) {
      bool ok = goro::select(goro::recv(call_service(100ms, step)), goro::recv(ctx.done())) == 0;
      if (!ok) break;
      ++done_steps;
    }
    std::printf("steps done before the deadline: %s (%s)\n", done_steps >= 1 && done_steps <= 3 ? "1 to 3" : "wrong",
                ctx.err().message().c_str());
    cancel();
  });
  return report_leaks();
}
