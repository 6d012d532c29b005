// Consumer of the installed package: spawns goroutines, joins them, and
// exits 0 only if every one ran.
#include <goro/goro.h>

#include <atomic>
#include <cstdio>

int main() {
  std::atomic<int> ran{0};
  int rc = goro::run([&] {
    goro::WaitGroup wg;
    for (int i = 0; i < 1000; ++i) {
      wg.add(1);
      goro::go([&] {
        ran.fetch_add(1);
        wg.done();
      });
    }
    wg.wait();
    return ran.load() == 1000 ? 0 : 1;
  });
  std::printf("consumer: %d goroutines ran\n", ran.load());
  return rc;
}
