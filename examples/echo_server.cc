// examples/echo_server: a TCP echo server, one goroutine per connection.
//
//   echo_server [address]      (default "127.0.0.1:9000"; port 0 picks one)
//
// Prints "listening on <address>" when ready. Go idiom: a blocking accept
// loop and a blocking read/write loop per connection; the netpoller parks
// goroutines, so 10,000 connections cost 10,000 small stacks, not threads.
// examples/go/echo_server is the same program in Go.
#include <goro/goro.h>

#include <string>

#include "accept_loop.h"

namespace {

void echo(goro::net::Conn c) {
  char buf[4096];
  std::error_code ec;
  for (;;) {
    std::size_t n = c.read(std::span<char>(buf), ec);
    if (ec) return;  // EOF or error: drop the connection
    c.write(std::string_view(buf, n), ec);
    if (ec) return;
  }
}

}  // namespace

int main(int argc, char** argv) {
  std::string address = argc > 1 ? argv[1] : "127.0.0.1:9000";
  goro::set_default_stack_size(32 * 1024);  // a connection needs little stack
  return goro::run([&] { return accept_loop("echo_server", address, echo); });
}
