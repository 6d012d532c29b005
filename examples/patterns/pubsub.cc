// Pub/sub with an explicit slow-subscriber policy: a broker fans each
// published message out to every subscriber's channel; what happens when a
// subscriber's buffer is full is chosen per subscription: Block (the
// publisher waits: nothing is lost, the slowest subscriber paces all) or
// Drop (the message is dropped for that subscriber and counted).
// Go: a broker goroutine with a map of subscriber channels, `ch <- msg` for
// blocking and `select { case ch <- msg: default: drops++ }` for dropping.
// The mistake it prevents: choosing implicitly, e.g. a blocking send that
// lets one stalled subscriber freeze every publisher.
#include <goro/goro.h>

#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "leakcheck.h"

using namespace std::chrono_literals;

enum class Policy { Block, Drop };

class Broker {
 public:
  struct Sub {
    goro::Chan<int> ch;
    Policy policy;
    int dropped = 0;  // written by publish only
  };

  // Subscribe before publishing starts (the list is then read-only).
  goro::RecvChan<int> subscribe(std::size_t buffer, Policy p) {
    subs_.push_back(Sub{goro::Chan<int>(buffer), p});
    return subs_.back().ch;
  }
  void publish(int msg) {
    for (Sub& s : subs_) {
      if (s.policy == Policy::Block) {
        s.ch.send(msg);
      } else if (!s.ch.try_send(msg)) {
        ++s.dropped;
      }
    }
  }
  void close() {
    for (Sub& s : subs_) s.ch.close();
  }
  const std::vector<Sub>& subs() const { return subs_; }

 private:
  std::vector<Sub> subs_;
};

int main() {
  goro::run([] {
    Broker b;
    goro::RecvChan<int> audit = b.subscribe(8, Policy::Block);  // must see everything
    goro::RecvChan<int> dash = b.subscribe(4, Policy::Drop);    // a slow dashboard: may miss updates
    int audited = 0, shown = 0;
    goro::WaitGroup readers;
    readers.go([&, audit] {
      for (int m : audit) audited += m >= 0;
    });
    readers.go([&, dash] {
      for (int m : dash) {
        shown += m >= 0;
        goro::sleep_for(5ms);  // slow
      }
    });
    constexpr int kMessages = 100;
    for (int i = 0; i < kMessages; ++i) {
      b.publish(i);
      goro::sleep_for(200us);
    }
    b.close();
    readers.wait();
    const int dropped = b.subs()[1].dropped;
    std::printf("blocking subscriber received %d of %d\n", audited, kMessages);
    std::printf("dropping subscriber: received + dropped = %d, dropped some: %s\n", shown + dropped,
                dropped > 0 ? "yes" : "no");
  });
  return report_leaks();
}
