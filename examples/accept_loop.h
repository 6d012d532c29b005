// examples/accept_loop.h: the accept loop the network examples share.
// Listens on `address`, prints "listening on <address>" (tests and
// bench/net/compare read it), and runs handle(conn) in a goroutine per
// connection. Accept errors such as EMFILE (out of descriptors) are logged
// and followed by a short back-off, as Go's net/http does: the connection
// waits in the backlog until a descriptor frees up.
#pragma once

#include <goro/goro.h>

#include <cstdio>
#include <string>

template <class Handler>
int accept_loop(const char* name, const std::string& address, Handler handle) {
  std::error_code ec;
  goro::net::Listener ln = goro::net::listen(address, ec);
  if (ec) {
    std::fprintf(stderr, "%s: listen %s: %s\n", name, address.c_str(), ec.message().c_str());
    return 1;
  }
  std::printf("listening on %s\n", ln.address().c_str());
  std::fflush(stdout);
  for (;;) {
    goro::net::Conn c = ln.accept(ec);
    if (ec) {
      std::fprintf(stderr, "%s: accept: %s\n", name, ec.message().c_str());
      goro::sleep_for(std::chrono::milliseconds(5));
      continue;
    }
    goro::go(handle, std::move(c));
  }
}
