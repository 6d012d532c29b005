// Heartbeats: a long-running worker sends a pulse at a steady interval, so
// its supervisor can tell "busy" from "stuck" and restart it. Go: a
// `heartbeat <-chan struct{}` returned beside the results, pulsed from a
// time.Ticker case of the worker's select (non-blocking send).
// The mistake it prevents: a supervisor that waits for results alone cannot
// tell a slow worker from a dead one.
#include <goro/goro.h>

#include <chrono>
#include <cstdio>

#include "leakcheck.h"

using namespace std::chrono_literals;

// A worker that does `jobs` units of work, then hangs (a bug it cannot see)
// until its context ends. It pulses every 10 ms while it is healthy.
goro::RecvChan<std::monostate> worker(const goro::Context& ctx, int jobs) {
  goro::Chan<std::monostate> heartbeat(1);
  goro::go([ctx, heartbeat, jobs] {
    goro::Ticker pulse(10ms);
    for (int done = 0; done < jobs;) {
      goro::select(goro::recv(pulse.c(), [&] {
                     std::monostate beat;
                     heartbeat.try_send(beat);  // never block on a pulse nobody reads
                   }),
                   goro::recv(goro::after(3ms), [&] { ++done; }),  // a unit of work
                   goro::recv(ctx.done(), [&] { done = jobs; }));
    }
    pulse.stop();
    ctx.done().recv();  // stuck: no more pulses
  });
  return heartbeat;
}

int main() {
  goro::run([] {
    for (int attempt = 1; attempt <= 2; ++attempt) {
      auto [ctx, cancel] = goro::with_cancel(goro::background());
      goro::RecvChan<std::monostate> beats = worker(ctx, 20);
      int pulses = 0;
      for (;;) {
        bool alive = goro::select(goro::recv(beats), goro::recv(goro::after(100ms))) == 0;
        if (!alive) break;
        ++pulses;
      }
      std::printf("attempt %d: worker pulsed %s, then missed its heartbeat for 100 ms: restarting\n", attempt,
                  pulses > 0 ? "while it worked" : "never (bug)");
      cancel();  // stop the stuck worker before starting another
    }
  });
  return report_leaks();
}
