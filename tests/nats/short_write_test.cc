// goro::nats when the socket takes a publisher's bytes in pieces and stays
// writable: a short write that does not fill the socket. Readiness is
// edge-triggered, so a writer that parked after such a write would wait for
// an edge that never comes (the socket never became full); the writer must
// look (poll) and park only once the socket is really full.
//
// This executable interposes send(), the call cnats writes with, and caps
// each call to kCap bytes while `capped` is set: every write of a larger
// buffer is then short with room left. Its own executable, because the cap
// applies to every send() in the process.
#include <goro/goro.h>
#include <goro/nats.h>

#include <gtest/gtest.h>

#include <dlfcn.h>
#include <sys/socket.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "nats/server.h"
#include "nats/util.h"

using namespace std::chrono_literals;
namespace nats = goro::nats;

namespace {
constexpr std::size_t kCap = 700;
std::atomic<bool> capped{false};
std::atomic<long> short_writes{0};
}  // namespace

// Overrides libc's (and a sanitizer's interceptor, which is weak) for the
// whole process, libnats included.
extern "C" ssize_t send(int fd, const void* buf, std::size_t len, int flags) {
  using SendFn = ssize_t (*)(int, const void*, std::size_t, int);
  static const SendFn real = reinterpret_cast<SendFn>(::dlsym(RTLD_NEXT, "send"));
  if (capped.load(std::memory_order_relaxed) && len > kCap) {
    len = kCap;
    short_writes.fetch_add(1, std::memory_order_relaxed);
  }
  return real(fd, buf, len, flags);
}

namespace {

TEST(NatsShortWrite, EveryMessageArrivesWhenTheSocketTakesWritesInPieces) {
  goro_test::NatsServer server;
  ASSERT_TRUE(server.start()) << "nats-server did not start (is it installed?)";
  goro::run([&] {
    auto subc = nats::connect(server.url());
    auto pub = nats::connect(server.url());
    auto sub = subc.subscribe("short", {.capacity = 4096});
    subc.flush();
    capped.store(true);

    // 20,000 messages of ~300 bytes: ~6 MB through 700-byte writes, and
    // more than the 64 KiB a publisher buffers before writing itself.
    constexpr int kN = 20000;
    const std::string pad(290, 'x');
    goro::Chan<int> done(2);
    std::vector<int> seen(kN, 0);
    goro::go([&] {
      auto ch = sub.messages();
      for (int got = 0; got < kN; ++got) {
        auto m = ch.recv();
        if (!m) break;
        std::string d(m->data());
        int v = goro_test::to_int(d.substr(0, d.find(' ')));
        if (v >= 0 && v < kN) ++seen[v];
      }
      done.send(1);
    });
    goro::go([&] {
      for (int i = 0; i < kN; ++i) pub.publish("short", std::to_string(i) + " " + pad);
      pub.flush();
      done.send(2);
    });
    int finished = 0;
    bool timed_out = false;
    auto limit = goro::after(60s);
    while (finished < 2 && !timed_out) {
      goro::select(goro::recv(done, [&](auto) { ++finished; }), goro::recv(limit, [&](auto) { timed_out = true; }));
    }
    capped.store(false);
    if (timed_out) {
      // The publisher or the receiver is stuck for good (a writer parked on
      // a writable socket): nothing would end this process cleanly.
      std::fprintf(stderr, "FAILED: %d of 2 goroutines finished in 60 s (%ld short writes)\n", finished,
                   short_writes.load());
      std::fflush(stderr);
      std::_Exit(1);
    }
    EXPECT_GT(short_writes.load(), 1000) << "the cap did not bite: the test proves nothing";
    for (int v = 0; v < kN; ++v) ASSERT_EQ(seen[v], 1) << "message " << v;
    EXPECT_EQ(sub.dropped(), 0u);
    sub.unsubscribe();
    pub.close();
    subc.close();
  });
}

}  // namespace
