// src/blocking/blocking.cc: the thread pool behind goro::blocking().
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
#include "arch/sanitizer.h"
#include "diag/monitor.h"
#include "sched/fatal.h"
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

// goro::blocking calls in flight (queued or running, from park to wake), for
// the deadlock check: a goroutine waiting on one will be woken.
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

}  // namespace

namespace detail {

void blocking_run(void (*fn)(void*) noexcept, void* arg) {
  rt::G* g = rt::current_g();
  if (g == nullptr) {
    fn(arg);
    return;
  }
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
