// examples/stuck_pipeline.cc: a pipeline with the classic bug, and what goro
// shows you about it (docs/DEBUGGING.md quotes this program's output).
//
// gen -> sq (x3 workers) -> merge -> main. The bug: merge waits for every
// worker with a WaitGroup before closing its output, but one worker returns
// without calling done() (always); main ranges over merge's output forever.
//
//   stuck_pipeline deadlock   nothing else runs: the runtime reports the
//                             deadlock itself (exit status 2)
//   stuck_pipeline sigquit    a ticker keeps the program alive, so no
//                             deadlock can be proved; the program sends
//                             itself SIGQUIT after 200 ms, as `kill -QUIT`
//                             would: the dump (exit status 2)
//   stuck_pipeline json       prints goroutine_dump_json() and runtime_stats()
#include <goro/goro.h>

#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <string>

using namespace std::chrono_literals;

goro::Chan<int> gen(int n) {
  goro::Chan<int> out(0);
  goro::go([out, n] {
    for (int i = 1; i <= n; ++i) out.send(i);
    out.close();
  });
  return out;
}

void square(goro::Chan<int> in, goro::Chan<int> out, goro::WaitGroup* wg, bool buggy) {
  for (int v : in) {
    out.send(v * v);
  }
  if (buggy) return;  // BUG: this worker returns without wg->done()
  wg->done();
}

goro::Chan<int> merge_squares(goro::Chan<int> in, goro::WaitGroup* wg) {
  goro::Chan<int> out(0);
  wg->add(3);
  for (int w = 0; w < 3; ++w) goro::go(square, in, out, wg, w == 0);
  goro::go([out, wg] {
    wg->wait();  // never returns: one worker never calls done()
    out.close();
  });
  return out;
}

int main(int argc, char** argv) {
  std::string mode = argc > 1 ? argv[1] : "deadlock";
  return goro::run([&] {
    goro::WaitGroup wg;
    goro::Chan<int> squares = merge_squares(gen(10), &wg);
    if (mode == "sigquit") {
      goro::go([] {  // a heartbeat: the program is alive, so not deadlocked
        goro::Ticker t(50ms);
        for (;;) t.c().recv();
      });
      goro::after_func(200ms, [] { kill(getpid(), SIGQUIT); });
    }
    if (mode == "json") {
      goro::go([&] {
        goro::sleep_for(100ms);
        std::fputs(goro::goroutine_dump_json().c_str(), stdout);
        goro::RuntimeStats st = goro::runtime_stats();
        std::printf("goroutines=%zu waiting=%zu threads=%zu timers=%zu stack_committed=%zu\n", st.goroutines,
                    st.waiting, st.threads, st.timers, st.stack_bytes_committed);
        std::fflush(stdout);
        std::_Exit(0);
      });
    }
    long sum = 0;
    for (int v : squares) sum += v;
    std::printf("sum %ld\n", sum);  // never reached
  });
}
