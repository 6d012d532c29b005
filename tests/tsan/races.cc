// tests/tsan/races.cc: ThreadSanitizer must see the user's races, and only
// them. Each mode is one small program run in its own process by
// tests/tsan/expect.sh under the tsan preset: the racy modes must produce a
// "data race" report (Go's race detector reports the same programs), the
// ordered twins must not. Before goro stated its edges explicitly, every
// racy mode ran clean: the runtime's own run queues, timer heaps, locks and
// fiber switches ordered the goroutines.
#include <goro/goro.h>

#include <cstdio>
#include <cstring>
#include <map>
#include <shared_mutex>
#include <string>

namespace {

using namespace std::chrono_literals;

// Racy: gopl's memo1 shape. Two goroutines each sleep, then write one map
// without a lock.
void sleep_then_write() {
  goro::run([] {
    std::map<std::string, int> m;
    goro::WaitGroup wg;
    for (int i = 0; i < 2; ++i) {
      wg.go([&m, i] {
        goro::sleep_for(100ms);
        m["key"] = i;
      });
    }
    wg.wait();
  });
}

// Racy: at GOMAXPROCS=1 the two goroutines run one after the other on the
// same thread; a switch between goroutines is no synchronization.
void same_thread_in_turn() {
  goro::set_max_procs(1);
  goro::run([] {
    int x = 0;
    goro::WaitGroup wg;
    wg.go([&x] { x = 1; });
    wg.go([&x] { x = 2; });
    wg.wait();
  });
}

// Racy: the two writers synchronize with third parties through unrelated
// channels (scheduler state they share: run queues, wake-ups), never with
// each other.
void unrelated_channels() {
  goro::run([] {
    int x = 0;
    goro::Chan<int> a(0), b(0);
    goro::WaitGroup wg;
    wg.go([&] {
      x = 1;
      a.send(1);
    });
    wg.go([&] { a.recv(); });
    wg.go([&] {
      b.recv();
      x = 2;
    });
    wg.go([&] { b.send(1); });
    wg.wait();
  });
}

// Racy: the calls of two unrelated goroutines' goro::blocking write one
// variable. At GOMAXPROCS=1 they run one after the other on one thread
// (and on one system stack, whose shadow must not order them either).
// Before the calls ran inline, a pool thread that happened to run both
// jobs ordered them, hiding the race.
void blocking_calls() {
  goro::set_max_procs(1);
  goro::run([] {
    int x = 0;
    goro::WaitGroup wg;
    wg.go([&x] { goro::blocking([&x] { x = 1; }); });
    wg.go([&x] { goro::blocking([&x] { x = 2; }); });
    wg.wait();
  });
}

// Racy: a mutex used by only one of the two writers orders nothing.
void one_sided_mutex() {
  goro::run([] {
    int x = 0;
    goro::Mutex mu;
    goro::WaitGroup wg;
    wg.go([&] {
      std::lock_guard<goro::Mutex> lk(mu);
      x = 1;
    });
    wg.go([&] {
      goro::sleep_for(20ms);
      x = 2;
    });
    wg.wait();
  });
}

// Ordered: the same shapes with the synchronization Go programs use.
void ordered() {
  goro::run([] {
    int x = 0;
    std::map<std::string, int> m;
    // unbuffered and buffered channels, and select
    goro::Chan<int> u(0), bch(4);
    goro::WaitGroup wg;
    wg.go([&] {
      x = 1;
      u.send(1);
    });
    wg.go([&] {
      u.recv();
      x = 2;
      bch.send(1);
    });
    wg.wait();
    bch.recv();
    x = 3;
    wg.go([&] {
      x = 4;
      goro::select(goro::send(bch, 5));
    });
    goro::select(goro::recv(bch));
    x = 5;
    wg.wait();
    // close
    goro::Chan<int> done(0);
    wg.go([&] {
      x = 6;
      done.close();
    });
    done.recv();
    x = 7;
    wg.wait();
    // Mutex, with parked waiters (contention) and hand-offs
    goro::Mutex mu;
    for (int i = 0; i < 8; ++i) {
      wg.go([&, i] {
        for (int k = 0; k < 200; ++k) {
          std::lock_guard<goro::Mutex> lk(mu);
          m["k"] += i;
          if (k % 16 == 0) goro::yield();
        }
      });
    }
    wg.wait();
    // RWMutex, Semaphore, Once, Cond
    // (one map per primitive: each orders only its own accesses)
    goro::RWMutex rw;
    goro::Semaphore sem(1);
    goro::Once once;
    std::map<std::string, int> m_rw, m_sem, m_once;
    for (int i = 0; i < 4; ++i) {
      wg.go([&, i] {
        {
          std::lock_guard<goro::RWMutex> lk(rw);
          m_rw["rw"] = i;
        }
        {
          std::shared_lock<goro::RWMutex> lk(rw);
          (void)m_rw.count("rw");
        }
        sem.acquire();
        m_sem["sem"] = i;
        sem.release();
        once.call([&] { m_once["once"] = i; });
        (void)m_once.count("once");
      });
    }
    wg.wait();
    goro::Cond cond;
    bool ready = false;
    wg.go([&] {
      std::unique_lock<goro::Mutex> lk(mu);
      cond.wait(lk, [&] { return ready; });
      x = 8;
    });
    goro::sleep_for(5ms);
    {
      std::lock_guard<goro::Mutex> lk(mu);
      ready = true;
    }
    cond.signal();
    wg.wait();
    x = 9;
    // spawn: what the spawner did before go() is visible to the goroutine
    m["spawn"] = 1;
    wg.go([&] { m["spawn"] = 2; });
    wg.wait();
    // context cancellation
    auto [ctx, cancel] = goro::with_cancel(goro::Context());
    wg.go([&, ctx = ctx] {
      ctx.done().recv();
      x = 10;
    });
    x = 11;
    cancel();
    wg.wait();
    // blocking: the call sees the caller's writes, the caller the call's
    goro::blocking([&] { x = 12; });
    x = 13;
    // after_func: arming happens before the function
    goro::Chan<int> fired(1);
    m["timer"] = 1;
    goro::after_func(1ms, [&] {
      m["timer"] = 2;
      fired.send(1);
    });
    fired.recv();
    m["timer"] = 3;
  });
}

// Ordered, at exit: goroutines still running when main returns wrote a
// global; the static destructor runs after they are stopped.
std::map<int, int> g_at_exit;
goro::Mutex g_at_exit_mu;

void exit_while_running() {
  goro::run([] {
    for (int i = 0; i < 4; ++i) {
      goro::go([i] {
        for (int k = 0;; ++k) {
          {
            std::lock_guard<goro::Mutex> lk(g_at_exit_mu);
            g_at_exit[k % 64] += i;
          }
          if (k % 8 == 0) goro::yield();
        }
      });
    }
    goro::sleep_for(5ms);
  });
}

}  // namespace

int main(int argc, char** argv) {
  const char* mode = argc > 1 ? argv[1] : "";
  if (std::strcmp(mode, "sleep_then_write") == 0) {
    sleep_then_write();
  } else if (std::strcmp(mode, "same_thread_in_turn") == 0) {
    same_thread_in_turn();
  } else if (std::strcmp(mode, "unrelated_channels") == 0) {
    unrelated_channels();
  } else if (std::strcmp(mode, "one_sided_mutex") == 0) {
    one_sided_mutex();
  } else if (std::strcmp(mode, "blocking_calls") == 0) {
    blocking_calls();
  } else if (std::strcmp(mode, "ordered") == 0) {
    ordered();
  } else if (std::strcmp(mode, "exit_while_running") == 0) {
    exit_while_running();
  } else {
    std::fprintf(stderr, "usage: races sleep_then_write|same_thread_in_turn|unrelated_channels|"
                         "one_sided_mutex|blocking_calls|ordered|exit_while_running\n");
    return 64;
  }
  std::puts("done");
  return 0;
}
