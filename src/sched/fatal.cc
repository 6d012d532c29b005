// src/sched/fatal.cc: fatal errors, unrecovered panics, and the SIGSEGV
// handler that reports goroutine stack overflows.
//
// Everything that runs in the signal handler is async-signal-safe: write(2),
// _exit, reads of the current P's G and of that G's stack bounds (written
// only by this thread before the G started running).
#include "sched/fatal.h"

#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <mutex>

#include "sched/g.h"
#include "sched/sched.h"

namespace goro::rt {

namespace {

void write_all(const char* s) {
  std::size_t n = std::strlen(s);
  while (n > 0) {
    ssize_t w = ::write(2, s, n);
    if (w <= 0) return;
    s += w;
    n -= static_cast<std::size_t>(w);
  }
}

// Formats "goroutine N, created at file:line" for g into buf.
void describe(G* g, char* buf, std::size_t n) {
  if (g == nullptr) {
    std::snprintf(buf, n, "on a plain thread");
    return;
  }
  std::snprintf(buf, n, "goroutine %llu [running], created at %s:%u in %s",
                static_cast<unsigned long long>(g->id), g->where.file_name(),
                static_cast<unsigned>(g->where.line()), g->where.function_name());
}

struct sigaction g_old_segv;
struct sigaction g_old_bus;

void fault_handler(int sig, siginfo_t* info, void* uctx) {
  G* g = current_g();
  if (g != nullptr && g->stack != nullptr && stack_guard_hit(info->si_addr, g->stack)) {
    char buf[768];
    std::snprintf(buf, sizeof buf,
                  "fatal error: stack overflow\n\n%llu-byte stack exhausted in goroutine %llu, "
                  "created at %s:%u\n(raise it with goro::SpawnOptions::stack_size or "
                  "goro::set_default_stack_size)\n",
                  static_cast<unsigned long long>(g->stack->size()),
                  static_cast<unsigned long long>(g->id), g->where.file_name(),
                  static_cast<unsigned>(g->where.line()));
    write_all(buf);
    _exit(2);
  }
  // Not ours: hand over to whatever handler was there before, or die of the
  // signal as the default action would.
  const struct sigaction& old = sig == SIGSEGV ? g_old_segv : g_old_bus;
  if ((old.sa_flags & SA_SIGINFO) != 0 && old.sa_sigaction != nullptr) {
    old.sa_sigaction(sig, info, uctx);
    return;
  }
  if (old.sa_handler != SIG_DFL && old.sa_handler != SIG_IGN && old.sa_handler != nullptr) {
    old.sa_handler(sig);
    return;
  }
  signal(sig, SIG_DFL);  // returning re-executes the faulting access
}

}  // namespace

void fatal(const char* msg) {
  char buf[1024];
  char who[512];
  describe(current_g(), who, sizeof who);
  std::snprintf(buf, sizeof buf, "fatal error: %s\n\n%s\n", msg, who);
  write_all(buf);
  _exit(2);
}

void die_of_panic(G* g, std::exception_ptr e) {
  std::string what = "unknown exception (not derived from std::exception)";
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& ex) {
    what = ex.what();
  } catch (...) {
  }
  char who[512];
  describe(g, who, sizeof who);
  std::fflush(stdout);
  std::fprintf(stderr, "panic: %s\n\n%s\n", what.c_str(), who);
  std::fflush(stderr);
  _exit(2);
}

void install_fault_handler() {
  static std::once_flag once;
  std::call_once(once, [] {
    struct sigaction sa {};
    sa.sa_sigaction = &fault_handler;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGSEGV, &sa, &g_old_segv);
    sigaction(SIGBUS, &sa, &g_old_bus);
  });
}

void install_altstack() {
  // Never freed: the worker thread lives as long as the process.
  constexpr std::size_t kSize = 64 * 1024;
  void* mem = mmap(nullptr, kSize, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (mem == MAP_FAILED) return;
  stack_t ss{};
  ss.ss_sp = mem;
  ss.ss_size = kSize;
  sigaltstack(&ss, nullptr);
}

}  // namespace goro::rt
