// bench/net/asio_server.cc: the Boost.Asio anchor for bench/net/compare,
// written the way Asio users write servers: one io_context run by a pool of
// threads (one per core), a C++20 coroutine per connection (co_spawn,
// use_awaitable).
//
//   asio_server echo|http [address]   (port 0 picks one)
//
// Prints "listening on <address>" when ready, like the example servers.
// `echo` writes back what it reads (4 KiB reads, as examples/echo_server);
// `http` answers with examples/http_minimal.h, the parser goro's http_hello
// uses, so the HTTP rows compare runtimes, not parsers.
#include <utility>  // before asio: Boost 1.74's awaitable.hpp uses std::exchange without it

#include <boost/asio.hpp>

#include <cstdio>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "../../examples/http_minimal.h"

namespace asio = boost::asio;
using asio::ip::tcp;

namespace {

asio::awaitable<void> echo(tcp::socket s) {
  char buf[4096];
  boost::system::error_code ec;
  for (;;) {
    std::size_t n = co_await s.async_read_some(asio::buffer(buf), asio::redirect_error(asio::use_awaitable, ec));
    if (ec) co_return;
    co_await asio::async_write(s, asio::buffer(buf, n), asio::redirect_error(asio::use_awaitable, ec));
    if (ec) co_return;
  }
}

asio::awaitable<void> http(tcp::socket s) {
  std::vector<char> in(http_minimal::kMaxHeader + 4096);
  std::size_t len = 0;
  std::string out;
  boost::system::error_code ec;
  for (;;) {
    if (len == in.size()) in.resize(in.size() * 2);  // a large body being skipped
    std::size_t n = co_await s.async_read_some(asio::buffer(in.data() + len, in.size() - len),
                                               asio::redirect_error(asio::use_awaitable, ec));
    if (ec) co_return;
    len += n;
    bool keep_alive = true;
    len = http_minimal::answer_and_compact(in, len, out, keep_alive);
    if (!out.empty()) {
      co_await asio::async_write(s, asio::buffer(out), asio::redirect_error(asio::use_awaitable, ec));
      out.clear();
      if (ec) co_return;
    }
    if (!keep_alive) co_return;
  }
}

asio::awaitable<void> accept_loop(tcp::acceptor& acceptor, bool is_http) {
  auto ex = co_await asio::this_coro::executor;
  for (;;) {
    boost::system::error_code ec;
    tcp::socket s = co_await acceptor.async_accept(asio::redirect_error(asio::use_awaitable, ec));
    if (ec) continue;  // EMFILE and the like: the connection waits in the backlog
    s.set_option(tcp::no_delay(true), ec);
    asio::co_spawn(ex, is_http ? http(std::move(s)) : echo(std::move(s)), asio::detached);
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || (std::strcmp(argv[1], "echo") != 0 && std::strcmp(argv[1], "http") != 0)) {
    std::fprintf(stderr, "usage: asio_server echo|http [address]\n");
    return 2;
  }
  const bool is_http = std::strcmp(argv[1], "http") == 0;
  std::string address = argc > 2 ? argv[2] : "127.0.0.1:9000";
  std::size_t colon = address.rfind(':');
  if (colon == std::string::npos) {
    std::fprintf(stderr, "asio_server: bad address %s\n", address.c_str());
    return 2;
  }
  const unsigned threads = std::max(1u, std::thread::hardware_concurrency());
  asio::io_context io(static_cast<int>(threads));
  tcp::endpoint ep(asio::ip::make_address(address.substr(0, colon)),
                   static_cast<unsigned short>(std::stoi(address.substr(colon + 1))));
  tcp::acceptor acceptor(io, ep);  // reuse_address set, backlog the system's maximum
  std::printf("listening on %s:%u\n", acceptor.local_endpoint().address().to_string().c_str(),
              static_cast<unsigned>(acceptor.local_endpoint().port()));
  std::fflush(stdout);
  asio::co_spawn(io, accept_loop(acceptor, is_http), asio::detached);
  std::vector<std::thread> pool;
  for (unsigned i = 1; i < threads; ++i) pool.emplace_back([&io] { io.run(); });
  io.run();
  for (std::thread& t : pool) t.join();
}
