// goro::nats across processes: worker processes in a queue group, a durable
// consumer killed with SIGKILL, and a 3-node cluster losing a node. Each
// test starts its own nats-server(s) and the helper processes
// (tests/nats/nats_procs.cc).
#include <goro/goro.h>
#include <goro/nats.h>

#include <gtest/gtest.h>

#include <cstring>
#include <fstream>
#include <map>
#include <set>
#include <string>

#include "common.h"
#include "nats/server.h"
#include "nats/util.h"

using namespace std::chrono_literals;
namespace nats = goro::nats;
using goro_test::NatsCluster;
using goro_test::NatsServer;
using goro_test::to_int;

namespace {

// A child process whose stdout we read line by line.
struct Child {
  pid_t pid = -1;
  FILE* out = nullptr;
  explicit Child(std::vector<std::string> args) {
    int p[2];
    if (::pipe(p) != 0) return;
    pid = ::fork();
    if (pid == 0) {
      ::dup2(p[1], 1);
      ::close(p[0]);
      ::close(p[1]);
      std::vector<char*> argv;
      for (auto& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      ::execv(argv[0], argv.data());
      ::_exit(127);
    }
    ::close(p[1]);
    out = ::fdopen(p[0], "r");
  }
  // A line of its stdout, read on a blocking goroutine call (the read
  // blocks the thread).
  std::string line() {
    return goro::blocking([&] {
      char buf[4096];
      if (std::fgets(buf, sizeof buf, out) == nullptr) return std::string();
      std::string s(buf);
      if (!s.empty() && s.back() == '\n') s.pop_back();
      return s;
    });
  }
  int wait() {
    int st = 0;
    goro::blocking([&] { ::waitpid(pid, &st, 0); });
    pid = -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
  }
  void kill(int sig) {
    if (pid > 0) ::kill(pid, sig);
  }
  ~Child() {
    if (pid > 0) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, nullptr, 0);
    }
    if (out != nullptr) std::fclose(out);
  }
};

std::string num(std::uint64_t i) { return std::to_string(i); }

TEST(NatsProcesses, ThreeWorkerProcessesInAQueueGroupGetEachOfAMillionMessagesExactlyOnce) {
  NatsServer server;
  ASSERT_TRUE(server.start());
  const std::uint32_t kN = static_cast<std::uint32_t>(goro::test::scaled(1000000));
  goro::run([&] {
    std::vector<std::unique_ptr<Child>> workers;
    std::vector<std::string> files;
    for (int i = 0; i < 3; ++i) {
      files.push_back(server.dir() + "/worker" + num(i));
      workers.push_back(std::make_unique<Child>(
          std::vector<std::string>{GORO_NATS_PROCS, "worker", server.url(), num(i), files.back()}));
    }
    for (auto& w : workers) ASSERT_EQ(w->line(), "ready");
    auto nc = nats::connect(server.url());
    auto stats = nc.subscribe("stats.*");
    nc.flush();
    for (std::uint32_t i = 0; i < kN; ++i) {
      char body[sizeof i];
      std::memcpy(body, &i, sizeof i);
      nc.publish("work", std::string_view(body, sizeof body));
      if (i % 50000 == 49999) nc.flush();  // keep the producer within reach of the workers
    }
    nc.flush();
    // Until the workers' counts add up to every message.
    std::map<std::string, std::uint64_t> counts;
    auto [ctx, cancel] = goro::with_timeout(goro::Context(), 120s);
    for (;;) {
      std::uint64_t total = 0;
      for (auto& [k, v] : counts) total += v;
      if (total >= kN) break;
      std::optional<nats::Msg> m;
      goro::select(goro::recv(stats.messages(), [&](auto v) { m = std::move(v); }), goro::recv(ctx.done()));
      ASSERT_TRUE(m.has_value()) << "workers got " << total << " of " << kN;
      counts[std::string(m->subject())] = to_int(m->data());
    }
    cancel();
    nc.publish("quit", "");
    nc.flush();
    for (auto& w : workers) EXPECT_EQ(w->wait(), 0) << "a worker dropped messages or failed";
    std::vector<std::uint8_t> seen(kN, 0);
    std::uint64_t total = 0;
    for (auto& f : files) {
      std::ifstream in(f, std::ios::binary);
      std::uint32_t v;
      std::uint64_t mine = 0;
      while (in.read(reinterpret_cast<char*>(&v), sizeof v)) {
        ASSERT_LT(v, kN);
        ASSERT_EQ(seen[v], 0) << "message " << v << " delivered twice";
        seen[v] = 1;
        ++mine;
      }
      EXPECT_GT(mine, 0u) << f << " got nothing";
      total += mine;
    }
    EXPECT_EQ(total, kN);
    std::printf("%u messages, 3 worker processes: each exactly once\n", kN);
  });
}

TEST(NatsProcesses, MessagesHeldUnackedByAProcessKilledWithSigkillAreRedeliveredToAnotherMember) {
  NatsServer server(true);
  ASSERT_TRUE(server.start());
  goro::run([&] {
    auto nc = nats::connect(server.url());
    auto js = nc.jetstream();
    js.add_stream({.name = "TASKS", .subjects = {"tasks"}});
    // Create the durable with the members' settings first.
    nats::PullOptions po;
    po.ack_wait = 1000ms;
    po.batch = 4;
    po.capacity = 4;
    constexpr int kN = 20;
    for (int i = 0; i < kN; ++i) js.publish("tasks", num(i));
    Child holder({GORO_NATS_PROCS, "hold", server.url(), "TASKS", "crew"});
    std::string held;
    for (int i = 0; i < 3; ++i) held = holder.line();  // it holds three, unacked
    ASSERT_EQ(held.rfind("held ", 0), 0u) << held;
    holder.kill(SIGKILL);
    EXPECT_EQ(holder.wait(), 128 + SIGKILL);
    std::set<std::string> held_set;
    for (std::size_t i = 5, j; i < held.size(); i = j + 1) {
      j = held.find(' ', i);
      if (j == std::string::npos) j = held.size();
      held_set.insert(held.substr(i, j - i));
    }
    ASSERT_EQ(held_set.size(), 3u);
    auto heir = js.pull_subscribe("TASKS", "crew", po);
    std::map<std::string, std::uint64_t> got;  // data -> delivery count
    auto [ctx, cancel] = goro::with_timeout(goro::Context(), 30s);
    while (got.size() < static_cast<std::size_t>(kN)) {
      std::optional<nats::Msg> m;
      goro::select(goro::recv(heir.messages(), [&](auto v) { m = std::move(v); }), goro::recv(ctx.done()));
      ASSERT_TRUE(m.has_value()) << got.size() << " of " << kN;
      got[std::string(m->data())] = m->num_delivered();
      m->ack();
    }
    cancel();
    for (auto& h : held_set) {
      ASSERT_TRUE(got.count(h)) << h;
      EXPECT_GE(got[h], 2u) << "message " << h << " was held by the killed process: a redelivery";
    }
    heir.unsubscribe();
  });
}

TEST(NatsCluster, ClientsFailOverWhenANodeDiesAndEveryAcknowledgedMessageIsConsumed) {
  NatsCluster cluster;
  ASSERT_TRUE(cluster.start());
  goro::run([&] {
    nats::Options o;
    o.reconnect_wait = 50ms;
    auto nc = nats::connect(cluster.urls(), o);
    auto js = nc.jetstream();
    // The cluster elects its meta leader after the nodes meet, and until
    // then (or while a peer is not yet current) a stream of three replicas
    // is refused with a JetStream error: retry. Up to 60 s: on a loaded
    // machine (CI's last suite run, after the others) 15 s was once not enough.
    std::error_code ec;
    int tries = 0;
    while (tries < 600) {
      ++tries;
      js.add_stream({.name = "EVENTS", .subjects = {"events"}, .replicas = 3}, ec);
      if (!ec) break;
      goro::sleep_for(100ms);
    }
    ASSERT_FALSE(ec) << ec.message() << " after " << tries << " tries";
    std::set<std::uint64_t> acked;
    goro::Mutex mu;
    std::atomic<bool> stop{false};
    goro::WaitGroup wg;
    wg.go([&] {
      for (std::uint64_t i = 0; !stop.load(); ++i) {
        auto [ctx, cancel] = goro::with_timeout(goro::Context(), 3s);
        std::error_code e;
        js.publish("events", num(i), ctx, num(i), e);  // the id: a retried publish is stored once
        cancel();
        if (!e) {
          std::lock_guard lk(mu);
          acked.insert(i);
        }
      }
    });
    std::map<std::uint64_t, int> seen;
    std::atomic<std::uint64_t> consumed{0};
    // Messages in flight to the dead node's consumer leader come back after
    // ack_wait: a short one keeps the test short.
    nats::PullOptions po;
    po.ack_wait = 2000ms;
    auto sub = js.pull_subscribe("EVENTS", "audit", po);
    auto cancelable = goro::with_cancel(goro::Context());
    goro::Context cctx = cancelable.first;
    goro::WaitGroup consumer;
    consumer.go([&] {
      nats::consume(sub, cctx, [&](const nats::Msg& m) {
        std::lock_guard lk(mu);
        ++seen[to_int(m.data())];
        consumed.fetch_add(1);
      });
    });
    goro::sleep_for(500ms);
    // Kill the node this client is connected to: it must fail over.
    std::string victim = nc.connected_url();
    int killed = -1;
    for (int i = 0; i < 3; ++i)
      if (victim.find(":" + num(cluster.node(i).port())) != std::string::npos) killed = i;
    ASSERT_GE(killed, 0) << victim;
    cluster.node(killed).stop(SIGKILL);
    for (int i = 0; i < 1000 && nc.reconnects() == 0; ++i) goro::sleep_for(10ms);
    EXPECT_GE(nc.reconnects(), 1u);  // failed over (a loaded survivor may take two tries)
    EXPECT_NE(nc.connected_url(), victim);
    goro::sleep_for(1500ms);  // publishing and consuming through the survivors
    stop = true;
    wg.wait();
    ASSERT_GT(acked.size(), 0u);
    auto [ctx, cancel] = goro::with_timeout(goro::Context(), 60s);
    for (;;) {
      bool all = true;
      {
        std::lock_guard lk(mu);
        for (auto a : acked)
          if (!seen.count(a)) {
            all = false;
            break;
          }
      }
      if (all || ctx.err()) break;
      goro::sleep_for(20ms);
    }
    cancel();
    cancelable.second();
    consumer.wait();
    sub.unsubscribe();
    std::size_t missing = 0, dups = 0;
    for (auto a : acked) missing += seen.count(a) ? 0 : 1;
    for (auto& [k, c] : seen) dups += c > 1 ? c - 1 : 0;
    std::printf("cluster: %zu acknowledged, %llu consumed, %zu duplicates, %zu missing\n", acked.size(),
                (unsigned long long)consumed.load(), dups, missing);
    EXPECT_EQ(missing, 0u);
  });
}

}  // namespace
