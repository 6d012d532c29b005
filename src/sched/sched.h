// src/sched/sched.h: the scheduler's internal interface: P, timers, and the
// park/ready protocol every blocking primitive is built on.
//
// Glossary (Go's nouns, see src/HACKING.md): G = goroutine, M = worker OS
// thread, P = processor, the right to run goroutines. goro binds each M to one
// P for the M's life (M:P is 1:1, N goroutines over them), so "P" below also
// names its thread. Exactly max_procs() Ps are active; when a P's goroutine
// blocks its thread or computes for long, the monitor deactivates that P and
// activates a spare one (ARCHITECTURE "Hand-off"): the work moves, the P's
// own data stays with its thread.
//
// The park/ready protocol:
//  - park(reason, unlock, arg) suspends the caller until someone calls
//    ready() on its G. unlock(arg) runs after the caller's context is saved
//    (for a goroutine: on the next context, on the same thread), so a waker
//    that takes the same lock can never observe a G that is still running.
//    This is how a wait queue's lock is released without a lost wakeup.
//  - ready(g) makes a parked G runnable exactly once per park. Calling it on a
//    G that is not parked (or about to be) is a runtime bug.
//  - Both work for plain threads: their G is a per-thread pseudo-G whose park
//    blocks on a futex.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <cstdint>
#include <thread>
#include <vector>

#include "arch/tls.h"
#include "sched/g.h"
#include "sched/lock.h"
#include "sched/runq.h"
#include "stack/stack.h"

namespace goro::rt {

// ---------------------------------------------------------------- timers
// A timer fires once at `when` (CLOCK_MONOTONIC ns): a worker calls fire(t)
// on its scheduling path, with no lock held. fire must not block; it readies
// a G, sends without blocking, or spawns.
struct Timer {
  std::int64_t when = 0;
  void (*fire)(Timer*) = nullptr;
  void* arg = nullptr;
  // Protected by owner's timer lock; `owner` is read without it to find
  // which lock to take (acquire, pairs with the release store made when the
  // timer was added), then re-checked under the lock.
  std::atomic<P*> owner{nullptr};
  std::int32_t heap_index = -1;
};

// A timer heap's slot: `when` is t->when, copied.
struct TimerSlot {
  std::int64_t when;
  Timer* t;
};

// Adds t to the current worker's heap (a plain thread uses P 0's).
void timer_add(Timer* t);
// Removes t if it has not fired yet; returns whether it was removed. If it
// returns false the timer has fired or is being fired right now.
bool timer_del(Timer* t);
// True once the process has begun to exit: no goroutine runs again.
bool exiting();
// A goroutine::blocking job starts / ends on a pool thread (exit waits for
// the running ones: they run user code).
void blocking_begin();
void blocking_end();

// The goro::blocking pool (src/blocking): threads it has now, and calls in
// flight (a goroutine parked until its job returns).
int blocking_threads();
int blocking_inflight();

// Timers in every P's heap now (diagnostics and tests).
std::size_t timers_pending();

// ---------------------------------------------------------------- P
struct P {
  explicit P(int id_) : id(id_) {}

  const int id;
  // Written under Sched::lock (set_max_procs, hand-off, stopping the world,
  // exit), through set_active() only, which keeps quick_pick in step
  // (release); read by the P's own thread (acquire).
  std::atomic<bool> active{false};
  // active, and the GORO_DEBUG=migrate mode off: the one test the inline
  // switch paths make before picking from the local queues (sched.cc,
  // runnable_fast); when false they take the out-of-line path, which tells
  // the two cases apart.
  std::atomic<bool> quick_pick{false};

  // --- owned by this P's thread; no lock
  G* curg = nullptr;            // running goroutine, null on the scheduler stack (g0)
  void* g0_sp = nullptr;        // saved scheduler context while a G runs
  void* g0_fake_stack = nullptr;
  arch::SanFiber g0_san;
  // Bumped at every scheduling decision and when a goroutine returns from
  // goro::blocking's inline call; read by the monitor (relaxed) to see a P
  // that has run one goroutine for long.
  std::atomic<std::uint32_t> schedtick{0};
  std::uint32_t runnext_streak = 0;
  // A recent mono_now_ns(), never later than now: what park() stamps as a
  // goroutine's wait start. Stored by this P's thread when it starts and
  // after it sleeps, and by the monitor when over 1 ms old (ARCHITECTURE
  // "Wait start"). Relaxed: a hint.
  std::atomic<std::int64_t> clock_ns{0};
  std::uint64_t rng = 0;
  G* gfree = nullptr;
  std::uint32_t ngfree = 0;
  // Never-used G memory carved by g_get (g_fresh in sched.cc).
  unsigned char* gfresh = nullptr;
  std::uint32_t ngfresh = 0;
  static constexpr std::uint32_t kStackCache = 32;
  Stack* scache[kStackCache] = {};
  std::uint32_t nscache = 0;
  std::uint64_t id_next = 0, id_end = 0;
  bool spinning = false;        // counted in Sched::nspinning; set by a waker before the wake

  // Goroutines spawned here minus those that exited here (may be negative;
  // the sum over Ps is the live count), and spawned here in all. Written
  // only by this P's thread.
  std::atomic<std::int64_t> nlive{0};
  std::atomic<std::uint64_t> nspawned{0};

  // --- run queues: runq (see runq.h) and runnext, the G readied by the
  // running one, which runs next. Any thread may exchange runnext (stealing).
  RunQueue runq;
  std::atomic<G*> runnext{nullptr};

  // --- timers, protected by tlock: a 4-ary min-heap on `when`, kept in
  // each slot beside the timer (a sift compares within the array, without
  // touching timers that live on goroutine stacks all over memory).
  // next_when mirrors the heap's minimum for lock-free peeks (kNoTimer if
  // empty; a `when` below zero is stored as 0); stored under tlock. Unsigned
  // so that the test every switch makes, "any timer?", compares with an
  // immediate operand; read it through timer_due().
  static constexpr std::uint64_t kNoTimer = UINT64_MAX;
  Lock tlock;
  std::vector<TimerSlot> theap;
  std::atomic<std::uint64_t> next_when{kNoTimer};

  // --- idle parking. wake_seq is the futex word: a waker increments it
  // (release) after setting `spinning`; the sleeper waits while it is
  // unchanged. in_idle is written under Sched::lock (the monitor reads it
  // without). dormant: the thread sleeps in deactivate (inactive, holding no
  // goroutine); written by the P's own thread.
  std::atomic<std::uint32_t> wake_seq{0};
  // True while this P's thread may be blocked in the netpoller instead of on
  // wake_seq: a waker then interrupts the poller (wake_p).
  std::atomic<bool> polling{false};
  std::atomic<bool> in_idle{false};
  std::atomic<bool> dormant{false};
  bool started = false;         // thread created (Sched::lock)
  std::atomic<pid_t> tid{0};    // its thread's id, once running (diagnostics)

  // --- the monitor's own (only its thread touches these): the tick it last
  // saw and since when, and the tick of the stall it last reported.
  std::uint32_t mon_tick = 0;
  std::int64_t mon_since = 0;
  std::uint32_t mon_reported = UINT32_MAX;
  std::int64_t mon_sample_at = 0, mon_run_ns = 0, mon_wait_ns = 0;  // the thread's CPU times then
  int mon_asleep = 0;  // sample windows in a row that found its thread asleep
  std::int64_t mon_s_at = 0, mon_s_run = 0;  // first round that found it asleep ('S'), its CPU time then
  // Threads of this P blocked in the slow path of a runtime lock (its own
  // thread only writes; the monitor reads): not stuck, just contended.
  std::atomic<std::uint32_t> lock_waits{0};
  // The goroutine that entered goro::blocking's inline path on this P
  // (blocking_enter); it counts as in a blocking call while it is curg.
  std::atomic<G*> blocking_g{nullptr};
  // The stack goro::blocking's inline calls run on (kSystemStackBytes,
  // guarded), made at the first one; owned by this P's thread.
  Stack* sysstack = nullptr;
  // Set by this P's thread while it waits in stop_wait (a stopped world).
  std::atomic<bool> stw_stopped{false};
};

// ---------------------------------------------------------------- API
// This thread's P, null on plain threads. Never cached by the compiler
// across a call that may switch (a goroutine may resume on another thread):
// inline where arch/tls.h can load tls_p afresh, else an opaque call.
#ifdef GORO_HAVE_TLS_LOAD
inline P* current_p() {
  P* p;
  GORO_TLS_LOAD("goro_rt_tls_p", p);
  return p;
}
#else
P* current_p();
#endif
// The running goroutine, null on plain threads and on g0.
inline G* current_g() {
  P* p = current_p();
  return p != nullptr ? p->curg : nullptr;
}
G* thread_waiter();      // this plain thread's pseudo-G (for park/ready)
// current_g(), or this plain thread's pseudo-G.
inline G* current_waiter() {
  G* g = current_g();
  return g != nullptr ? g : thread_waiter();
}
void ensure_started();

void park(const char* reason, void (*unlock)(void*), void* arg);
// park() for a hook known at compile time (park_unlocking below): act(g,
// arg) runs on the next context instead of park()'s generic action, which
// reaches the hook through a pair and a second indirect call. A plain
// thread runs unlock(arg), as park() does.
void park_action(const char* reason, void (*act)(G* prev, void* arg), void (*unlock)(void*), void* arg);
// The action of park_unlocking: marks prev waiting (before the hook: once
// the hook runs, a waker may ready prev), then runs the hook, inlined.
template <void (*Unlock)(void*)>
void action_unlocking(G* prev, void* arg) {
  prev->status.store(GStatus::waiting, std::memory_order_release);
  Unlock(arg);
}
// park(reason, Unlock, arg), for the hot paths that park with a fixed hook
// (a channel's lock): the same protocol, a few instructions less per park.
template <void (*Unlock)(void*)>
inline void park_unlocking(const char* reason, void* arg) {
  park_action(reason, &action_unlocking<Unlock>, Unlock, arg);
}
// The frame address of a function the caller calls: below every slot of the
// caller's frame, its spilled callee-saved registers included.
__attribute__((noinline)) void* stack_mark();
// next: run g as soon as the current goroutine blocks (runnext), for a G the
// current one hands work to; otherwise g goes to the back of the run queue
// (timers use that, so that expired sleepers run in deadline order).
void ready_slow(G* g, bool next);
// Out of line for ready(): old (if any) goes to p's queue, and an idle P
// is woken for the backlog.
void ready_backlog(P* p, G* old);
inline void ready(G* g, bool next = true) {
  // The common case inline (a goroutine readying a goroutine it hands work
  // to, into its P's runnext, with nothing else waiting): it is on every
  // channel hand-off. Everything else is ready_slow's.
  if (next && !g->is_thread) {
    P* p = current_p();
    if (p != nullptr && p->active.load(std::memory_order_relaxed)) {
      g->status.store(GStatus::runnable, std::memory_order_release);
      // runnext: g runs as soon as the current one blocks, on this P (a
      // ping-pong pair stays on one core). No other P is woken for it
      // unless there is a backlog, since this P runs it at its next switch.
      G* old = p->runnext.exchange(g, std::memory_order_release);
      if (old != nullptr || !p->runq.empty()) [[unlikely]]
        ready_backlog(p, old);
      return;
    }
  }
  ready_slow(g, next);
}
// Readies n parked goroutines (no thread waiters) linked through
// sched_next, head to tail, whose status the caller has already set to
// runnable: as many as fit go to this P's run queue, the rest to the global
// queue in one splice, and one idle P is woken (which wakes the next when
// it finds work). For a close that wakes many at once: ready() per G would
// take the global queue's lock per 128 and make a seq_cst RMW per G.
void ready_list(G* head, G* tail, std::uint32_t n);

// Called when a goroutine or thread has just parked in the netpoller: if no
// thread is blocked polling and some P is idle, wakes one to poll.
void poll_wanted();

// ---------------------------------------------------------------- diagnostics
// P slots: max_procs() is at most 256, and at most 128 more may be handed
// off at once (ARCHITECTURE "Hand-off"), so never more than 384 Ps exist.
inline constexpr int kMaxProcsDiag = 384;

// Stops every P at its next scheduling point (see sched.cc); one stop at a
// time. The caller's own P (if it is a goroutine) keeps running the caller.
// all_stopped is false if some P did not stop within the timeout (its
// goroutine computes without a scheduling point). Always pair with
// start_the_world.
struct WorldStop {
  P* self = nullptr;
  int nprocs = 0;
  bool all_stopped = false;
  bool was_active[kMaxProcsDiag] = {};
};
void stop_the_world(WorldStop& w, std::int64_t timeout_ns);
void start_the_world(WorldStop& w);

// Calls fn on every G descriptor ever made (free ones too: check status).
void for_each_g(void (*fn)(G*, void*), void* arg);

// Counters for runtime_stats and schedtrace (each read on its own, without
// stopping anything: a consistent picture only when the program is quiet).
struct SchedCounts {
  int procs = 0, started = 0, idle = 0, spinning = 0, blocking_running = 0;
  std::uint32_t global_queue = 0;
  std::uint32_t local_queue[kMaxProcsDiag] = {};
  std::uint64_t spawned = 0;
  std::uint64_t handoffs = 0;
};
SchedCounts sched_counts();

// The plain threads parked in a goro primitive now (wake word still 0), with
// the stack mark below their spilled registers (see park_thread).
struct PlainParked {
  pid_t tid;
  std::uintptr_t sp;
};
// `epoch`: how many times parked plain threads were readied or woke, read
// before the list (acquire): if a later plain_wakeups() returns the same,
// no thread listed was readied in between.
void plain_parked_threads(std::vector<PlainParked>& out, std::uint64_t* epoch = nullptr);
std::uint64_t plain_wakeups();

// ---------------------------------------------------------------- the monitor (sysmon)
// One round of the monitor's scheduling duties (ARCHITECTURE "Hand-off"):
// polls the network if nobody has lately, fires due timers of inactive Ps,
// hands the work of each P stuck for kStuckNs to a spare P. `stall_ns` > 0
// asks for the goroutines that have run at least that long without a
// scheduling point (each stall once). Returns whether any P is busy (the
// monitor may sleep otherwise); `handed` counts the hand-offs made;
// `backlog`: goroutines wait in queues while no P is idle (the monitor then
// looks again within 1 ms: a worker that blocks for a few ms at a time
// would otherwise slip between rounds 10 ms apart); `look_soon`: a round
// took the first look at a stuck P's thread asleep in the kernel (the
// monitor then looks again in 20 us: the second look of the 'S' rule).
struct Stall {
  G* g;
  std::int64_t ran_ns;
};
bool sysmon_round(std::int64_t now, std::int64_t stall_ns, std::vector<Stall>& stalls, int& handed, bool& backlog,
                  bool& look_soon);
// The monitor is about to sleep with no timeout: true if it may (every P is
// idle or dormant, re-checked after announcing the sleep); the first P to
// leave the idle list then pokes it (diag::kSysmon). sysmon_awake() after.
bool sysmon_may_sleep();
void sysmon_awake();

// The scheduler's half of the deadlock check (see sched.cc).
bool sched_quiescent(std::uint64_t& epoch, std::vector<pid_t>* tids);

// Flushes stdio from a helper thread, waiting at most 100 ms (a goroutine
// still running may hold a stdio lock). For exits that skip the destructors.
void flush_stdio_bounded();

// goro::blocking's inline path (Go's entersyscall/exitsyscall): the calling
// goroutine g runs the call on its own thread, on its P's system stack
// (P::sysstack), marked so that the monitor hands its P's waiting work off
// as soon as the thread is seen off the CPU, without asking the kernel
// twice. blocking_enter returns the P to pass to blocking_leave, or null if
// no hand-off could be had now (every spare in use: the caller then uses
// the pool). Between the two the thread is a plain thread (current_p() is
// null): a goro primitive the call uses blocks the thread, as on a pool
// thread, and cannot park g, whose stack the call's frames do not use.
// blocking_leave yields if the P was handed off meanwhile, so the thread
// steps aside at once.
P* blocking_enter(G* g);
void blocking_leave(P* p);
// The wait reason a goroutine running goro::blocking's call inline shows
// (set in G::wait_reason while its status stays `running`): dumps print
// it as Go prints "[syscall]". One array, compared by address: two string
// literals with the same text need not share one (ASan keeps them apart).
extern const char kInBlocking[];
// The system stack's size: a thread's usual 8 MiB, for deep libraries
// (getaddrinfo, libdw) that a goroutine's stack could not hold.
inline constexpr std::size_t kSystemStackBytes = std::size_t{8} << 20;
// On this thread, between blocking_enter and blocking_leave: the goroutine
// and the stack its call runs on (nulls otherwise). For the fault handler.
struct InlineCall {
  G* g = nullptr;
  Stack* stack = nullptr;
};
InlineCall inline_call();

// What one sample window of a suspect P's thread shows the monitor (see
// stuck_thread in sched.cc): `state` is the thread's state letter from
// /proc/<tid>/stat at the window's end, drun and dwait the CPU time it ran
// and waited for a CPU during the window (schedstat), dt the window's
// length, all in ns.
enum class ThreadWindow { off_cpu, computing, waiting_for_cpu };
ThreadWindow judge_window(char state, std::int64_t drun, std::int64_t dwait, std::int64_t dt);

// Around a runtime lock's futex wait (RawMutex::lock_slow), on any thread.
void lock_wait_begin();
void lock_wait_end();

// Lock-free helper for park(): releases a rt::Lock.
inline void unlock_lock(void* l) { static_cast<Lock*>(l)->unlock(); }

}  // namespace goro::rt
