// tests/nats/nats_procs.cc: the other processes of the multi-process NATS
// tests (tests/nats/procs_test.cc starts them).
//
//   nats_procs worker <url> <id> <out-file>
//     joins queue group "workers" on "work"; every message's body is a
//     4-byte sequence number; every 50 ms publishes its count on
//     "stats.<id>"; on a message on "quit" writes the numbers it got to
//     out-file (4 bytes each, in arrival order) and exits 0.
//   nats_procs hold <url> <stream> <durable>
//     joins the durable pull consumer, receives messages without acking
//     them, prints "held <data> ..." after each and keeps waiting (the test
//     kills it with SIGKILL).
#include <goro/goro.h>
#include <goro/nats.h>

#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

namespace nats = goro::nats;
using namespace std::chrono_literals;

namespace {

int worker(const std::string& url, const std::string& id, const std::string& out) {
  return goro::run([&] {
    auto nc = nats::connect(url);
    // Enough room that no message is dropped while the three workers and the
    // producer share two cores: a slow consumer here would be a fault.
    auto work = nc.subscribe("work", {.queue = "workers", .capacity = 4096, .pending_msgs = 1 << 22,
                                      .pending_bytes = 1 << 30});
    auto quit = nc.subscribe("quit");
    nc.flush();
    std::printf("ready\n");
    std::fflush(stdout);
    std::vector<std::uint32_t> got;
    got.reserve(1 << 20);
    auto tick = goro::Ticker(50ms);
    bool done = false;
    while (!done) {
      goro::select(
          goro::recv(work.messages(), [&](std::optional<nats::Msg> m) {
            std::uint32_t v = 0;
            if (m && m->data().size() == sizeof v) {
              std::memcpy(&v, m->data().data(), sizeof v);
              got.push_back(v);
            }
          }),
          goro::recv(tick.c(), [&](auto) { nc.publish("stats." + id, std::to_string(got.size())); }),
          goro::recv(quit.messages(), [&](auto) { done = true; }));
    }
    if (work.dropped() != 0) std::fprintf(stderr, "worker %s: %llu dropped\n", id.c_str(), (unsigned long long)work.dropped());
    FILE* f = std::fopen(out.c_str(), "wb");
    if (f == nullptr) return 1;
    std::fwrite(got.data(), sizeof(std::uint32_t), got.size(), f);
    std::fclose(f);
    nc.close();
    return work.dropped() == 0 ? 0 : 3;
  });
}

int hold(const std::string& url, const std::string& stream, const std::string& durable) {
  return goro::run([&] {
    auto nc = nats::connect(url);
    nats::PullOptions po;
    po.ack_wait = std::chrono::milliseconds(1000);
    po.batch = 4;
    po.capacity = 4;
    auto sub = nc.jetstream().pull_subscribe(stream, durable, po);
    std::string held = "held";
    for (nats::Msg m : sub.messages()) {  // never acked
      held += " " + std::string(m.data());
      std::printf("%s\n", held.c_str());
      std::fflush(stdout);
    }
    return 0;
  });
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> a(argv + 1, argv + argc);
  if (a.size() == 4 && a[0] == "worker") return worker(a[1], a[2], a[3]);
  if (a.size() == 4 && a[0] == "hold") return hold(a[1], a[2], a[3]);
  std::fprintf(stderr, "usage: nats_procs worker <url> <id> <out> | hold <url> <stream> <durable>\n");
  return 64;
}
