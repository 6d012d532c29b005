// bench/nats/goro_nats_bench.cc: goro::nats on the three shapes that
// bench/nats/compare runs for goro, Go's client and cnats alike:
//   pub <url> <n> <size>    publish n messages, then flush: messages/s
//   queue <url> <n> <size>  one queue-group member receives n messages that
//                           another connection publishes: messages/s from
//                           the first to the last
//   req <url> <n> [size idle]  n sequential request/reply round trips to a
//                           responder on another connection: p50, p99 (us);
//                           with idle, the responder's connection also holds
//                           that many subscriptions that receive nothing
#include <goro/goro.h>
#include <goro/nats.h>

#include <algorithm>
#include <cstdio>
#include <string>
#include <vector>

namespace nats = goro::nats;
using Clock = std::chrono::steady_clock;

static double secs(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

int main(int argc, char** argv) {
  if (argc < 4) return 64;
  std::string mode = argv[1], url = argv[2];
  long n = std::stol(argv[3]);
  std::size_t size = argc > 4 ? std::stoul(argv[4]) : 16;
  return goro::run([&] {
    std::string body(size, 'x');
    if (mode == "pub") {
      auto nc = nats::connect(url);
      auto t0 = Clock::now();
      for (long i = 0; i < n; ++i) nc.publish("bench.pub", body);
      nc.flush();
      std::printf("pub_rate=%.0f handoffs=%llu\n", n / secs(Clock::now() - t0),
                  static_cast<unsigned long long>(goro::runtime_stats().handoffs));
      return 0;
    }
    if (mode == "queue") {
      auto sub_nc = nats::connect(url);
      auto sub = sub_nc.subscribe("bench.q", {.queue = "q", .capacity = 1024, .pending_msgs = -1, .pending_bytes = -1});
      sub_nc.flush();
      goro::WaitGroup wg;
      Clock::time_point first, last;
      wg.go([&] {
        auto ch = sub.messages();
        long got = 0;
        while (got < n) {
          auto m = ch.recv();
          if (!m) break;
          if (got++ == 0) first = Clock::now();
        }
        last = Clock::now();
      });
      auto pub = nats::connect(url);
      for (long i = 0; i < n; ++i) pub.publish("bench.q", body);
      pub.flush();
      wg.wait();
      std::printf("queue_rate=%.0f\n", (n - 1) / secs(last - first));
      return 0;
    }
    if (mode == "req") {
      auto resp_nc = nats::connect(url);
      auto sub = resp_nc.subscribe("bench.req");
      long idle = argc > 5 ? std::stol(argv[5]) : 0;
      std::vector<nats::Subscription> idle_subs;
      for (long i = 0; i < idle; ++i) idle_subs.push_back(resp_nc.subscribe("bench.idle." + std::to_string(i)));
      resp_nc.flush();
      goro::go([sub] {
        for (nats::Msg m : sub.messages()) m.respond(m.data());
      });
      auto nc = nats::connect(url);
      goro::Context ctx;
      std::vector<double> us;
      us.reserve(n);
      for (long i = 0; i < n; ++i) {
        auto t0 = Clock::now();
        nc.request("bench.req", body, ctx);
        us.push_back(secs(Clock::now() - t0) * 1e6);
      }
      std::sort(us.begin(), us.end());
      std::printf("req_p50=%.1f req_p99=%.1f\n", us[us.size() / 2], us[us.size() * 99 / 100]);
      sub.unsubscribe();
      return 0;
    }
    return 64;
  });
}
