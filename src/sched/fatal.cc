// src/sched/fatal.cc: fatal errors, unrecovered panics, and the SIGSEGV
// handler that reports goroutine stack overflows.
//
// Everything that runs in the signal handler, and fatal(), is
// async-signal-safe: MsgBuf's plain stores, write(2), _exit, reads of the
// current P's G and of that G's stack bounds (written only by this thread
// before the G started running).
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

void write_all(const char* s, std::size_t n) {
  while (n > 0) {
    ssize_t w = ::write(2, s, n);
    if (w <= 0) return;
    s += w;
    n -= static_cast<std::size_t>(w);
  }
}

// A fixed buffer with the two formatting steps the reports need, built from
// plain stores so that it is async-signal-safe (snprintf is not: it may take
// locale locks or allocate). Truncates silently when full.
struct MsgBuf {
  char buf[1024];
  std::size_t len = 0;
  MsgBuf& str(const char* s) {
    if (s == nullptr) s = "?";
    while (*s != '\0' && len < sizeof buf) buf[len++] = *s++;
    return *this;
  }
  MsgBuf& num(unsigned long long v) {
    char tmp[24];
    int n = 0;
    do {
      tmp[n++] = static_cast<char>('0' + v % 10);
      v /= 10;
    } while (v != 0);
    while (n > 0 && len < sizeof buf) buf[len++] = tmp[--n];
    return *this;
  }
  void write() const { write_all(buf, len); }
};

// Appends "goroutine N [running], created at file:line in function" for g.
void describe(G* g, MsgBuf& m) {
  if (g == nullptr) {
    m.str("on a plain thread");
    return;
  }
  m.str("goroutine ").num(g->id).str(" [running], created at ").str(g->where.file_name()).str(":");
  m.num(g->where.line()).str(" in ").str(g->where.function_name());
}

struct sigaction g_old_segv;
struct sigaction g_old_bus;

void fault_handler(int sig, siginfo_t* info, void* uctx) {
  G* g = current_g();
  if (g != nullptr && g->stack != nullptr && stack_guard_hit(info->si_addr, g->stack)) {
    MsgBuf m;
    m.str("fatal error: stack overflow\n\n").num(g->stack->size()).str("-byte stack exhausted in goroutine ");
    m.num(g->id).str(", created at ").str(g->where.file_name()).str(":").num(g->where.line());
    m.str("\n(raise it with goro::SpawnOptions::stack_size or goro::set_default_stack_size)\n");
    m.write();
    _exit(2);
  }
  if (InlineCall c = inline_call(); c.g != nullptr && stack_guard_hit(info->si_addr, c.stack)) {
    MsgBuf m;
    m.str("fatal error: stack overflow\n\n").num(c.stack->size()).str("-byte system stack exhausted by a goro::blocking call in goroutine ");
    m.num(c.g->id).str(", created at ").str(c.g->where.file_name()).str(":").num(c.g->where.line()).str("\n");
    m.write();
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
  MsgBuf m;
  m.str("fatal error: ").str(msg).str("\n\n");
  describe(current_g(), m);
  m.str("\n").write();
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
  MsgBuf who;
  describe(g, who);
  std::fflush(stdout);
  std::fprintf(stderr, "panic: %s\n\n%.*s\n", what.c_str(), static_cast<int>(who.len), who.buf);
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
