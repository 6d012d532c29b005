// Consumer of the installed goro::nats: links against it and checks that a
// connection to a port where no server listens fails with its error code.
#include <goro/goro.h>
#include <goro/nats.h>

#include <cstdio>

int main() {
  return goro::run([] {
    std::error_code ec;
    goro::nats::connect("nats://127.0.0.1:1", ec);
    std::printf("consumer_nats: connect to nothing: %s\n", ec.message().c_str());
    return ec == goro::nats::errc::no_server ? 0 : 1;
  });
}
