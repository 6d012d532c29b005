// src/diag/monitor.cc: the monitor thread: SIGQUIT, the deadlock check,
// schedtrace.
//
// The SIGQUIT handler only pokes the monitor (an atomic or and a futex
// wake, both async-signal-safe); the dump is made on the monitor thread,
// which holds no lock the interrupted code could hold, so a signal that lands
// inside malloc or while a scheduler lock is held cannot deadlock it.
#include "diag/monitor.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "arch/sanitizer.h"
#include "diag/diag.h"
#include "goro/debug.h"
#include "goro/sync.h"
#include "netpoll/netpoll.h"
#include "sched/futex.h"
#include "sched/sched.h"

namespace goro::rt::diag {

namespace {

std::atomic<std::uint32_t> g_req{0};
std::atomic<std::uint64_t> g_wakeups{0};  // the monitor loop's turns (monitor_wakeups)
std::atomic<int> g_started{0};

// Constant-initialized or function-local: the runtime may start from another
// file's static initializer, before this file's dynamic initializers run.
std::mutex g_threads_mu;
std::vector<RuntimeThread>& runtime_tids() {
  static auto* v = new std::vector<RuntimeThread>;  // never destroyed (threads outlive statics)
  return *v;
}
// Runtime threads created (or about to be) that have not yet registered;
// decremented under g_threads_mu by runtime_thread_add.
std::atomic<int> g_threads_starting{0};
// Registrations so far; written under g_threads_mu.
std::uint64_t g_threads_generation = 0;

// Drops the entries of runtime threads that have ended. An ending thread
// stays listed (as exiting) until it is gone from /proc/self/task: between
// leaving its loop and its end it runs only runtime code, so it is known.
// Linux hands out thread ids in a cycle, so an ended thread's id comes back
// only after the id space wraps, long after this prune. Caller holds
// g_threads_mu.
void prune_exited_locked() {
  std::vector<RuntimeThread>& v = runtime_tids();
  for (std::size_t i = 0; i < v.size();) {
    char path[48];
    std::snprintf(path, sizeof path, "/proc/self/task/%d", static_cast<int>(v[i].tid));
    if (v[i].exiting && ::access(path, F_OK) != 0 && errno == ENOENT) {
      v[i] = v.back();
      v.pop_back();
    } else {
      ++i;
    }
  }
}

std::int64_t g_schedtrace_ms = 0;
std::int64_t g_start_ns = 0;

}  // namespace

void write_stderr(const std::string& s) {
  const char* p = s.data();
  std::size_t n = s.size();
  while (n > 0) {
    ssize_t w = ::write(2, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return;
    p += w;
    n -= static_cast<std::size_t>(w);
  }
}

namespace {

[[noreturn]] void die_with_dump(const char* first_line) {
  std::string out = first_line;
  out += "\n\n";
  out += goroutine_dump();
  flush_stdio_bounded();  // what the program printed comes first
  write_stderr(out);
  _exit(2);
}

void on_sigquit(int) {
  int saved = errno;
  monitor_poke(kSigquit);
  errno = saved;
}

void install_sigquit() {
  const char* e = std::getenv("GORO_SIGQUIT");
  if (e != nullptr && std::strcmp(e, "0") == 0) return;
  struct sigaction old {};
  if (sigaction(SIGQUIT, nullptr, &old) != 0) return;
  // The program's own handler (or an explicit SIG_IGN) wins.
  if ((old.sa_flags & SA_SIGINFO) != 0 || old.sa_handler != SIG_DFL) return;
  struct sigaction sa {};
  sa.sa_handler = &on_sigquit;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  sigaction(SIGQUIT, &sa, nullptr);
}

// The deadlock check; the proof that a report is never false is in
// docs/ARCHITECTURE.md ("Deadlock reports"). In short: if no P runs or can
// find work, no timer, network wait or blocking call is pending, and every
// thread of the process is the runtime's or a plain thread parked in a goro
// primitive, then nothing can ever make a goroutine runnable; checking twice
// with the same epoch shows that this held over the whole check.
// What the check found (only `deadlock` is a proof):
enum class Verdict {
  running,   // something runs or can (or nothing is blocked): a later idle asks again
  deadlock,
  // The check failed only because a runtime thread is starting or ending
  // (it could not be told from a user's thread), or because threads exited
  // while the process's threads were listed (the listing may have missed
  // some: only_threads): try again shortly.
  settling,
  // A thread goro does not know is alive: it might ready a goroutine. Its
  // end is an event nothing in goro sees, so look again later.
  foreign_thread,
};
Verdict deadlock_check() {
  std::uint64_t e1 = 0, e2 = 0;
  std::vector<pid_t> known;
  if (!sched_quiescent(e1, &known)) return Verdict::running;
  const std::size_t parked_plain = known.size() - static_cast<std::size_t>(sched_counts().started);
  if (goro::num_goroutines() == 0 && parked_plain == 0) return Verdict::running;  // nothing is blocked
  std::uint64_t generation = 0;
  for (const RuntimeThread& t : runtime_threads(&generation)) known.push_back(t.tid);
  switch (only_threads(known)) {
    case ThreadsSeen::only_known:
      break;
    case ThreadsSeen::unsure:
      return Verdict::settling;
    case ThreadsSeen::unknown:
      return runtime_threads_settling(generation) ? Verdict::settling : Verdict::foreign_thread;
  }
  return sched_quiescent(e2, nullptr) && e1 == e2 ? Verdict::deadlock : Verdict::running;
}

void schedtrace_line() {
  SchedCounts c = sched_counts();
  RuntimeStats st = runtime_stats();
  std::string line;
  char buf[160];
  std::snprintf(buf, sizeof buf,
                "SCHED %lldms: gomaxprocs=%d idleprocs=%d threads=%zu spinningthreads=%d runqueue=%u [",
                static_cast<long long>((mono_now_ns() - g_start_ns) / 1'000'000), c.procs, c.idle, st.threads,
                c.spinning, c.global_queue);
  line += buf;
  for (int i = 0; i < c.started && i < kMaxProcsDiag; ++i) {
    std::snprintf(buf, sizeof buf, i == 0 ? "%u" : " %u", c.local_queue[i]);
    line += buf;
  }
  std::snprintf(buf, sizeof buf, "] goroutines=%zu running=%zu runnable=%zu waiting=%zu timers=%zu iowait=%zu\n",
                st.goroutines, st.running, st.runnable, st.waiting, st.timers, st.io_waiters);
  line += buf;
  write_stderr(line);
}

// GORO_DEBUG: comma-separated key=number items, as Go's GODEBUG.
struct DebugOptions {
  std::vector<std::pair<std::string, long>> items;
  DebugOptions() {
    const char* e = std::getenv("GORO_DEBUG");
    if (e == nullptr) return;
    std::string s(e);
    std::size_t pos = 0;
    for (;;) {
      std::size_t comma = s.find(',', pos);
      std::string item = s.substr(pos, comma == std::string::npos ? std::string::npos : comma - pos);
      std::size_t eq = item.find('=');
      if (eq != std::string::npos) items.emplace_back(item.substr(0, eq), std::atol(item.c_str() + eq + 1));
      if (comma == std::string::npos) break;
      pos = comma + 1;
    }
  }
};

// Lock-cycle checks stop the world: under heavy Mutex contention (every
// park pokes) they are coalesced to one per kCycleCheckGap. A look that
// could not stop every P is retried with the gap doubling up to
// kCycleRetryGapMax, kCycleRetries times in a row (~30 s).
constexpr std::int64_t kCycleCheckGap = 2'000'000;
constexpr std::int64_t kCycleRetryGapMax = 500'000'000;
constexpr int kCycleRetries = 70;

// The deadlock check's rechecks: kSettleRecheck after a settling verdict;
// after a foreign_thread one, kForeignRecheckFirst, doubling while the
// verdict stays the same, up to kForeignRecheckMax (each look costs tens of
// microseconds; a program whose goroutines wait for a thread of its own
// pays one a second).
constexpr std::int64_t kSettleRecheck = 1'000'000;
constexpr std::int64_t kForeignRecheckFirst = 50'000'000;
constexpr std::int64_t kForeignRecheckMax = 1'000'000'000;

// GORO_DEBUG=leaks=1: the proof of goroutines blocked forever runs once a
// second, when some goroutine has waited on a channel for that long.
constexpr std::int64_t kLeakCheckPeriod = 1'000'000'000;

// Whether some goroutine has been parked on a channel (or a nil channel, or
// an empty select) since before `since`. Read without stopping the world: a
// hint for whether to try the proof, which reads everything again properly.
bool channel_wait_over(std::int64_t since) {
  struct Arg {
    std::int64_t since;
    bool found;
  } a{since, false};
  for_each_g([](G* g, void* p) {
    auto& a = *static_cast<Arg*>(p);
    if (a.found || g->status.load(std::memory_order_acquire) != GStatus::waiting) return;
    const char* r = __atomic_load_n(&g->wait_reason, __ATOMIC_RELAXED);
    std::int64_t t = __atomic_load_n(&g->wait_since_ns, __ATOMIC_RELAXED);
    if (r != nullptr && (std::strncmp(r, "chan ", 5) == 0 || std::strncmp(r, "select", 6) == 0) && t <= a.since)
      a.found = true;
  }, &a);
  return a.found;
}

// GORO_DEBUG=stalls=<ms>: one line per stall, then the spawn site in the
// dump's form. (The stack of a goroutine running on another thread cannot be
// read safely while it runs; the dump shows it as running too.)
void report_stall(const Stall& st) {
  char buf[512];
  std::snprintf(buf, sizeof buf, "goro: goroutine %" PRIu64 " ran %" PRId64 " ms without a scheduling point\ncreated by %s\n\t%s:%u\n",
                st.g->id, st.ran_ns / 1'000'000, st.g->where.function_name(), st.g->where.file_name(),
                static_cast<unsigned>(st.g->where.line()));
  write_stderr(buf);
}

// The monitor's scheduling duties run every `delay`: 20 us while anything
// changes, doubling after 50 quiet rounds up to 10 ms (1 ms while
// goroutines wait in queues and no P is idle), back to 20 us after a
// hand-off or a first look at a stuck thread asleep in the kernel (the
// second look is due 50 us later); with every P idle or dormant it sleeps until a
// P wakes it, then goes on at the delay it had reached, capped at 1 ms,
// one delay later (ARCHITECTURE "Hand-off": a restart at 20 us with a
// round at once cost a program idle between requests three wake-ups per
// request).
constexpr std::int64_t kSysmonMinDelay = 20'000;
constexpr std::int64_t kSysmonMaxDelay = 10'000'000;
constexpr std::int64_t kSysmonBacklogDelay = 1'000'000;  // while goroutines wait and no P is idle

void monitor_main() {
  arch::SanRuntimeScope san;
  runtime_thread_add(__builtin_frame_address(0));
  const std::int64_t stall_ns = debug_option("stalls") * 1'000'000;
  std::int64_t sysmon_delay = kSysmonMinDelay;
  int sysmon_quiet = 0;
  std::int64_t next_sysmon = 0;
  std::vector<Stall> stalls;
  std::int64_t deadlock_recheck = INT64_MAX;
  std::int64_t foreign_backoff = 0;  // the last recheck's delay for a foreign thread, 0 after a running verdict
  std::int64_t next_trace = g_schedtrace_ms > 0 ? mono_now_ns() + g_schedtrace_ms * 1'000'000 : INT64_MAX;
  std::int64_t next_cycle_check = 0;
  bool cycle_check_pending = false;
  int cycle_retries = 0;
  const bool leaks = detail::leak_checks.load(std::memory_order_relaxed);
  std::int64_t next_leak_check = leaks ? mono_now_ns() + kLeakCheckPeriod : INT64_MAX;
  for (;;) {
    g_wakeups.fetch_add(1, std::memory_order_relaxed);
    std::uint32_t r = g_req.exchange(0, std::memory_order_acq_rel);
    if ((r & kSigquit) != 0) die_with_dump("SIGQUIT: quit");
    if ((r & kCheckDeadlock) != 0 || (deadlock_recheck != INT64_MAX && mono_now_ns() >= deadlock_recheck)) {
      deadlock_recheck = INT64_MAX;
      switch (deadlock_check()) {
        case Verdict::deadlock:
          die_with_dump("fatal error: all goroutines are asleep - deadlock!");
        case Verdict::settling:
          deadlock_recheck = mono_now_ns() + kSettleRecheck;
          break;
        case Verdict::foreign_thread:
          foreign_backoff = foreign_backoff == 0 ? kForeignRecheckFirst : std::min(2 * foreign_backoff, kForeignRecheckMax);
          deadlock_recheck = mono_now_ns() + foreign_backoff;
          break;
        case Verdict::running:
          foreign_backoff = 0;
          break;
      }
    }
    cycle_check_pending = cycle_check_pending || (r & kCheckLockCycles) != 0;
    std::int64_t now = mono_now_ns();
    if ((r & kSysmon) != 0) {
      sysmon_awake();
      sysmon_delay = std::min(sysmon_delay, kSysmonBacklogDelay);
      next_sysmon = now + sysmon_delay;
    }
    if (now >= next_sysmon) {
      stalls.clear();
      int handed = 0;
      bool backlog = false, look_soon = false;
      const bool busy = sysmon_round(now, stall_ns, stalls, handed, backlog, look_soon);
      for (const Stall& st : stalls) report_stall(st);
      if (handed > 0 || look_soon) {
        sysmon_delay = kSysmonMinDelay;
        sysmon_quiet = 0;
      } else if (++sysmon_quiet > 50) {
        sysmon_delay = std::min(2 * sysmon_delay, backlog ? kSysmonBacklogDelay : kSysmonMaxDelay);
      }
      if (backlog) sysmon_delay = std::min(sysmon_delay, kSysmonBacklogDelay);
      next_sysmon = !busy && sysmon_may_sleep() ? INT64_MAX : mono_now_ns() + sysmon_delay;
    }
    if (cycle_check_pending && now >= next_cycle_check) {
      // A look that could not stop every P is retried: the poke that asked
      // for it may have been the cycle's last. A P that computes makes each
      // try wait 100 ms with the others stopped, so the tries thin out
      // (the gap doubles); a P inside a goro::blocking call makes each fail
      // at once, and the tries must outlast the call: with 6 tries 2 ms
      // apart, a cycle formed during a 300 ms call was never reported
      // (LockCycle.abba_reported_after_a_blocking_call_...).
      const bool looked = check_lock_cycles();
      cycle_retries = looked || (r & kCheckLockCycles) != 0 ? 0 : cycle_retries + 1;
      cycle_check_pending = !looked && cycle_retries <= kCycleRetries;
      const std::int64_t gap = cycle_retries == 0 ? kCycleCheckGap
                               : std::min(kCycleRetryGapMax, kCycleCheckGap << std::min(cycle_retries, 20));
      next_cycle_check = mono_now_ns() + gap;
    }
    if (now >= next_trace) {
      schedtrace_line();
      next_trace += g_schedtrace_ms * 1'000'000;
    }
    if (now >= next_leak_check) {
      if (channel_wait_over(now - kLeakCheckPeriod)) report_blocked_forever();
      next_leak_check = mono_now_ns() + kLeakCheckPeriod;
    }
    std::int64_t wake = std::min({next_trace, next_leak_check, next_sysmon, deadlock_recheck});
    if (cycle_check_pending) wake = std::min(wake, next_cycle_check);
    if (r == 0 || cycle_check_pending) futex_wait(&g_req, 0, wake == INT64_MAX ? -1 : wake);
  }
}

}  // namespace

std::uint64_t monitor_wakeups() { return g_wakeups.load(std::memory_order_relaxed); }

void monitor_poke(std::uint32_t what) {
  g_req.fetch_or(what, std::memory_order_acq_rel);
  futex_wake(&g_req, 1);
}

char thread_state(pid_t tid) {
  char path[64];
  std::snprintf(path, sizeof path, "/proc/self/task/%d/stat", static_cast<int>(tid));
  int fd = ::open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return '?';
  char buf[512];
  ssize_t n = ::read(fd, buf, sizeof buf - 1);
  ::close(fd);
  if (n <= 0) return '?';
  buf[n] = '\0';
  // "tid (comm) S ...": comm may hold spaces and parentheses; the state
  // follows the last ')'.
  const char* rp = std::strrchr(buf, ')');
  return rp != nullptr && rp[1] == ' ' && rp[2] != '\0' ? rp[2] : '?';
}

bool thread_cpu_times(pid_t tid, std::int64_t& run_ns, std::int64_t& wait_ns) {
  char path[64];
  std::snprintf(path, sizeof path, "/proc/self/task/%d/schedstat", static_cast<int>(tid));
  int fd = ::open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  char buf[128];
  ssize_t n = ::read(fd, buf, sizeof buf - 1);
  ::close(fd);
  if (n <= 0) return false;
  buf[n] = '\0';
  long long run = 0, wait = 0;
  if (std::sscanf(buf, "%lld %lld", &run, &wait) != 2) return false;
  run_ns = run;
  wait_ns = wait;
  return true;
}

namespace {
// The thread group's size, /proc/self/stat's 20th field: the kernel changes
// it together with the group's thread list, under one lock. -1 if unread.
long thread_count() {
  int fd = ::open("/proc/self/stat", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  char buf[512];  // "pid (comm) state" and 17 numbers fit well before field 20 ends
  ssize_t n = ::read(fd, buf, sizeof buf - 1);
  ::close(fd);
  if (n <= 0) return -1;
  buf[n] = '\0';
  const char* p = std::strrchr(buf, ')');  // comm may hold spaces and ')'
  if (p == nullptr) return -1;
  for (int field = 2; field < 20; ++field) {  // p stands before field `field + 1`
    p = std::strchr(p + 1, ' ');
    if (p == nullptr) return -1;
  }
  char* end = nullptr;
  long v = std::strtol(p + 1, &end, 10);
  return end != p + 1 ? v : -1;
}
}  // namespace

// The kernel lists /proc/self/task by walking the thread group in creation
// order from the leader, and a walk that stands on a thread as it is reaped
// ends there: every younger thread goes unlisted, alive or not (a thread
// just joined is still being reaped; the one started after it, about to
// ready a parked thread, was missed and a false deadlock was reported). So a
// listing is trusted only if it came from one walk (one getdents64 call
// that did not stop for room: a walk resumed by a second call is placed by
// index, which exits shift) and listed as many threads as the group held
// before it began. A walk cut short lists fewer: the thread it stood on and
// the live ones after it were counted and are missing, and threads created
// since are appended after the cut, so none of them makes up the number.
ThreadsSeen only_threads(std::vector<pid_t> known) {
  std::sort(known.begin(), known.end());
  const long before = thread_count();
  if (before <= 0) return ThreadsSeen::unknown;
  int fd = ::open("/proc/self/task", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return ThreadsSeen::unknown;
  // An entry is 24 bytes for "." and "..", at most 32 for a thread id.
  constexpr std::size_t kMaxEntry = 32;
  std::vector<std::uint64_t> buf((2 * 24 + (static_cast<std::size_t>(before) + 16) * kMaxEntry) / 8);
  const std::size_t size = buf.size() * 8;
  const ssize_t n = ::getdents64(fd, buf.data(), size);
  ::close(fd);
  if (n < 0) return ThreadsSeen::unknown;
  if (static_cast<std::size_t>(n) + kMaxEntry > size) return ThreadsSeen::unsure;  // may have stopped for room
  long listed = 0;
  bool all_known = true;
  const char* base = reinterpret_cast<const char*>(buf.data());
  for (ssize_t off = 0; off < n;) {
    const auto* ent = reinterpret_cast<const dirent64*>(base + off);
    off += ent->d_reclen;
    if (ent->d_name[0] == '.') continue;
    ++listed;
    // A thread goro knows nothing of could still act.
    if (!std::binary_search(known.begin(), known.end(), static_cast<pid_t>(std::atol(ent->d_name)))) all_known = false;
  }
  if (!all_known) return ThreadsSeen::unknown;
  return listed == before ? ThreadsSeen::only_known : ThreadsSeen::unsure;
}

void start_runtime_thread(std::function<void()> fn) {
  g_threads_starting.fetch_add(1, std::memory_order_relaxed);
  try {
    std::thread(std::move(fn)).detach();
  } catch (...) {
    g_threads_starting.fetch_sub(1, std::memory_order_relaxed);
    throw;
  }
}

void runtime_thread_add(const void* entry_frame) {
  pid_t tid = gettid();
  std::lock_guard<std::mutex> lk(g_threads_mu);
  runtime_tids().push_back({tid, reinterpret_cast<std::uintptr_t>(entry_frame), false});
  ++g_threads_generation;
  g_threads_starting.fetch_sub(1, std::memory_order_relaxed);
}

std::vector<RuntimeThread> runtime_threads(std::uint64_t* generation) {
  std::lock_guard<std::mutex> lk(g_threads_mu);
  prune_exited_locked();
  if (generation != nullptr) *generation = g_threads_generation;
  return runtime_tids();
}

void runtime_thread_exiting() {
  pid_t tid = gettid();
  std::lock_guard<std::mutex> lk(g_threads_mu);
  for (RuntimeThread& t : runtime_tids()) {
    if (t.tid == tid) t.exiting = true;
  }
}

bool runtime_threads_settling(std::uint64_t generation) {
  std::lock_guard<std::mutex> lk(g_threads_mu);
  // A thread seen unregistered that has registered since: the check that
  // saw it raced with its registration, not with a user's thread.
  if (g_threads_generation != generation) return true;
  if (g_threads_starting.load(std::memory_order_relaxed) > 0) return true;
  prune_exited_locked();
  for (const RuntimeThread& t : runtime_tids()) {
    if (t.exiting) return true;
  }
  return false;
}

long debug_option(const char* key) {
  static const DebugOptions* opts = new DebugOptions;
  for (const auto& kv : opts->items) {
    if (kv.first == key) return kv.second;
  }
  return 0;
}

int monitor_threads() { return g_started.load(std::memory_order_relaxed); }

void monitor_start() {
  if (g_started.exchange(1) != 0) return;
  g_start_ns = mono_now_ns();
  g_schedtrace_ms = debug_option("schedtrace");
  detail::leak_checks.store(debug_option("leaks") > 0, std::memory_order_relaxed);
  start_runtime_thread(monitor_main);
  install_sigquit();
}

}  // namespace goro::rt::diag
