// Ports of Go's test/chan/*.go programs, by description (re-implemented, not
// copied), each named after its Go file: sieve1, sieve2, powser1, fifo,
// nonblock, doubleselect, select, select3, select4, select6, select7,
// sendstmt, zerosize, goroutines. Left out: select2 (measures Go's garbage
// collector's heap growth) and select5 (a generator of Go source code).
#include <algorithm>
#include <array>
#include <atomic>
#include <map>
#include <numeric>
#include <set>

#include "common.h"

namespace goro::test {
namespace {

using namespace std::chrono_literals;

class GoChan : public ProcsTest {};
GORO_INSTANTIATE_PROCS(GoChan);

std::vector<int> first_primes(int n) {
  std::vector<int> out;
  for (int c = 2; int(out.size()) < n; ++c) {
    bool prime = true;
    for (int p : out) {
      if (p * p > c) break;
      if (c % p == 0) {
        prime = false;
        break;
      }
    }
    if (prime) out.push_back(c);
  }
  return out;
}

// sieve1: the concurrent prime sieve: a generator and a chain of filters,
// one goroutine per prime found; the first 100 primes are checked.
TEST_P(GoChan, Sieve1) {
  run([] {
    Chan<int> ch(0);
    go([ch] {
      for (int i = 2;; ++i) ch.send(i);
    });
    std::vector<int> got;
    for (int i = 0; i < 100; ++i) {
      int prime = *ch.recv();
      got.push_back(prime);
      Chan<int> out(0);
      go([in = ch, out, prime] {
        for (;;) {
          int v = *in.recv();
          if (v % prime != 0) out.send(v);
        }
      });
      ch = out;
    }
    EXPECT_EQ(got, first_primes(100));
  });
}

// sieve2: an Eratosthenes sieve over odd candidates only: each prime p has a
// goroutine sending its odd multiples from p*p; a merge goroutine keeps the
// heads of those streams in a min-heap and emits the composites in order;
// candidates not among them are prime.
TEST_P(GoChan, Sieve2) {
  run([] {
    Chan<int> primes(0);
    Chan<Chan<int>> new_streams(16);
    // Odd multiples of p starting at p*p.
    auto multiples = [](int p) {
      Chan<int> c(8);
      go([c, p] {
        for (int m = p * p;; m += 2 * p) c.send(m);
      });
      return c;
    };
    // Unbuffered: the merge pops its next composite only after the
    // generator took the last one, so a stream registered before that
    // receive (for a prime p, starting at p*p) is in the heap in time.
    Chan<int> composites(0);
    go([=] {
      // Merge: min-heap of (head value, stream).
      using Head = std::pair<int, Chan<int>>;
      auto cmp = [](const Head& a, const Head& b) { return a.first > b.first; };
      std::vector<Head> heap;
      Chan<int> first = *new_streams.recv();
      heap.push_back({*first.recv(), first});
      for (;;) {
        while (auto s = new_streams.try_recv()) {
          heap.push_back({*s->recv(), *s});
          std::push_heap(heap.begin(), heap.end(), cmp);
        }
        std::pop_heap(heap.begin(), heap.end(), cmp);
        Head h = heap.back();
        heap.pop_back();
        composites.send(h.first);
        heap.push_back({*h.second.recv(), h.second});
        std::push_heap(heap.begin(), heap.end(), cmp);
      }
    });
    go([=] {
      primes.send(2);
      primes.send(3);
      new_streams.send(multiples(3));
      int next_composite = *composites.recv();
      for (int cand = 5;; cand += 2) {
        while (next_composite < cand) next_composite = *composites.recv();
        if (cand == next_composite) continue;
        primes.send(cand);
        new_streams.send(multiples(cand));
      }
    });
    std::vector<int> got;
    for (int i = 0; i < 100; ++i) got.push_back(*primes.recv());
    EXPECT_EQ(got, first_primes(100));
  });
}

// fifo: an asynchronous (buffered) channel keeps order; and a chain of
// goroutines each waiting its turn on an unbuffered channel receives the
// values in send order.
TEST_P(GoChan, Fifo) {
  run([] {
    const int N = 10;
    Chan<int> ch(N);
    for (int i = 0; i < N; ++i) ch.send(i);
    for (int i = 0; i < N; ++i) EXPECT_EQ(*ch.recv(), i);

    Chan<int> sync(0);
    Chan<int> in(0);
    Chan<int> start = in;
    std::atomic<int> bad{0};
    for (int i = 0; i < N; ++i) {
      Chan<int> out(0);
      go([=, &bad] {
        in.recv();
        if (*sync.recv() != i) bad.fetch_add(1);
        out.send(1);
      });
      in = out;
    }
    start.send(0);
    for (int i = 0; i < N; ++i) sync.send(i);
    in.recv();
    EXPECT_EQ(bad.load(), 0);
  });
}

// nonblock: non-blocking sends and receives on channels of several element
// types and capacities 0 and 1 succeed once a partner is there, and never
// block meanwhile.
template <class T>
void nonblock_roundtrip(int buffer, T v1, T v2) {
  const int max_tries = 100000;
  Chan<T> c(buffer);
  Chan<bool> strobe(0);
  auto pause = [] {
    sleep_for(10us);
    yield();
  };
  EXPECT_FALSE(c.try_recv().has_value()) << "receive from a channel with no sender";
  go([=] {
    EXPECT_EQ(*c.recv(), v1);
    strobe.send(true);
  });
  for (int tries = 0;; ++tries) {
    T v = v1;
    if (c.try_send(v)) break;
    ASSERT_LT(tries, max_tries) << "receiver never became ready, buffer=" << buffer;
    pause();
  }
  strobe.recv();
  go([=] {
    c.send(v2);
    strobe.send(true);
  });
  if (buffer > 0) strobe.recv();
  for (int tries = 0;; ++tries) {
    if (auto v = c.try_recv()) {
      EXPECT_EQ(*v, v2);
      break;
    }
    ASSERT_LT(tries, max_tries) << "sender never became ready, buffer=" << buffer;
    pause();
  }
  if (buffer == 0) strobe.recv();
}

TEST_P(GoChan, Nonblock) {
  run([] {
    for (int buffer = 0; buffer < 2; ++buffer) {
      nonblock_roundtrip<std::int32_t>(buffer, 123, 234);
      nonblock_roundtrip<std::int64_t>(buffer, 123456, 234567);
      nonblock_roundtrip<bool>(buffer, true, true);
      nonblock_roundtrip<std::string>(buffer, std::string("hello"), std::string("hello again"));
    }
  });
}

// doubleselect: a sender selects over four channels; if two cases of one
// select could both run, a value would be delivered twice. Four muxes
// forward into one channel; the receiver checks that every value arrives
// exactly once.
TEST_P(GoChan, Doubleselect) {
  const int n = int(scaled(10000));
  run([&] {
    Chan<int> c[4] = {Chan<int>(0), Chan<int>(0), Chan<int>(0), Chan<int>(0)};
    Chan<bool> done(0);
    Chan<int> cmux(0);
    go([=] {
      for (int i = 0; i < n; ++i) select(send(c[0], i), send(c[1], i), send(c[2], i), send(c[3], i));
      for (auto& ch : c) ch.close();
    });
    for (auto& ch : c) {
      go([=] {
        for (int v : ch) cmux.send(v);
        done.send(true);
      });
    }
    go([=] {
      for (int i = 0; i < 4; ++i) done.recv();
      cmux.close();
    });
    std::vector<int> seen(n, 0);
    for (int v : cmux) seen[v]++;
    for (int i = 0; i < n; ++i) ASSERT_EQ(seen[i], 1) << "value " << i;
  });
}

// select: a select whose send cases evaluate their values on entry; each
// channel is disabled (set to nil) once it has taken a value, and a default
// case ends the loop.
TEST_P(GoChan, Select) {
  run([] {
    unsigned counter = 0;
    int shift = 0;
    auto get_value = [&] {
      ++counter;
      return 1u << shift;
    };
    auto send_both = [&](Chan<unsigned> a, Chan<unsigned> b) {
      int i = 0;
      for (;;) {
        bool stop = false;
        select(send(a, get_value(), [&] {
                 ++i;
                 a = Chan<unsigned>();
               }),
               send(b, get_value(), [&] {
                 ++i;
                 b = Chan<unsigned>();
               }),
               default_case([&] { stop = true; }));
        if (stop) break;
        ++shift;
      }
      return i;
    };
    Chan<unsigned> a(1), b(1);
    EXPECT_EQ(send_both(a, b), 2);
    EXPECT_EQ(*a.recv() | *b.recv(), 1u | 2u);
    EXPECT_EQ(send_both(a, Chan<unsigned>()), 1);
    EXPECT_EQ(send_both(Chan<unsigned>(), b), 1);
    EXPECT_EQ(*a.recv() | *b.recv(), (1u << 2) | (1u << 3));  // shift went on from 2
    EXPECT_EQ(send_both(Chan<unsigned>(), Chan<unsigned>()), 0);
    EXPECT_GT(counter, 0u);
  });
}

// select3: basic blocking and non-blocking semantics. `always_blocks(f)`
// fails if f completes within 10 ms (a correct runtime never lets it);
// `never_blocks(f)` waits for f with no timeout.
bool completes_soon(std::function<void()> f) {
  Chan<bool> done(1);
  go([=] {
    f();
    done.send(true);
  });
  bool completed = false;
  select(recv(done, [&](auto) { completed = true; }), recv(after(10ms)));
  return completed;
}

TEST_P(GoChan, Select3) {
  run([] {
    Chan<int> nil_ch;
    Chan<int> closed(0);
    closed.close();
    EXPECT_FALSE(completes_soon([=] { nil_ch.recv(); })) << "receive from nil channel";
    EXPECT_FALSE(completes_soon([=] { nil_ch.send(7); })) << "send to nil channel";
    EXPECT_FALSE(completes_soon([=] { select(recv(nil_ch)); })) << "select on nil channel";
    EXPECT_FALSE(completes_soon([] { select(); })) << "empty select";
    // Receiving from a closed channel never blocks.
    EXPECT_EQ(closed.recv(), std::nullopt);
    EXPECT_EQ(select(recv(closed)), 0u);
    // A buffered channel with room never blocks a send; with a value, a receive.
    Chan<int> buf(1);
    buf.send(1);
    EXPECT_EQ(buf.recv(), 1);
    EXPECT_FALSE(completes_soon([=] { Chan<int> empty(1); empty.recv(); })) << "receive from empty buffered";
    Chan<int> full(1);
    full.send(1);
    EXPECT_FALSE(completes_soon([=] { full.send(2); })) << "send to full buffered";
    // A select with a default never blocks, even on nil channels only.
    EXPECT_EQ(select(recv(nil_ch), default_case()), 1u);
    EXPECT_EQ(select(send(nil_ch, 1), default_case()), 1u);
    // Send to a closed channel panics, also from select.
    EXPECT_THROW(closed.send(1), panic_error);
    EXPECT_THROW(select(send(closed, 1)), panic_error);
    EXPECT_THROW(select(send(closed, 1), default_case()), panic_error);
  });
}

// select4: a select proceeds when one of its channels has a value ready.
TEST_P(GoChan, Select4) {
  run([] {
    Chan<int> c(1), c1(0);
    c.send(42);
    int got = 0;
    select(recv(c1, [](auto) { ADD_FAILURE() << "dummy"; }), recv(c, [&](std::optional<int> v) { got = *v; }));
    EXPECT_EQ(got, 42);
  });
}

// select6: a select that loses must not corrupt the wait queues of the
// channels it waited on when other goroutines wait there too (Go issue 2075).
TEST_P(GoChan, Select6) {
  run([] {
    Chan<bool> c1(0), c2(0), c3(0);
    go([=] { c1.recv(); });
    go([=] {
      select(recv(c1, [](auto) { ADD_FAILURE() << "dummy"; }), recv(c2, [&](auto) { c3.send(true); }));
      c1.recv();
    });
    go([=] { c2.send(true); });
    c3.recv();
    c1.send(true);
    c1.send(true);
  });
}

// select7: sends and receives complete whichever of the plain, one-case
// select and two-case select forms is used on either side, including when the
// received value is discarded.
TEST_P(GoChan, Select7) {
  using Op = std::function<void(Chan<int>)>;
  std::vector<Op> recvs = {
      [](Chan<int> c) { c.recv(); },
      [](Chan<int> c) { select(recv(c)); },
      [](Chan<int> c) {
        Chan<int> c2(0);
        select(recv(c), recv(c2));
      },
  };
  std::vector<Op> sends = {
      [](Chan<int> c) { c.send(1); },
      [](Chan<int> c) { select(send(c, 1)); },
      [](Chan<int> c) {
        Chan<int> c2(0);
        select(send(c, 1), send(c2, 1));
      },
  };
  run([&] {
    for (auto& r : recvs) {
      for (auto& s : sends) {
        // Receiver first, then sender; and the other way round.
        for (bool recv_first : {true, false}) {
          Chan<int> c(0);
          WaitGroup wg;
          wg.add(1);
          if (recv_first) {
            go([&] { r(c); wg.done(); });
            yield();
            s(c);
          } else {
            go([&] { s(c); wg.done(); });
            yield();
            r(c);
          }
          wg.wait();
        }
      }
    }
  });
}

// sendstmt: a received value used directly as the value sent, and a send of
// a channel over a channel.
TEST_P(GoChan, Sendstmt) {
  run([] {
    Chan<int> c(1);
    c.send(3);
    Chan<int> d(1);
    d.send(*c.recv());  // d <- <-c
    EXPECT_EQ(d.recv(), 3);
    Chan<Chan<int>> cc(1);
    cc.send(c);
    c.send(5);
    EXPECT_EQ(cc.recv()->recv(), 5);
    std::vector<int> dst(1);
    int i = 0;
    c.send(i);
    dst[i] = *c.recv();
    EXPECT_EQ(dst[0], 0);
  });
}

// zerosize: channels of empty element types work like any other.
struct Empty {};

TEST_P(GoChan, Zerosize) {
  run([] {
    Chan<Empty> c(10);
    for (int i = 0; i < 10; ++i) c.send(Empty{});
    EXPECT_EQ(c.size(), 10u);
    for (int i = 0; i < 10; ++i) EXPECT_TRUE(c.recv().has_value());
    Chan<std::array<int, 0>> z(0);
    go([z] { z.send({}); });
    EXPECT_TRUE(z.recv().has_value());
  });
}

// goroutines: a chain of 10,000 goroutines, each passing one value from its
// right neighbour to its left, torn down cleanly.
TEST_P(GoChan, Goroutines) {
  const int n = int(scaled(10000));
  run([&] {
    Chan<int> leftmost(0);
    Chan<int> left = leftmost, right = leftmost;
    for (int i = 0; i < n; ++i) {
      right = Chan<int>(0);
      go([left, right] { left.send(*right.recv()); });
      left = right;
    }
    go([right] { right.send(1); });
    EXPECT_EQ(leftmost.recv(), 1);
  });
}

}  // namespace
}  // namespace goro::test

// Not ported from Go's test/chan directory, and why:
//  - select2.go: measures the garbage collector's heap growth.
//  - select5.go: generates Go source code for the compiler to check.
//  - perm.go: an errorcheck test of channel direction rules for Go's
//    compiler (goro's direction views are checked by the C++ compiler).
//  - powser2.go: powser1.go again with interface-typed rationals; ported as
//    powser1 in powser1_test.cc.
//  - select8.go: break statements inside select cases, a gccgo compiler bug
//    with no counterpart in a library (see select.h for leaving a loop from
//    a case).
