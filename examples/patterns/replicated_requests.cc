// Replicated requests: send the same request to several replicas, take the
// first answer, cancel the rest. Go: "Go Concurrency Patterns" (Rob Pike's
// `First(query, replicas...)`) with a context to stop the losers.
// The mistake it prevents: the losing requests run to completion (wasted
// work) or block forever sending answers nobody reads (leaks): here each
// replica stops when the context ends, and the results channel has room
// for every answer.
#include <goro/goro.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "leakcheck.h"

using namespace std::chrono_literals;

struct Answer {
  int replica;
  std::string text;
};

int main() {
  std::atomic<int> cancelled{0};
  goro::run([&] {
    // Replica i answers after its latency unless cancelled first.
    const std::vector<std::chrono::milliseconds> latency = {300ms, 250ms, 5ms, 400ms, 350ms};
    auto [ctx, cancel] = goro::with_cancel(goro::background());
    goro::Chan<Answer> answers(latency.size());  // room for all: a loser never blocks
    goro::WaitGroup replicas;
    for (int i = 0; i < static_cast<int>(latency.size()); ++i) {
      replicas.go([&, i, ctx = ctx] {
        goro::select(goro::recv(goro::after(latency[i]), [&] { answers.send({i, "result from replica " + std::to_string(i)}); }),
                     goro::recv(ctx.done(), [&] { cancelled.fetch_add(1); }));
      });
    }
    Answer first = *answers.recv();
    cancel();
    replicas.wait();
    std::printf("first answer: %s\n", first.text.c_str());
    std::printf("cancelled replicas: %d of %zu\n", cancelled.load(), latency.size() - 1);
  });
  return report_leaks();
}
