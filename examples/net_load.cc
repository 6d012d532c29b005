// examples/net_load: a goro load client for the example servers, used by
// the 10,000-connection tests and the echo benchmark (bench/net/compare).
//
//   net_load echo|http ADDRESS [--conns N] [--seconds S] [--rounds R]
//                               [--size B] [--hold]
//
// Opens N connections from N goroutines. echo: each writes a B-byte message
// that differs per connection and round, reads it back and checks it.
// http: each sends "GET / HTTP/1.1" and reads one whole response (checked:
// status 200, body "Hello, World!"). With --rounds R every connection does R
// round trips; with --seconds S they go on until S seconds have passed.
// --hold: all N connections are opened (and have done one round trip)
// before any does more, and stay open until all are done: N connections
// really are open at once.
//
// Prints one line: conns, round trips, errors, elapsed seconds, round trips
// per second, and the median and p99 round-trip latency in microseconds.
// Exit status 0 only if every connection completed without an error or a
// wrong byte.
#include <goro/goro.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace {

using Clock = goro::Clock;

struct Options {
  bool http = false;
  std::string address;
  std::size_t conns = 1000;
  double seconds = 0;
  std::size_t rounds = 0;
  std::size_t size = 64;
  bool hold = false;
};

void fill(std::string& s, std::size_t conn, std::size_t round) {
  std::uint64_t x = conn * 0x9E3779B97F4A7C15ULL + round + 1;
  for (char& c : s) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    c = static_cast<char>(x);
  }
}

bool read_full(goro::net::Conn& c, char* p, std::size_t n) {
  std::error_code ec;
  while (n > 0) {
    std::size_t got = c.read(std::span<char>(p, n), ec);
    if (ec) return false;
    p += got;
    n -= got;
  }
  return true;
}

// Reads one HTTP response (head + Content-Length body); `buf` keeps bytes
// of the next one, if any.
bool read_http(goro::net::Conn& c, std::string& buf) {
  std::error_code ec;
  char tmp[4096];
  for (;;) {
    std::size_t end = buf.find("\r\n\r\n");
    if (end != std::string::npos) {
      std::size_t cl = 0;
      std::size_t at = buf.find("Content-Length:");
      if (at == std::string::npos || at > end) return false;
      cl = std::strtoull(buf.c_str() + at + 15, nullptr, 10);
      std::size_t total = end + 4 + cl;
      while (buf.size() < total) {
        std::size_t n = c.read(std::span<char>(tmp), ec);
        if (ec) return false;
        buf.append(tmp, n);
      }
      bool ok = buf.compare(0, 12, "HTTP/1.1 200") == 0 && buf.compare(end + 4, cl, "Hello, World!") == 0 &&
                cl == 13;
      buf.erase(0, total);
      return ok;
    }
    std::size_t n = c.read(std::span<char>(tmp), ec);
    if (ec) return false;
    buf.append(tmp, n);
  }
}

int run(const Options& o) {
  std::atomic<std::size_t> trips{0}, errors{0}, connected{0};
  std::vector<std::vector<std::uint32_t>> lat(o.conns);  // microseconds, per connection
  // --hold: `opened` counts connections through their first round trip,
  // `gate` holds them there until all are; `finished` and `closing` keep
  // every connection open until all have finished.
  goro::WaitGroup wg, opened, gate, finished, closing;
  gate.add(1);
  closing.add(1);
  Clock::time_point start = Clock::now();
  Clock::time_point stop_at =
      o.seconds > 0 ? start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(o.seconds))
                    : Clock::time_point::max();
  std::size_t rounds = o.rounds > 0 ? o.rounds : (o.seconds > 0 ? SIZE_MAX : 1);
  const std::string request = "GET / HTTP/1.1\r\nHost: " + o.address + "\r\n\r\n";
  for (std::size_t i = 0; i < o.conns; ++i) {
    wg.add(1);
    opened.add(1);
    finished.add(1);
    goro::go([&, i] {
      std::error_code ec;
      goro::net::Conn c = goro::net::dial(o.address, ec);
      bool ok = !ec;
      if (ok) connected.fetch_add(1);
      bool held = false;
      std::string out(o.size, '\0'), in(o.size, '\0'), pending;
      auto& my = lat[i];
      for (std::size_t r = 0; ok && r < rounds; ++r) {
        if (r > 0 && Clock::now() >= stop_at) break;
        auto t0 = Clock::now();
        if (o.http) {
          ok = c.write(request, ec) == request.size() && read_http(c, pending);
        } else {
          fill(out, i, r);
          ok = c.write(out, ec) == out.size() && read_full(c, in.data(), in.size()) && in == out;
        }
        if (ok) {
          trips.fetch_add(1, std::memory_order_relaxed);
          my.push_back(static_cast<std::uint32_t>(
              std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - t0).count()));
        }
        if (r == 0 && o.hold) {
          held = true;
          opened.done();
          gate.wait();
        }
      }
      if (!ok) {
        if (errors.fetch_add(1) == 0) std::fprintf(stderr, "net_load: first error: %s\n", ec.message().c_str());
      }
      if (o.hold && !held) opened.done();  // failed before its first round trip
      finished.done();
      if (o.hold) closing.wait();
      wg.done();
    });
  }
  if (o.hold) {
    opened.wait();
    std::fprintf(stderr, "net_load: %zu connections open at once\n", connected.load());
    gate.done();
  }
  finished.wait();
  double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
  closing.done();
  wg.wait();
  std::vector<std::uint32_t> all;
  for (auto& v : lat) all.insert(all.end(), v.begin(), v.end());
  std::sort(all.begin(), all.end());
  auto pct = [&](double p) { return all.empty() ? 0u : all[std::min(all.size() - 1, std::size_t(p * all.size()))]; };
  std::printf("conns=%zu connected=%zu trips=%zu errors=%zu seconds=%.3f trips_per_sec=%.0f p50_us=%u p99_us=%u\n",
              o.conns, connected.load(), trips.load(), errors.load(), elapsed, trips.load() / elapsed, pct(0.50),
              pct(0.99));
  return errors.load() == 0 && connected.load() == o.conns ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: net_load echo|http ADDRESS [--conns N] [--seconds S] [--rounds R] [--size B] [--hold]\n");
    return 2;
  }
  Options o;
  o.http = std::strcmp(argv[1], "http") == 0;
  o.address = argv[2];
  for (int i = 3; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&] { return i + 1 < argc ? argv[++i] : "0"; };
    if (a == "--conns") o.conns = std::strtoull(next(), nullptr, 10);
    else if (a == "--seconds") o.seconds = std::atof(next());
    else if (a == "--rounds") o.rounds = std::strtoull(next(), nullptr, 10);
    else if (a == "--size") o.size = std::strtoull(next(), nullptr, 10);
    else if (a == "--hold") o.hold = true;
    else {
      std::fprintf(stderr, "net_load: unknown option %s\n", a.c_str());
      return 2;
    }
  }
  goro::set_default_stack_size(64 * 1024);
  return goro::run([&] { return run(o); });
}
