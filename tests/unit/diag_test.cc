// Goroutine dumps, goroutines(), runtime_stats(): what a user debugging a
// hang sees. Whole-process behaviour (deadlock reports, SIGQUIT, schedtrace)
// is tested by tests/diag/programs.cc through tests/diag/expect.sh.
#include <goro/goro.h>
#include <gtest/gtest.h>

#include <atomic>
#include <cctype>
#include <chrono>
#include <cstring>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "common.h"

namespace goro::test {
namespace {

using namespace std::chrono_literals;

// Waits until goroutine `id` is in `state` (the goroutine records its id,
// then parks: the park happens soon after). Bounded: 20 s.
bool wait_for_state(std::uint64_t id, const std::string& state) {
  for (int i = 0; i < 20000; ++i) {
    for (const GoroutineInfo& g : goroutines()) {
      if (g.id == id && g.state == state) return true;
    }
    std::this_thread::sleep_for(1ms);
  }
  return false;
}

const GoroutineInfo* find(const std::vector<GoroutineInfo>& gs, std::uint64_t id) {
  for (const GoroutineInfo& g : gs) {
    if (g.id == id) return &g;
  }
  return nullptr;
}

// The block of goroutine `id` in a dump ("" if absent).
std::string block_of(const std::string& dump, std::uint64_t id) {
  std::string head = "goroutine " + std::to_string(id) + " [";
  std::size_t at = dump.find(head);
  if (at == std::string::npos) return "";
  std::size_t end = dump.find("\n\n", at);
  return dump.substr(at, end == std::string::npos ? std::string::npos : end - at);
}

// Named frames the dump must show: not inlined, not tail calls.
__attribute__((noinline)) void diag_parked_in_recv(Chan<int> c, std::atomic<std::uint64_t>* id) {
  id->store(goroutine_id());
  c.recv();
  asm volatile("" ::: "memory");
}

__attribute__((noinline)) void diag_parked_in_lock(Mutex* m, std::atomic<std::uint64_t>* id) {
  id->store(goroutine_id());
  m->lock();
  m->unlock();
  asm volatile("" ::: "memory");
}

TEST(Diag, DumpShowsParkedGoroutinesFramesAndSpawnSites) {
  Chan<int> c(0);
  Mutex m;
  std::atomic<std::uint64_t> rid{0}, lid{0};
  m.lock();
  WaitGroup wg;
  wg.go([&] { diag_parked_in_recv(c, &rid); });
  wg.go([&] { diag_parked_in_lock(&m, &lid); });
  while (rid.load() == 0 || lid.load() == 0) std::this_thread::sleep_for(1ms);
  ASSERT_TRUE(wait_for_state(rid.load(), "chan receive"));
  ASSERT_TRUE(wait_for_state(lid.load(), "sync.Mutex.Lock"));
  std::string d = goroutine_dump();
  std::string r = block_of(d, rid.load());
  std::string l = block_of(d, lid.load());
  EXPECT_NE(r.find("[chan receive]:\n"), std::string::npos) << d;
  EXPECT_NE(r.find("diag_parked_in_recv"), std::string::npos) << r;
  EXPECT_NE(r.find("created by "), std::string::npos) << r;
  EXPECT_NE(r.find("diag_test.cc:"), std::string::npos) << r;
  EXPECT_NE(l.find("[sync.Mutex.Lock]:\n"), std::string::npos) << d;
  EXPECT_NE(l.find("diag_parked_in_lock"), std::string::npos) << l;
  // Frames come in pairs: a name, then a tab-indented location.
  std::size_t name = r.find('\n') + 1;
  ASSERT_LT(name, r.size());
  std::size_t loc = r.find('\n', name) + 1;
  EXPECT_EQ(r[loc], '\t') << r;
  c.send(1);
  m.unlock();
  wg.wait();
}

TEST(Diag, DumpFromAGoroutineShowsTheCallerFirstAndRunningOnes) {
  std::string d;
  std::atomic<bool> stop{false};
  std::atomic<std::uint64_t> spinner{0};
  int saved = max_procs();
  set_max_procs(2);
  run([&] {
    go([&] {
      spinner.store(goroutine_id());
      while (!stop.load()) yield();  // keeps being runnable or running
    });
    while (spinner.load() == 0) yield();
    d = goroutine_dump();
    stop.store(true);
  });
  set_max_procs(saved);
  EXPECT_EQ(d.rfind("goroutine ", 0), 0u) << d;
  EXPECT_NE(d.substr(0, d.find('\n')).find("[running]:"), std::string::npos) << d;
  std::string s = block_of(d, spinner.load());
  EXPECT_TRUE(s.find("[running]:") != std::string::npos || s.find("[runnable]:") != std::string::npos) << d;
}

TEST(Diag, EveryWaitReasonIsGosText) {
  struct Case {
    const char* state;
    std::function<void(std::atomic<std::uint64_t>*)> park;
  };
  Chan<int> unbuf(0), full(1);
  full.send(0);
  Mutex m;
  RWMutex rw, rw2;
  WaitGroup wg;
  Mutex cm;
  Cond cond;
  Semaphore sem(1);
  std::atomic<bool> release{false};
  m.lock();
  rw.lock();
  rw2.lock_shared();
  wg.add(1);
  sem.acquire(1);
  net::Listener ln = net::listen("127.0.0.1:0");
  net::Conn client = net::dial(ln.address());
  net::Conn server = ln.accept();
  std::vector<Case> cases = {
      {"chan receive", [&](auto* id) { id->store(goroutine_id()); unbuf.recv(); }},
      {"chan send", [&](auto* id) { id->store(goroutine_id()); full.send(1); }},
      {"select", [&](auto* id) { id->store(goroutine_id()); select(recv(unbuf, [](std::optional<int>) {})); }},
      {"sleep", [&](auto* id) { id->store(goroutine_id()); sleep_for(300ms); }},
      {"sync.Mutex.Lock", [&](auto* id) { id->store(goroutine_id()); m.lock(); m.unlock(); }},
      {"sync.RWMutex.RLock", [&](auto* id) { id->store(goroutine_id()); rw.lock_shared(); rw.unlock_shared(); }},
      {"sync.RWMutex.Lock", [&](auto* id) { id->store(goroutine_id()); rw2.lock(); rw2.unlock(); }},
      {"sync.WaitGroup.Wait", [&](auto* id) { id->store(goroutine_id()); wg.wait(); }},
      {"sync.Cond.Wait", [&](auto* id) {
         std::unique_lock<Mutex> lk(cm);
         id->store(goroutine_id());
         cond.wait(lk, [&] { return release.load(); });
       }},
      {"semacquire", [&](auto* id) { id->store(goroutine_id()); sem.acquire(1); sem.release(1); }},
      {"IO wait", [&](auto* id) {
         id->store(goroutine_id());
         char b[8];
         std::error_code ec;
         server.read(std::span<char>(b), ec);
       }},
      {"blocking", [&](auto* id) {
         id->store(goroutine_id());
         blocking([&] {
           while (!release.load()) std::this_thread::sleep_for(1ms);
         });
       }},
  };
  std::vector<std::atomic<std::uint64_t>> ids(cases.size());
  WaitGroup done;
  for (std::size_t i = 0; i < cases.size(); ++i) {
    done.add(1);
    go([&, i] {
      cases[i].park(&ids[i]);
      done.done();
    });
  }
  for (std::size_t i = 0; i < cases.size(); ++i) {
    while (ids[i].load() == 0) std::this_thread::sleep_for(1ms);
    EXPECT_TRUE(wait_for_state(ids[i].load(), cases[i].state)) << cases[i].state;
    const GoroutineInfo* g = nullptr;
    std::vector<GoroutineInfo> gs = goroutines();
    g = find(gs, ids[i].load());
    ASSERT_NE(g, nullptr);
    EXPECT_EQ(g->wait_reason, cases[i].state);
  }
  // Release them all; each must return.
  release.store(true);
  unbuf.send(1);
  unbuf.send(2);
  full.recv();
  m.unlock();
  rw.unlock();
  rw2.unlock_shared();
  wg.done();
  cm.lock();
  cond.broadcast();
  cm.unlock();
  sem.release(1);
  client.write(std::string_view("x"));
  done.wait();
}

TEST(Diag, NilChannelsAndEmptySelectParkForeverWithGosReasons) {
  std::atomic<std::uint64_t> a{0}, b{0}, c{0};
  go([&] {
    a.store(goroutine_id());
    Chan<int> nil;
    nil.recv();
  });
  go([&] {
    b.store(goroutine_id());
    Chan<int> nil;
    nil.send(1);
  });
  go([&] {
    c.store(goroutine_id());
    select();
  });
  while (a.load() == 0 || b.load() == 0 || c.load() == 0) std::this_thread::sleep_for(1ms);
  EXPECT_TRUE(wait_for_state(a.load(), "chan receive (nil chan)"));
  EXPECT_TRUE(wait_for_state(b.load(), "chan send (nil chan)"));
  EXPECT_TRUE(wait_for_state(c.load(), "select (no cases)"));
  // (They stay parked for the life of the test process, as in Go.)
}

TEST(Diag, GoroutinesSnapshotHasParentsSitesAndWaitTimes) {
  Chan<int> c(0);
  std::atomic<std::uint64_t> parent{0}, child{0};
  go([&] {
    parent.store(goroutine_id());
    go([&] {
      child.store(goroutine_id());
      c.recv();
    });
    c.recv();
  });
  while (parent.load() == 0 || child.load() == 0) std::this_thread::sleep_for(1ms);
  ASSERT_TRUE(wait_for_state(child.load(), "chan receive"));
  ASSERT_TRUE(wait_for_state(parent.load(), "chan receive"));
  std::this_thread::sleep_for(30ms);
  std::vector<GoroutineInfo> gs = goroutines();
  const GoroutineInfo* p = find(gs, parent.load());
  const GoroutineInfo* k = find(gs, child.load());
  ASSERT_NE(p, nullptr);
  ASSERT_NE(k, nullptr);
  EXPECT_EQ(k->parent_id, parent.load());
  EXPECT_EQ(p->parent_id, 0u);  // spawned by this plain thread
  EXPECT_NE(k->spawn_site.find("diag_test.cc:"), std::string::npos) << k->spawn_site;
  EXPECT_GE(k->waiting_for, 30ms);  // a park's stamp is never later than the park
  c.send(1);
  c.send(2);
}

// A park copies its P's clock instead of reading one (ARCHITECTURE "Wait
// start"); these check the clock is fresh where nothing switches for long.
// The bounds are generous: a stale stamp reads the whole gap before the park.

// The P computed for 500 ms without a scheduling point, then parked: the
// monitor refreshed its clock meanwhile.
TEST(Diag, WaitTimeIsFreshAfterALongComputation) {
  Chan<int> c(0);
  std::atomic<std::uint64_t> id{0};
  go([&] {
    id.store(goroutine_id());
    const auto until = std::chrono::steady_clock::now() + 500ms;
    while (std::chrono::steady_clock::now() < until) {
    }
    c.recv();
  });
  while (id.load() == 0) std::this_thread::sleep_for(1ms);
  ASSERT_TRUE(wait_for_state(id.load(), "chan receive"));
  std::this_thread::sleep_for(20ms);
  std::vector<GoroutineInfo> gs = goroutines();
  const GoroutineInfo* g = find(gs, id.load());
  ASSERT_NE(g, nullptr);
  EXPECT_GE(g->waiting_for, 20ms);
  EXPECT_LT(g->waiting_for, 400ms);  // stale: >= 520 ms
  c.send(1);
}

// Every P slept 500 ms with nothing to do; a goroutine woken then parks at
// once, before the monitor (asleep meanwhile) runs a round: the P refreshed
// its clock when it woke.
TEST(Diag, WaitTimeIsFreshAfterTheProcessIdled) {
  Chan<int> wake(0), c(0);
  std::atomic<std::uint64_t> id{0};
  go([&] {
    id.store(goroutine_id());
    wake.recv();
    c.send(1);
  });
  while (id.load() == 0) std::this_thread::sleep_for(1ms);
  ASSERT_TRUE(wait_for_state(id.load(), "chan receive"));
  std::this_thread::sleep_for(500ms);
  wake.send(1);  // from this plain thread: the goroutine runs on a P that slept
  ASSERT_TRUE(wait_for_state(id.load(), "chan send"));
  std::this_thread::sleep_for(20ms);
  std::vector<GoroutineInfo> gs = goroutines();
  const GoroutineInfo* g = find(gs, id.load());
  ASSERT_NE(g, nullptr);
  EXPECT_LT(g->waiting_for, 400ms);  // stale: >= 500 ms
  EXPECT_EQ(c.recv(), 1);
}

// A minimal JSON checker: the dump must parse.
struct Json {
  const std::string& s;
  std::size_t i = 0;
  void ws() {
    while (i < s.size() && (s[i] == ' ' || s[i] == '\n' || s[i] == '\t' || s[i] == '\r')) ++i;
  }
  bool lit(const char* w) {
    std::size_t n = std::strlen(w);
    if (s.compare(i, n, w) != 0) return false;
    i += n;
    return true;
  }
  bool str() {
    if (i >= s.size() || s[i] != '"') return false;
    for (++i; i < s.size(); ++i) {
      if (s[i] == '\\') {
        ++i;
      } else if (s[i] == '"') {
        ++i;
        return true;
      } else if (static_cast<unsigned char>(s[i]) < 0x20) {
        return false;
      }
    }
    return false;
  }
  bool num() {
    std::size_t b = i;
    if (i < s.size() && s[i] == '-') ++i;
    while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i]))) ++i;
    return i > b;
  }
  bool value() {
    ws();
    if (i >= s.size()) return false;
    bool ok;
    if (s[i] == '{') {
      ++i;
      ws();
      if (i < s.size() && s[i] == '}') {
        ++i;
        return true;
      }
      do {
        ws();
        if (!str()) return false;
        ws();
        if (i >= s.size() || s[i++] != ':') return false;
        if (!value()) return false;
        ws();
      } while (i < s.size() && s[i] == ',' && ++i);
      ok = i < s.size() && s[i++] == '}';
    } else if (s[i] == '[') {
      ++i;
      ws();
      if (i < s.size() && s[i] == ']') {
        ++i;
        return true;
      }
      do {
        if (!value()) return false;
        ws();
      } while (i < s.size() && s[i] == ',' && ++i);
      ok = i < s.size() && s[i++] == ']';
    } else if (s[i] == '"') {
      ok = str();
    } else {
      ok = lit("true") || lit("false") || lit("null") || num();
    }
    return ok;
  }
};

TEST(Diag, JsonDumpParsesAndCarriesWaitObjects) {
  Chan<int> full(3);
  for (int i = 0; i < 3; ++i) full.send(i);
  std::atomic<std::uint64_t> id{0};
  go([&] {
    id.store(goroutine_id());
    full.send(3);
  });
  while (id.load() == 0) std::this_thread::sleep_for(1ms);
  ASSERT_TRUE(wait_for_state(id.load(), "chan send"));
  std::string j = goroutine_dump_json();
  Json p{j};
  EXPECT_TRUE(p.value()) << "invalid JSON near byte " << p.i << ": " << j.substr(p.i > 40 ? p.i - 40 : 0, 80);
  p.ws();
  EXPECT_EQ(p.i, j.size());
  std::string me = "{\"id\":" + std::to_string(id.load()) + ",";
  std::size_t at = j.find(me);
  ASSERT_NE(at, std::string::npos) << j;
  std::string entry = j.substr(at, j.find('\n', at) - at);
  EXPECT_NE(entry.find("\"wait_object\":{\"kind\":\"chan\""), std::string::npos) << entry;
  EXPECT_NE(entry.find("\"len\":3,\"cap\":3"), std::string::npos) << entry;
  EXPECT_NE(entry.find("\"state\":\"chan send\""), std::string::npos) << entry;
  for (int i = 0; i < 4; ++i) full.recv();
}

TEST(Diag, RuntimeStatsCountWhatRuns) {
  RuntimeStats before = runtime_stats();
  const int n = 50;
  Chan<int> c(0);
  std::atomic<int> parked{0};
  for (int i = 0; i < n; ++i) {
    go([&] {
      ++parked;
      c.recv();
    });
  }
  // A timer pending for the whole test (a 300 ms sleeper fired before the
  // counts settled under TSan in a loaded CI run, leaving no timer).
  Timer pending(std::chrono::hours(1));
  while (parked.load() < n) std::this_thread::sleep_for(1ms);
  RuntimeStats st;
  for (int i = 0; i < 5000; ++i) {
    st = runtime_stats();
    if (st.waiting >= before.waiting + n) break;
    std::this_thread::sleep_for(1ms);
  }
  EXPECT_GE(st.goroutines, before.goroutines + n);
  EXPECT_GE(st.waiting, before.waiting + n);
  EXPECT_GE(st.spawned_total, before.spawned_total + n);
  EXPECT_GE(st.timers, 1u);
  EXPECT_EQ(st.procs, max_procs());
  EXPECT_GE(st.threads, static_cast<std::size_t>(max_procs()));
  EXPECT_GT(st.stack_bytes_committed, 0u);
  EXPECT_GE(st.stack_bytes_reserved, st.stack_bytes_committed);
  for (int i = 0; i < n; ++i) c.send(i);
  pending.stop();
}

// Go's SIGQUIT / runtime.Stack under load: dumps requested over and over
// while goroutines hammer channels and mutexes; nothing hangs, nothing is
// lost (every value sent is received once), every dump is complete.
// Go's goleak: a goroutine left sending on an unbuffered channel whose
// receiver returned early is found, with its spawn site and what it waits
// for; code that cleans up after itself leaks nothing.
__attribute__((noinline)) int first_result_only(int workers) {
  Chan<int> results(0);
  for (int i = 0; i < workers; ++i) {
    go([results, i] { results.send(i); });  // the leak: nobody receives the others
  }
  return *results.recv();
}

__attribute__((noinline)) int first_result_buffered(int workers) {
  Chan<int> results(workers);  // the fix: room for every result
  for (int i = 0; i < workers; ++i) {
    go([results, i] { results.send(i); });
  }
  return *results.recv();
}

TEST(Diag, FindLeaksReportsALeftBehindSenderWithItsSpawnSite) {
  std::vector<GoroutineInfo> before = goroutines();
  first_result_buffered(3);
  EXPECT_TRUE(find_leaks(before).empty());
  before = goroutines();
  first_result_only(3);
  std::vector<GoroutineInfo> leaks = find_leaks(before, std::chrono::milliseconds(200));
  ASSERT_EQ(leaks.size(), 2u);
  for (const GoroutineInfo& g : leaks) {
    EXPECT_EQ(g.state, "chan send");
    EXPECT_NE(g.spawn_site.find("diag_test.cc:"), std::string::npos) << g.spawn_site;
    EXPECT_NE(g.spawn_function.find("first_result_only"), std::string::npos) << g.spawn_function;
  }
}

class DiagTest : public ProcsTest {};
GORO_INSTANTIATE_PROCS(DiagTest);

TEST_P(DiagTest, DumpsWhileGoroutinesHammerChannelsAndMutexes) {
  const int dumps = int(scaled(1000));
  const int workers = 8;
  Chan<int> c(16);
  Mutex m;
  long shared = 0;
  std::atomic<bool> stop{false};
  std::atomic<long> sent{0}, received{0};
  WaitGroup senders, receivers;
  for (int w = 0; w < workers; ++w) {
    senders.go([&] {
      while (!stop.load(std::memory_order_relaxed)) {
        c.send(1);
        sent.fetch_add(1, std::memory_order_relaxed);
        m.lock();
        ++shared;
        m.unlock();
      }
    });
    receivers.go([&] {
      while (std::optional<int> v = c.recv()) {
        received.fetch_add(*v, std::memory_order_relaxed);
        m.lock();
        --shared;
        m.unlock();
      }
    });
  }
  int complete = 0;
  std::atomic<int> from_goroutine{0};
  for (int i = 0; i < dumps; ++i) {
    if (i % 2 == 0) {  // from this plain thread
      complete += goroutine_dump().find("created by ") != std::string::npos;
    } else {  // from a goroutine
      WaitGroup one;
      one.go([&] { from_goroutine += goroutine_dump().find("created by ") != std::string::npos; });
      one.wait();
    }
  }
  stop.store(true);
  senders.wait();  // receivers keep draining, so no sender stays parked
  c.close();
  receivers.wait();
  EXPECT_EQ(complete + from_goroutine.load(), dumps);
  EXPECT_GT(sent.load(), 0);
  EXPECT_EQ(sent.load(), received.load());
  EXPECT_EQ(shared, 0);
}

// Dumps from several goroutines at once, while another goroutine changes
// GOMAXPROCS: one stop of the world at a time, and a goroutine waiting for
// its turn yields instead of blocking its worker (which must stop too).
TEST_P(DiagTest, ConcurrentDumpsAndSetMaxProcs) {
  const int per = int(scaled(40)) + 2;
  std::atomic<int> complete{0};
  WaitGroup wg;
  for (int d = 0; d < 4; ++d) {
    wg.go([&] {
      for (int i = 0; i < per; ++i) complete += goroutine_dump().find("goroutine ") == 0;
    });
  }
  const int procs = GetParam();
  wg.go([&] {
    for (int i = 0; i < per; ++i) set_max_procs(1 + i % 4);
    set_max_procs(procs);
  });
  wg.wait();
  EXPECT_EQ(complete.load(), 4 * per);
  EXPECT_EQ(max_procs(), procs);
}

}  // namespace
}  // namespace goro::test
