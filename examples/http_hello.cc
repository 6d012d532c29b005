// examples/http_hello: a minimal HTTP/1.1 keep-alive server answering
// "Hello, World!" to every request, one goroutine per connection.
//
//   http_hello [address]      (default "127.0.0.1:8080"; port 0 picks one)
//
// Prints "listening on <address>" when ready. The response carries the same
// headers as Go's net/http for w.Write("Hello, World!"), so the two servers
// send the same bytes; examples/go/http_hello is the Go net/http twin and
// examples/go/http_raw the same small parser (examples/http_minimal.h) over
// raw connections.
#include <goro/goro.h>

#include <string>
#include <vector>

#include "accept_loop.h"
#include "http_minimal.h"

namespace {

void serve(goro::net::Conn c) {
  std::vector<char> in(http_minimal::kMaxHeader + 4096);
  std::size_t len = 0;
  std::string out;
  std::error_code ec;
  for (;;) {
    if (len == in.size()) in.resize(in.size() * 2);  // a large body being skipped
    std::size_t n = c.read(std::span<char>(in.data() + len, in.size() - len), ec);
    if (ec) return;
    len += n;
    bool keep_alive = true;
    len = http_minimal::answer_and_compact(in, len, out, keep_alive);
    if (!out.empty()) {
      c.write(out, ec);
      out.clear();
      if (ec) return;
    }
    if (!keep_alive) return;
  }
}

}  // namespace

int main(int argc, char** argv) {
  std::string address = argc > 1 ? argv[1] : "127.0.0.1:8080";
  goro::set_default_stack_size(32 * 1024);
  return goro::run([&] { return accept_loop("http_hello", address, serve); });
}
