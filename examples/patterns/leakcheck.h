// examples/patterns/leakcheck.h: the catalogue's leak check. After
// goro::run() returns, every goroutine a pattern started must end by
// itself (stopped early or not): waits up to 2 s for them, then prints how
// many are left. The test compares the output, so a leak fails it.
#pragma once

#include <goro/goro.h>

#include <chrono>
#include <cstdio>
#include <thread>

inline int report_leaks() {
  for (int i = 0; i < 2000 && goro::num_goroutines() > 0; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  std::size_t left = goro::num_goroutines();
  std::printf("leaked goroutines: %zu\n", left);
  return left == 0 ? 0 : 1;
}
