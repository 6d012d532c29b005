// Graceful shutdown of a server: on the shutdown signal, stop accepting,
// let in-flight requests finish within a deadline, then exit. Go:
// http.Server.Shutdown(ctx): close the listeners, wait for active
// connections to go idle, give up when ctx ends.
// The mistake it prevents: exiting mid-request (clients see resets), or
// waiting forever for a request that never ends.
// Here: three clients send requests that take 100 ms; shutdown begins
// once all three are in flight (a connection still in the listen backlog
// when the listener closes is reset by the kernel, as in Go: only accepted
// connections are drained); all three get their answers, and a client that
// connects after shutdown is refused.
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
    goro::Chan<int> started(3);  // (for the demonstration: tells main when requests are in flight)

    goro::go([ln, &in_flight, accepting_stopped, started]() mutable {  // the accept loop
      for (;;) {
        std::error_code ec;
        goro::net::Conn c = ln.accept(ec);
        if (ec) break;  // errc::closed: shutdown began
        in_flight.add(1);
        goro::go([c, &in_flight, started]() mutable {
          goro::net::Reader r(c);
          std::error_code ec;
          std::string line = r.read_line(ec);
          if (!ec) {
            int one = 1;
            started.try_send(one);  // capacity 3: never full
            goro::sleep_for(100ms);  // the work
            c.write("done: " + line + "\n", ec);
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
        std::error_code ec;
        goro::net::Conn c = goro::net::dial(addr, ec);
        if (ec) return;
        c.write("request " + std::to_string(i) + "\n", ec);
        goro::net::Reader r(c);
        std::string reply = r.read_line(ec);
        if (!ec && reply.rfind("done: request", 0) == 0) answered.fetch_add(1);
      });
    }
    for (int i = 0; i < 3; ++i) started.recv();  // all three requests are in flight

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
