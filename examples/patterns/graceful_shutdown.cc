// Graceful shutdown of a server: on the shutdown signal, stop accepting,
// let in-flight requests finish within a deadline, then exit. Go:
// http.Server.Shutdown(ctx): close the listeners, wait for active
// connections to go idle, give up when ctx ends.
// The mistake it prevents: exiting mid-request (clients see resets), or
// waiting forever for a request that never ends.
// Here: three clients send requests that take 100 ms; shutdown begins
// while they are in flight; all three get their answers, and a fourth
// client that connects after shutdown is refused.
#include <goro/goro.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <string>

#include "leakcheck.h"

using namespace std::chrono_literals;

int main() {
  std::atomic<int> answered{0};
  goro::run([&] {
    goro::net::Listener ln = goro::net::listen("127.0.0.1:0");
    const std::string addr = ln.address();
    goro::WaitGroup in_flight;
    goro::Chan<std::monostate> accepting_stopped(0);

    goro::go([ln, &in_flight, accepting_stopped]() mutable {  // the accept loop
      for (;;) {
        std::error_code ec;
        goro::net::Conn c = ln.accept(ec);
        if (ec) break;  // errc::closed: shutdown began
        in_flight.add(1);
        goro::go([c, &in_flight]() mutable {
          goro::net::Reader r(c);
          if (auto line = r.read_line()) {
            goro::sleep_for(100ms);  // the work
            c.write("done: " + *line + "\n");
          }
          c.close();
          in_flight.done();
        });
      }
      accepting_stopped.close();
    });

    goro::WaitGroup clients;
    for (int i = 0; i < 3; ++i) {
      clients.go([&, i] {
        goro::net::Conn c = goro::net::dial(addr);
        c.write("request " + std::to_string(i) + "\n");
        goro::net::Reader r(c);
        if (auto reply = r.read_line(); reply && reply->rfind("done: request", 0) == 0) answered.fetch_add(1);
      });
    }
    goro::sleep_for(30ms);  // the requests are in flight

    // Shutdown: stop accepting, then drain under a deadline.
    ln.close();
    accepting_stopped.recv();
    goro::Chan<std::monostate> drained(0);
    goro::go([&in_flight, drained] {
      in_flight.wait();
      drained.close();
    });
    bool in_time = goro::select(goro::recv(drained), goro::recv(goro::after(2s))) == 0;
    std::printf("in-flight requests drained before the deadline: %s\n", in_time ? "yes" : "no");
    clients.wait();
    std::printf("answered: %d of 3\n", answered.load());
    std::error_code ec;
    goro::net::dial(addr, ec);
    std::printf("a new connection after shutdown: %s\n", ec ? "refused" : "accepted (bug)");
  });
  return report_leaks();
}
