// examples/echo_server: a TCP echo server, one goroutine per connection.
//
//   echo_server [address]      (default "127.0.0.1:9000"; port 0 picks one)
//
// Prints "listening on <address>" when ready. Go idiom: a blocking accept
// loop and a blocking read/write loop per connection; the netpoller parks
// goroutines, so 10,000 connections cost 10,000 small stacks, not threads.
// examples/go/echo_server is the same program in Go.
#include <goro/goro.h>

#include <cstdio>
#include <string>

int main(int argc, char** argv) {
  std::string address = argc > 1 ? argv[1] : "127.0.0.1:9000";
  goro::set_default_stack_size(32 * 1024);  // a connection needs little stack
  return goro::run([&] {
    std::error_code ec;
    goro::net::Listener ln = goro::net::listen(address, ec);
    if (ec) {
      std::fprintf(stderr, "echo_server: listen %s: %s\n", address.c_str(), ec.message().c_str());
      return 1;
    }
    std::printf("listening on %s\n", ln.address().c_str());
    std::fflush(stdout);
    for (;;) {
      goro::net::Conn c = ln.accept(ec);
      if (ec) {
        // Out of descriptors (EMFILE) and the like: back off and go on, as
        // Go's net/http does; the connection waits in the backlog.
        std::fprintf(stderr, "echo_server: accept: %s\n", ec.message().c_str());
        goro::sleep_for(std::chrono::milliseconds(5));
        continue;
      }
      goro::go([c = std::move(c)]() mutable {
        char buf[4096];
        std::error_code e;
        for (;;) {
          std::size_t n = c.read(std::span<char>(buf), e);
          if (e) break;  // EOF or error: drop the connection
          c.write(std::string_view(buf, n), e);
          if (e) break;
        }
      });
    }
  });
}
