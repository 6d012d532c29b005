// tests/exit/teller.cc: Go's "monitor goroutine" shape (gopl's bank, ch. 9):
// package-level channels served by a goroutine started from a static
// initializer (Go's `func init() { go teller() }`), and depositors still
// sending when main returns. Before exit stopped the world, the static
// destructors freed the channels under the running goroutines (release:
// "double free or corruption" about 1 run in 10; TSan: heap-use-after-free
// in chan.cc in most runs). Run many times by tests/exit/run_many.sh.
#include <goro/goro.h>

#include <cstdio>

goro::Chan<int> deposits(0);  // send an amount to deposit
goro::Chan<int> balances(0);  // receive the balance

void teller() {
  int balance = 0;  // confined to the teller goroutine
  for (;;) {
    goro::select(goro::recv(deposits, [&](std::optional<int> amount) { balance += *amount; }),
                 goro::send(balances, balance));
  }
}

static const bool teller_started = (goro::go(teller), true);

int main() {
  for (int i = 0; i < 8; ++i) {
    goro::go([] {
      for (;;) deposits.send(1);
    });
  }
  int b = 0;
  while (b < 100) b = *balances.recv();
  std::printf("balance reached %s\n", b >= 100 ? "100" : "?");
  return 0;  // depositors and the teller are still running
}
