// tests/diag/programs.cc: whole programs for the runtime's process-level
// diagnostics, one per mode (argv[1]); tests/diag/expect.sh runs each and
// checks its exit status and stderr.
//
// Deadlocks Go reports (each must end with status 2 and
//   "fatal error: all goroutines are asleep - deadlock!" and the dump):
//   recv_nobody_sends, send_nobody_receives, waitgroup_never_done,
//   mutex_locked_twice, empty_select, ping_without_pong, plain_thread_waits,
//   thread_ended_without_sending
// Programs that are NOT deadlocked though every goroutine is blocked for a
// while (each must end with status 0, no report):
//   timer_pending, plain_thread_sends_later, blocking_call,
//   socket_wait, thread_sleeps_with_handle, woken_by_exiting_thread
// SIGQUIT: sigquit (status 2, "SIGQUIT: quit" and the dump),
//   sigquit_own_handler (the program's handler wins), and with
//   GORO_SIGQUIT=0 the default action (killed by the signal).
// schedtrace: schedtrace (GORO_DEBUG=schedtrace=20: SCHED lines).
// lock_cycle: an ABBA pair of goroutines (GORO_DEBUG=leaks=1 reports it);
// lock_cycle_busy: the same pair, formed while another goroutine computes
//   250 ms without a scheduling point (the world cannot stop until it ends;
//   run with GOMAXPROCS=2 and GORO_DEBUG=leaks=1: reported once it has).
// lock_cycle_blocking: the same, formed while another goroutine sleeps
//   300 ms inside goro::blocking (its P cannot stop until the call returns;
//   GORO_DEBUG=leaks=1: reported once it has).
// cross_unlock: a Mutex unlocked by another goroutine (a panic under leaks=1).
// chan_leak: two senders left behind by a receiver that returned early, and
//   one goroutine blocked on a channel main still holds (GORO_DEBUG=leaks=1
//   reports the two, not the third).
// stall: a goroutine computes 300 ms without a scheduling point
//   (GORO_DEBUG=stalls=50 reports it, with its spawn site in stall_worker).
// stall_blocking: a goroutine sleeps 300 ms inside goro::blocking (a call
//   the program declared blocking: stalls=50 does not report it), then
//   computes 20 ms (under the threshold: the stall clock restarts when the
//   blocking call returns).
// migrate: how many of 400 parks resumed on another OS thread (run with
//   GORO_DEBUG=migrate=1).
#include <goro/goro.h>

#include <signal.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

using namespace std::chrono_literals;

namespace {

// Tees this process's stderr through a pipe so that the program can wait
// until the runtime has written a report, however late the monitor gets
// to it on a loaded machine, instead of sleeping a fixed time and hoping.
// Everything written to fd 2 still reaches the real stderr, in order. A
// leaked object: its thread forwards until the process ends. Not for the
// channel-leak programs: a plain thread blocked outside goro (this one, in
// read) rightly keeps the runtime from proving any goroutine blocked
// forever.
class StderrWatch {
 public:
  explicit StderrWatch(std::string needle) : needle_(std::move(needle)) {
    int fds[2];
    if (pipe(fds) != 0) std::abort();
    out_ = dup(2);
    dup2(fds[1], 2);
    close(fds[1]);
    std::thread([this, in = fds[0]] { forward(in); }).detach();
  }
  // Returns whether the needle was seen within `limit` (polled every 10 ms:
  // a goroutine that sleeps, not a blocked worker).
  bool wait(std::chrono::milliseconds limit) {
    auto until = std::chrono::steady_clock::now() + limit;
    while (!seen_.load(std::memory_order_acquire)) {
      if (std::chrono::steady_clock::now() >= until) return false;
      goro::sleep_for(10ms);
    }
    return true;
  }

 private:
  void forward(int in) {
    std::string text;
    char buf[4096];
    for (;;) {
      ssize_t n = read(in, buf, sizeof buf);
      if (n <= 0) return;
      for (ssize_t at = 0; at < n;) {
        ssize_t w = write(out_, buf + at, static_cast<std::size_t>(n - at));
        if (w <= 0) return;
        at += w;
      }
      if (!seen_.load(std::memory_order_relaxed)) {
        text.append(buf, static_cast<std::size_t>(n));
        // Seen once forwarded, with nothing more in the pipe: the rest of
        // a report written in one go is out too.
        int more = 0;
        if (text.find(needle_) != std::string::npos && ioctl(in, FIONREAD, &more) == 0 && more == 0) {
          seen_.store(true, std::memory_order_release);
        }
      }
    }
  }
  std::string needle_;
  int out_ = -1;
  std::atomic<bool> seen_{false};
};

// Go's classic leak: the first result is taken, the other senders wait
// forever on a channel nobody else holds.
__attribute__((noinline)) int first_result_only(int workers) {
  goro::Chan<int> results(0);
  for (int i = 0; i < workers; ++i) goro::go([results, i] { results.send(i); });
  return *results.recv();
}

__attribute__((noinline)) void wait_for_reply(goro::Chan<int> c) {
  c.recv();
  asm volatile("" ::: "memory");
}

int deadlock(const std::string& mode) {
  if (mode == "recv_nobody_sends") {
    return goro::run([] {
      goro::Chan<int> c(0);
      wait_for_reply(c);
    });
  }
  if (mode == "send_nobody_receives") {
    return goro::run([] {
      goro::Chan<int> c(0);
      c.send(1);
    });
  }
  if (mode == "waitgroup_never_done") {
    return goro::run([] {
      goro::WaitGroup wg;
      wg.add(2);
      goro::go([&] { wg.done(); });
      wg.wait();
    });
  }
  if (mode == "mutex_locked_twice") {
    return goro::run([] {
      goro::Mutex m;
      m.lock();
      m.lock();
    });
  }
  if (mode == "empty_select") {
    return goro::run([] { goro::select(); });
  }
  if (mode == "ping_without_pong") {
    return goro::run([] {
      goro::Chan<int> ping(0), pong(0);
      goro::go([=] {
        for (;;) {
          ping.recv();
          // forgets to answer
        }
      });
      ping.send(1);
      pong.recv();
    });
  }
  if (mode == "thread_ended_without_sending") {
    // The check first runs while a plain thread the runtime does not know
    // is alive (it might send: no report); the thread then ends without
    // sending, an event nothing in goro sees, and the deadlock must still
    // be reported.
    return goro::run([] {
      goro::Chan<int> c(0);
      std::thread([] { std::this_thread::sleep_for(300ms); }).detach();
      c.recv();
    });
  }
  if (mode == "plain_thread_waits") {  // no run(): a plain thread blocks on a goro channel
    goro::Chan<int> c(0);
    goro::go([c] { c.recv(); });
    goro::Chan<int> never(0);
    never.recv();
    return 0;
  }
  return -1;
}

int not_deadlocked(const std::string& mode) {
  if (mode == "timer_pending") {
    return goro::run([] {
      goro::Chan<int> c(0);
      goro::after_func(300ms, [c] { c.send(1); });
      c.recv();
      std::puts("timer fired");
    });
  }
  if (mode == "plain_thread_sends_later") {
    return goro::run([] {
      goro::Chan<int> c(0);
      std::thread t([c] {
        std::this_thread::sleep_for(300ms);  // not in goro: the runtime cannot see it
        c.send(1);
      });
      c.recv();
      t.join();
      std::puts("thread sent");
    });
  }
  if (mode == "thread_sleeps_with_handle") {  // the classic false positive: a plain thread holding a handle
    goro::Chan<int> c(0);
    std::thread t([c] {
      std::this_thread::sleep_for(300ms);
      c.send(7);
    });
    int v = goro::run([c] { return *c.recv(); });
    t.join();
    std::printf("got %d\n", v);
    return 0;
  }
  if (mode == "blocking_call") {
    return goro::run([] {
      goro::Chan<int> c(0);
      goro::go([c] {
        goro::blocking([] { std::this_thread::sleep_for(300ms); });
        c.send(1);
      });
      c.recv();
      std::puts("blocking call returned");
    });
  }
  if (mode == "woken_by_exiting_thread") {
    // A plain thread parks; another wakes it and exits at once. A check
    // that listed the first as parked and then met no unknown thread must
    // still see the wake-up; and a listing of the process's threads taken
    // while the thread of the round before is being reaped must not miss
    // the live one started after it (ARCHITECTURE "Deadlock reports": the
    // kernel's walk ends at a thread reaped under it). The windows are a
    // few microseconds: busy child processes (started before any thread)
    // widen them by delaying the threads, and 3,000 rounds give the check
    // many chances. At most 20 s of them: a round is a thread's creation,
    // which under ASan with the spinners and another test on two cores
    // took long enough to bring the whole run near expect.sh's 60 s limit.
    const auto budget = std::chrono::steady_clock::now() + 20s;
    std::vector<pid_t> spinners;
    for (int i = 0; i < 3; ++i) {
      pid_t pid = fork();
      if (pid == 0) {
        auto until = std::chrono::steady_clock::now() + 60s;
        while (std::chrono::steady_clock::now() < until && getppid() != 1) {}
        _exit(0);
      }
      if (pid > 0) spinners.push_back(pid);
    }
    goro::set_max_procs(4);
    int rounds = 0;
    for (; rounds < 3000 && std::chrono::steady_clock::now() < budget; ++rounds) {
      goro::WaitGroup wg;
      wg.add(1);
      std::thread t([&wg] { wg.done(); });
      wg.wait();
      t.join();
    }
    for (pid_t pid : spinners) kill(pid, SIGKILL);
    for (pid_t pid : spinners) waitpid(pid, nullptr, 0);
    std::printf("woken %d times\n", rounds);
    return 0;
  }
  if (mode == "socket_wait") {
    return goro::run([] {
      goro::net::Listener ln = goro::net::listen("127.0.0.1:0");
      std::string addr = ln.address();
      std::thread peer([addr] {  // another "process": a plain thread that connects late
        std::this_thread::sleep_for(300ms);
        goro::net::Conn c = goro::net::dial(addr);
        c.write(std::string_view("hi"));
        c.close();
      });
      goro::net::Conn s = ln.accept();
      char buf[8];
      std::size_t n = s.read(std::span<char>(buf));
      peer.join();
      std::printf("read %zu bytes\n", n);
    });
  }
  return -1;
}

void own_handler(int) {
  const char msg[] = "program's own SIGQUIT handler\n";
  (void)!write(2, msg, sizeof msg - 1);
  _exit(7);
}

}  // namespace

// Computes for d without calling into goro.
void compute_for(std::chrono::milliseconds d) {
  static std::atomic<std::uint64_t> sink{0};
  auto until = std::chrono::steady_clock::now() + d;
  std::uint64_t x = 1;
  while (std::chrono::steady_clock::now() < until) x = x * 6364136223846793005ULL + 1;
  sink.store(x);
}

// Spawns a goroutine that computes for 300 ms without calling into goro.
__attribute__((noinline)) void stall_worker(goro::WaitGroup& wg) {
  wg.go([] { compute_for(std::chrono::milliseconds(300)); });
}

int main(int argc, char** argv) {
  if (argc < 2) return 64;
  std::string mode = argv[1];
  if (int r = deadlock(mode); r != -1) return r;
  if (int r = not_deadlocked(mode); r != -1) return r;
  if (mode == "sigquit" || mode == "sigquit_own_handler") {
    if (mode == "sigquit_own_handler") signal(SIGQUIT, own_handler);
    return goro::run([] {
      goro::Chan<int> c(0);
      goro::go([c] { wait_for_reply(c); });
      goro::sleep_for(50ms);
      std::printf("raising SIGQUIT\n");
      std::fflush(stdout);
      kill(getpid(), SIGQUIT);
      goro::sleep_for(10s);  // the handler ends the process first
      return 1;
    });
  }
  if (mode == "migrate") {  // how often a goroutine resumes on another thread
    return goro::run([] {
      const int parks = 400;
      int moved = 0, moved_recv = 0;
      goro::Chan<int> c(0);
      goro::go([c] {  // sends after the receiver has parked
        for (int i = 0; i < parks / 2; ++i) {
          goro::sleep_for(std::chrono::microseconds(100));
          c.send(i);
        }
      });
      for (int i = 0; i < parks; ++i) {
        // (gettid by syscall: pthread_self is a `const` function the compiler
        // may fold across the park, which is this mode's point)
        long before = syscall(SYS_gettid);
        if (i % 2 == 0) {
          c.recv();
        } else {
          goro::sleep_for(std::chrono::microseconds(50));
        }
        bool m = syscall(SYS_gettid) != before;
        moved += m;
        moved_recv += m && i % 2 == 0;
      }
      std::fprintf(stderr, "moved %d of %d parks (%d of the channel receives)\n", moved, parks, moved_recv);
      return 0;
    });
  }
  if (mode == "lock_cycle" || mode == "lock_cycle_busy" || mode == "lock_cycle_blocking") {  // ABBA: reported under GORO_DEBUG=leaks=1
    const bool busy = mode == "lock_cycle_busy";
    const bool in_blocking = mode == "lock_cycle_blocking";
    const char* debug = std::getenv("GORO_DEBUG");
    const bool reporting = debug != nullptr && std::strstr(debug, "leaks=1") != nullptr;
    auto* watch = new StderrWatch("lock cycle");
    return goro::run([busy, in_blocking, reporting, watch] {
      static goro::Mutex a, b;
      goro::Chan<int> held(0), go_on(0);
      goro::go([held, go_on] {
        a.lock();
        held.send(1);
        go_on.recv();  // (returns when closed)
        b.lock();      // never returns
      });
      goro::go([held, go_on] {
        b.lock();
        held.send(2);
        go_on.recv();
        a.lock();  // never returns
      });
      held.recv();
      held.recv();  // both hold their first mutex
      goro::WaitGroup computing;
      if (busy) {  // the pair forms while another goroutine computes 250 ms
        computing.go([] { compute_for(std::chrono::milliseconds(250)); });
        goro::sleep_for(5ms);  // it runs on the other P
      }
      if (in_blocking) {  // the pair forms while another goroutine is in a 300 ms blocking call
        computing.go([] { goro::blocking([] { std::this_thread::sleep_for(std::chrono::milliseconds(300)); }); });
        goro::sleep_for(20ms);
      }
      go_on.close();
      computing.wait();
      // The monitor reports meanwhile (after a blocking call, within its
      // retry gap, ~256 ms then, of the call's return); then exit 0. With
      // the report off, 300 ms show that none comes.
      watch->wait(reporting ? 20s : 300ms);
      std::puts("main done");
    });
  }
  if (mode == "stall") {
    return goro::run([] {
      goro::WaitGroup wg;
      stall_worker(wg);
      wg.wait();
      std::puts("main done");
    });
  }
  if (mode == "stall_blocking") {
    return goro::run([] {
      goro::WaitGroup wg;
      wg.go([] {
        goro::blocking([] { std::this_thread::sleep_for(std::chrono::milliseconds(300)); });
        compute_for(std::chrono::milliseconds(20));
      });
      wg.wait();
      std::puts("main done");
    });
  }
  if (mode == "chan_leak") {
    return goro::run([] {
      first_result_only(3);
      goro::Chan<int> kept(0);
      goro::WaitGroup wg;
      wg.go([kept] { kept.recv(); });
      goro::sleep_for(2500ms);  // the monitor checks once a second
      kept.send(1);             // the third was never blocked forever
      wg.wait();
      std::puts("main done");
    });
  }
  if (mode == "cross_unlock") {  // Go allows it; GORO_DEBUG=leaks=1 does not
    return goro::run([] {
      goro::Mutex m;
      m.lock();
      goro::WaitGroup wg;
      wg.go([&m] { m.unlock(); });
      wg.wait();
      std::puts("unlocked by another goroutine");
    });
  }
  if (mode == "schedtrace") {
    return goro::run([] {
      for (int i = 0; i < 10; ++i) {
        goro::go([] { goro::sleep_for(150ms); });
        goro::sleep_for(20ms);
      }
      goro::sleep_for(200ms);
    });
  }
  return 64;
}
