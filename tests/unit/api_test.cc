// tests/unit/api_test.cc: the API a Go programmer reaches for:
// Conn and Listener as shared handles, bufio-style reading and io.Copy over
// a Conn, channel direction views in select, channels as map keys, and
// WaitGroup::go.
#include <map>
#include <set>
#include <string>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "common.h"

namespace goro::test {
namespace {

using namespace std::chrono_literals;
using net::Conn;
using net::Listener;

class ApiTest : public ProcsTest {};
GORO_INSTANTIATE_PROCS(ApiTest);

struct Pair {
  Listener ln = net::listen("127.0.0.1:0");
  Conn c = net::dial(ln.address());
  Conn s = ln.accept();
};

std::string read_all(Conn c) {
  std::string out;
  char buf[256];
  for (;;) {
    std::error_code ec;
    std::size_t n = c.read(std::span<char>(buf), ec);
    out.append(buf, n);
    if (ec) return out;
  }
}

// ---------------------------------------------------------------- Conn handles

// A handler and a writer goroutine share one connection, as in Go's chat
// server: copies share the socket, the last one closes it.
TEST_P(ApiTest, ConnCopiesShareTheSocket) {
  run([] {
    Pair p;
    Conn writer = p.s;  // a copy
    EXPECT_TRUE(writer == p.s);
    WaitGroup wg;
    wg.go([writer]() mutable { writer.write("from the writer\n"); });
    wg.wait();
    p.s.write("from the handler\n");
    net::Reader r(p.c);
    EXPECT_EQ(r.read_line().value_or("?"), "from the writer");
    EXPECT_EQ(r.read_line().value_or("?"), "from the handler");
  });
}

// Copies closing in every order: the socket closes with the last handle
// (the peer sees end of stream only then), or at once with close() through
// any copy; later calls on any copy report errc::closed.
TEST_P(ApiTest, ConnCopiesCloseInEveryOrder) {
  run([] {
    for (int order = 0; order < 3; ++order) {
      Pair p;
      auto a = std::make_unique<Conn>(p.s);
      auto b = std::make_unique<Conn>(p.s);
      p.s = Conn();  // only a and b remain
      Chan<std::string> got(1);
      go([c = p.c, got]() { got.send(read_all(c)); });
      if (order == 0) {
        a.reset();
        EXPECT_EQ(got.size(), 0u);  // b still holds it open
        b->write("x");
        b.reset();
      } else if (order == 1) {
        b->write("x");
        b.reset();
        a.reset();
      } else {
        a->write("x");
        b->close();  // closes for every copy
        std::error_code ec;
        a->write("y", ec);
        EXPECT_EQ(ec, errc::closed);
        a->close(ec);
        EXPECT_EQ(ec, errc::closed);
        a.reset();
        b.reset();
      }
      EXPECT_EQ(*got.recv(), "x") << "order " << order;
    }
  });
}

// A listener shared by two accepting goroutines; closing one copy stops
// both.
TEST_P(ApiTest, ListenerCopiesShareTheSocket) {
  run([] {
    Listener ln = net::listen("127.0.0.1:0");
    Chan<std::error_code> done(2);
    for (int i = 0; i < 2; ++i) {
      go([ln, done]() mutable {
        std::error_code ec;
        for (;;) {
          Conn c = ln.accept(ec);
          if (ec) break;
        }
        done.send(ec);
      });
    }
    Conn c1 = net::dial(ln.address());
    Conn c2 = net::dial(ln.address());
    Listener copy = ln;
    copy.close();
    EXPECT_EQ(*done.recv(), errc::closed);
    EXPECT_EQ(*done.recv(), errc::closed);
  });
}

// ---------------------------------------------------------------- bufio / io

TEST_P(ApiTest, ReaderLinesDelimitersAndExactReads) {
  run([] {
    Pair p;
    p.c.write("alpha\r\nbeta\ngamma;delta;HEADER01payload-");
    p.c.write("rest");
    p.c.close_write();
    net::Reader r(p.s);
    EXPECT_EQ(r.read_line().value_or("?"), "alpha");
    EXPECT_EQ(r.read_line().value_or("?"), "beta");
    EXPECT_EQ(r.read_until(';').value_or("?"), "gamma;");
    EXPECT_EQ(r.read_until(';').value_or("?"), "delta;");
    char header[8];
    r.read_full(std::span<char>(header));
    EXPECT_EQ(std::string(header, 8), "HEADER01");
    EXPECT_EQ(r.read_until('-').value_or("?"), "payload-");
    // A last line without "\n" is a line; then end of stream.
    EXPECT_EQ(r.read_line().value_or("?"), "rest");
    EXPECT_EQ(r.read_line(), std::nullopt);
    std::error_code ec;
    EXPECT_EQ(r.read_line(ec), "");
    EXPECT_EQ(ec, errc::eof);
  });
}

TEST_P(ApiTest, ReadFullReportsUnexpectedEof) {
  run([] {
    Pair p;
    p.c.write("abc");
    p.c.close_write();
    net::Reader r(p.s);
    char buf[8];
    std::error_code ec;
    EXPECT_EQ(r.read_full(std::span<char>(buf), ec), 3u);
    EXPECT_EQ(ec, errc::unexpected_eof);
    EXPECT_EQ(r.read_full(std::span<char>(buf), ec), 0u);
    EXPECT_EQ(ec, errc::eof);
    EXPECT_THROW(r.read_full(std::span<char>(buf)), std::system_error);
  });
}

// A peer that never sends a newline cannot make the reader buffer without
// limit: read_line fails with errc::too_long once max_size bytes are
// waiting, and the reader holds no more than that.
TEST_P(ApiTest, BoundedLineAgainstAPeerThatNeverSendsANewline) {
  run([] {
    Pair p;
    const std::size_t bound = 4096;
    WaitGroup wg;
    wg.go([c = p.c]() mutable {
      std::string chunk(1000, 'x');
      std::error_code ec;
      for (int i = 0; i < 64 && !ec; ++i) c.write(chunk, ec);  // 64 KB, no newline; stops if the reader closes
    });
    net::Reader r(p.s, bound);
    std::error_code ec;
    std::string line = r.read_line(ec);
    EXPECT_EQ(ec, errc::too_long);
    EXPECT_TRUE(line.empty());
    EXPECT_LE(r.buffered(), bound);
    EXPECT_EQ(std::string(ec.message()), "bufio.Scanner: token too long");
    p.s.close();
    wg.wait();
  });
}

// io.Copy: everything until end of stream, through a relay goroutine.
TEST_P(ApiTest, CopyUntilEndOfStream) {
  run([] {
    Pair in, out;
    WaitGroup wg;
    std::size_t copied = 0;
    std::error_code cec;
    wg.go([&] {
      copied = net::copy(out.c, in.s, cec);
      out.c.close_write();
    });
    std::string payload;
    for (int i = 0; i < 20000; ++i) payload += static_cast<char>('a' + i % 26);
    WaitGroup sender;
    sender.go([&] {
      in.c.write(payload);
      in.c.close_write();
    });
    EXPECT_EQ(read_all(out.s), payload);
    wg.wait();
    sender.wait();
    EXPECT_FALSE(cec) << cec.message();
    EXPECT_EQ(copied, payload.size());
  });
}

// ---------------------------------------------------------------- channels

template <class C>
concept CanRecv = requires(C c) { c.recv(); };
template <class C>
concept CanSend = requires(C c, int v) { c.send(v); };
template <class C>
concept CanClose = requires(C c) { c.close(); };

void worker(RecvChan<int> jobs, SendChan<int> results) {
  for (int j : jobs) results.send(j * j);
  results.close();
}

TEST_P(ApiTest, DirectionalViewsKeepTheirMeaning) {
  run([] {
    Chan<int> jobs(8), results(8);
    go(worker, jobs, results);
    for (int i = 1; i <= 4; ++i) jobs.send(i);
    jobs.close();
    int sum = 0;
    for (int v : RecvChan<int>(results)) sum += v;
    EXPECT_EQ(sum, 1 + 4 + 9 + 16);
    // chan<- T cannot receive, <-chan T cannot send or close (compile-time).
    static_assert(CanRecv<RecvChan<int>> && !CanRecv<SendChan<int>>);
    static_assert(CanSend<SendChan<int>> && !CanSend<RecvChan<int>>);
    static_assert(CanClose<SendChan<int>> && !CanClose<RecvChan<int>>);
  });
}

TEST_P(ApiTest, DirectionalViewsInSelect) {
  run([] {
    Chan<int> c(1);
    SendChan<int> out = c;
    RecvChan<int> in = c;
    EXPECT_EQ(select(send(out, 7), default_case()), 0u);
    int got = 0;
    EXPECT_EQ(select(recv(in, [&](int v) { got = v; }), default_case()), 0u);
    EXPECT_EQ(got, 7);
    // nil views are never ready
    EXPECT_EQ(select(recv(RecvChan<int>()), send(SendChan<int>(), 1), default_case()), 2u);
    EXPECT_TRUE(out == SendChan<int>(c));
    EXPECT_FALSE(in == RecvChan<int>(Chan<int>(1)));
  });
}

TEST(ApiChannels, ChannelsAsMapKeys) {
  Chan<int> a(1), b(1), c(1);
  std::map<Chan<int>, bool> clients;  // the chat server's client set
  clients[a] = true;
  clients[b] = true;
  clients[a] = false;
  EXPECT_EQ(clients.size(), 2u);
  EXPECT_FALSE(clients.at(a));
  std::unordered_map<Chan<int>, int> counts;
  counts[a] += 1;
  counts[b] += 2;
  counts[Chan<int>(a)] += 3;
  EXPECT_EQ(counts.size(), 2u);
  EXPECT_EQ(counts[a], 4);
  std::set<RecvChan<int>> views{a, b, c, a};
  EXPECT_EQ(views.size(), 3u);
  std::unordered_set<SendChan<int>> sviews{a, a, b};
  EXPECT_EQ(sviews.size(), 2u);
  EXPECT_TRUE((a <=> a) == 0);
  EXPECT_TRUE((a <=> b) != 0);
  EXPECT_EQ((a < b), !(b < a));
}

// ---------------------------------------------------------------- time values

TEST(ApiTime, WallTimeOfATimerValue) {
  auto sys_before = std::chrono::system_clock::now();
  auto t = Clock::now();
  auto wall = wall_time(t);
  auto sys_after = std::chrono::system_clock::now();
  EXPECT_GE(wall, sys_before - 1s);  // generous: the two clocks are read apart
  EXPECT_LE(wall, sys_after + 1s);
  EXPECT_EQ(format_time(t, "%Y").size(), 4u);
  std::string hms = format_time(t);  // "15:04:05"
  ASSERT_EQ(hms.size(), 8u);
  EXPECT_EQ(hms[2], ':');
  EXPECT_EQ(hms[5], ':');
}

// ---------------------------------------------------------------- WaitGroup::go

TEST_P(ApiTest, WaitGroupGo) {
  run([] {
    WaitGroup wg;
    std::atomic<int> sum{0};
    for (int i = 1; i <= 100; ++i) wg.go([&sum](int k) { sum.fetch_add(k); }, i);
    wg.wait();
    EXPECT_EQ(sum.load(), 5050);
    // done() comes after the goroutine's captures are destroyed
    auto token = std::make_shared<int>(1);
    std::weak_ptr<int> watch = token;
    wg.go([t = std::move(token)] { (void)*t; });
    wg.wait();
    EXPECT_TRUE(watch.expired());
  });
}

TEST(ApiDeathTest, WaitGroupGoThrowingIsAPanicAfterDone) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(run([] {
                WaitGroup wg;
                wg.go([] { throw std::runtime_error("member failed"); });
                wg.wait();
                sleep_for(1s);  // the panic ends the process meanwhile
              }),
              ::testing::ExitedWithCode(2), "panic: member failed\n\ngoroutine [0-9]+ \\[running\\], created at .*api_test.cc");
}

}  // namespace
}  // namespace goro::test
