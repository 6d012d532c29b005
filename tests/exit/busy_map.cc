// tests/exit/busy_map.cc: busy goroutines that lock a global goro::Mutex and
// update a global std::map while main returns from run(). Before exit
// stopped the world, they kept running while the map's static destructor
// freed its nodes ("double free or corruption", TSan: heap-use-after-free).
// Run many times by tests/exit/run_many.sh.
#include <goro/goro.h>

#include <cstdio>
#include <map>
#include <mutex>
#include <string>

goro::Mutex mu;
std::map<std::string, long> counts;  // guarded by mu

int main() {
  return goro::run([] {
    for (int i = 0; i < 4; ++i) {
      goro::go([i] {
        for (long k = 0;; ++k) {
          {
            std::lock_guard<goro::Mutex> lk(mu);
            counts["key" + std::to_string((k * 7 + i) % 512)] += 1;
          }
          if (k % 32 == 0) goro::yield();
        }
      });
    }
    // Return while they run: once they have filled the map a little (a
    // fixed sleep was too short under ThreadSanitizer).
    for (bool some = false; !some;) {
      goro::sleep_for(std::chrono::milliseconds(1));
      std::lock_guard<goro::Mutex> lk(mu);
      some = counts.size() >= 16;
    }
    std::printf("keys some\n");
  });
}
