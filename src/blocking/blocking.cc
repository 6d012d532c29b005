// src/blocking/blocking.cc: goro::blocking(): inline on the P's system
// stack with a hand-off, or, when no spare worker can take the hand-off, on
// a thread pool.
//
// Inline (Go's entersyscall, and its cgo calls' switch to the system
// stack): the call runs on this goroutine's own thread, on its P's 8 MiB
// system stack (deep libraries overflow a goroutine's 128 KiB), with the
// thread a plain thread for the duration (sched.h, blocking_enter). The
// monitor hands the P's waiting work to another thread as soon as it sees
// the thread off the CPU. Measured on the du shape (bench/stall/du): see
// ARCHITECTURE "Hand-off".
//
// A goroutine hands its job to the pool inside park()'s unlock hook (after
// its context is saved), so the pool thread's ready() can never overtake
// the park. Pool threads sleep on a condition variable; a job that finds no
// idle thread starts a new one (up to kMaxThreads, then it queues). Threads
// idle for kIdleExit exit. The pool's mutex is held only for queue
// operations, never across a job.
#include <chrono>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <system_error>
#include <thread>

#include "goro/blocking.h"
#include "arch/context.h"
#include "arch/sanitizer.h"
#include "diag/monitor.h"
#include "sched/fatal.h"
#include "sched/futex.h"
#include "sched/sched.h"

namespace goro {

namespace {

constexpr int kMaxThreads = 1024;
constexpr auto kIdleExit = std::chrono::seconds(10);

struct Job {
  void (*fn)(void*) noexcept;
  void* arg;
  rt::G* g;
  void* san_edge;  // TSan: the goroutine's past happens before fn, fn before its return
};

struct Pool {
  std::mutex mu;
  std::condition_variable cv;
  std::deque<Job*> queue;
  int threads = 0;
  int idle = 0;
};

// goro::blocking calls in flight on the pool (queued or running, from park
// to wake), for the deadlock check and the leak proof: a goroutine waiting
// on one will be woken, and a pool thread runs user code. Inline calls are
// not counted: their P is neither idle nor dormant while they run (active,
// or handed off), so no deadlock check passes its quiet test, and a world
// stop cannot stop it (all_stopped stays false: no leak proof).
std::atomic<int> g_inflight{0};

Pool& pool() {
  static Pool* p = new Pool;  // never destroyed: pool threads may outlive main
  return *p;
}

void pool_thread() {
  arch::SanRuntimeScope san;  // left only around the job's own function
  rt::diag::runtime_thread_add(__builtin_frame_address(0));
  Pool& p = pool();
  std::unique_lock<std::mutex> lk(p.mu);
  for (;;) {
    while (p.queue.empty()) {
      ++p.idle;
      bool woke = p.cv.wait_for(lk, kIdleExit, [&] { return !p.queue.empty(); });
      --p.idle;
      if (!woke) {
        --p.threads;
        rt::diag::runtime_thread_exiting();
        return;
      }
    }
    Job* j = p.queue.front();
    p.queue.pop_front();
    lk.unlock();
    // Counted before the exiting check: the exit handler sets `exiting`,
    // then waits for the count to drop, so a job either sees it or is
    // waited for. Once exiting, no job starts (its goroutine never resumes).
    rt::blocking_begin();
    if (!rt::exiting()) {
      arch::san_acquire(j->san_edge);
      arch::san_runtime_leave();
      j->fn(j->arg);
      arch::san_runtime_enter();
      arch::san_release(j->san_edge);
      rt::G* g = j->g;  // j lives on the parked goroutine's stack: read before waking it
      rt::ready(g, false);
    }
    rt::blocking_end();
    lk.lock();
  }
}

void submit(void* a) {
  Job* j = static_cast<Job*>(a);
  Pool& p = pool();
  // On a worker (the park hook): a wait for the pool's lock is the
  // runtime's own, not a stuck goroutine (see stuck_thread in sched.cc).
  std::unique_lock<std::mutex> lk(p.mu, std::try_to_lock);
  if (!lk.owns_lock()) {
    rt::lock_wait_begin();
    lk.lock();
    rt::lock_wait_end();
  }
  p.queue.push_back(j);
  if (p.idle >= static_cast<int>(p.queue.size())) {
    lk.unlock();
    p.cv.notify_one();
    return;
  }
  if (p.threads < kMaxThreads) {
    ++p.threads;
    lk.unlock();
    try {
      rt::diag::start_runtime_thread(pool_thread);
    } catch (const std::system_error&) {
      // Out of threads: the job stays queued for the threads there are.
      lk.lock();
      if (--p.threads == 0) rt::fatal("goro::blocking: cannot start a pool thread");
    }
  }
}

// A call on the system stack; the goroutine stack's bounds are kept here
// for the way back (ASan).
struct OnStack {
  void (*fn)(void*) noexcept;
  void* arg;
  const void* back_bottom = nullptr;
  std::size_t back_size = 0;
};

void on_system_stack(void* a) {
  auto* c = static_cast<OnStack*>(a);
  arch::san_stack_arrive(nullptr, &c->back_bottom, &c->back_size);
  c->fn(c->arg);
  arch::san_stack_leave(nullptr, c->back_bottom, c->back_size);  // this stack's frames are done
}

// Runs fn(arg) on `st`, a stack no other frame uses now.
void call_on(rt::Stack* st, void (*fn)(void*) noexcept, void* arg) {
  // TSan: the calls of different goroutines share this stack but no
  // history; a fresh shadow keeps their stack slots from posing as races.
  if (!arch::san_fresh_stack(st->lo, st->size())) rt::fatal("goro::blocking: cannot re-map the system stack");
  OnStack c{fn, arg};
  void* fake = nullptr;
  arch::san_stack_leave(&fake, st->lo, st->size());
  goro_call_on_stack(&c, &on_system_stack, st->hi);
  arch::san_stack_arrive(fake, nullptr, nullptr);
  if (!st->guarded && !rt::stack_canary_ok(st)) rt::fatal("stack overflow in a goro::blocking call (system stack)");
}

}  // namespace

namespace detail {

void blocking_run(void (*fn)(void*) noexcept, void* arg) {
  rt::G* g = rt::current_g();
  if (g == nullptr) {
    fn(arg);
    return;
  }
  rt::P* p = nullptr;
  {
    arch::SanRuntimeScope san;
    p = rt::blocking_enter(g);
  }
  if (p != nullptr) {
    // Dumps show it as "[blocking]", as before (and as Go shows "[syscall]").
    __atomic_store_n(&g->wait_since_ns, p->clock_ns.load(std::memory_order_relaxed), __ATOMIC_RELAXED);
    __atomic_store_n(&g->wait_reason, static_cast<const char*>(rt::kInBlocking), __ATOMIC_RELAXED);
    call_on(p->sysstack, fn, arg);  // user code: outside the runtime's scope
    __atomic_store_n(&g->wait_reason, nullptr, __ATOMIC_RELAXED);
    arch::SanRuntimeScope san;
    rt::blocking_leave(p);
    return;
  }
  // No hand-off to be had (every spare worker in use): the pool runs it.
  arch::SanRuntimeScope san;
  Job j{fn, arg, g, arch::san_edge_begin()};
  g_inflight.fetch_add(1, std::memory_order_seq_cst);
  rt::park("blocking", &submit, &j);
  g_inflight.fetch_sub(1, std::memory_order_seq_cst);
  arch::san_edge_end(j.san_edge);
}

}  // namespace detail

namespace rt {
int blocking_threads() {
  Pool& p = pool();
  std::lock_guard<std::mutex> lk(p.mu);
  return p.threads;
}
int blocking_inflight() { return g_inflight.load(std::memory_order_seq_cst); }
}  // namespace rt

}  // namespace goro
