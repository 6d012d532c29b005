// src/sched/sched.cc: the M:N work-stealing scheduler.
//
// Design (docs/ARCHITECTURE.md has the reasons):
//  - One worker thread per P. A worker runs goroutines from, in order: its
//    timers that are due, the global queue one time in 61 (fairness), its
//    runnext slot, its local run queue, the global queue, then (spinning)
//    stealing half of another P's queue; with nothing found it parks on its
//    futex until the earliest timer of any P or until woken.
//  - Switching goes straight from one goroutine to the next when the next is
//    at hand (runnext, local queue, global queue); only when there is none
//    does the goroutine switch to its worker's own stack (g0), which does the
//    slow search and the sleeping.
//  - Whatever must happen after a context is saved (release the lock of the
//    wait queue the G parked on, requeue a yielding G, recycle an exited G)
//    travels with the switch in its transfer word (an Action, or a tagged G
//    for a yield: see run_action) and is done by the context switched to, on
//    the same thread, before anything else.
//
// Lock order (outermost first): a primitive's own lock (channel, mutex, ...)
// -> Sched::lock -> P::tlock -> stack pool lock. Sched::lock and P::tlock are
// never held together except in timer migration (tlock of the source, then
// tlock of the destination, with Sched::lock not held).
//
// Spinning and idling (Go's protocol): a worker that runs out of work may
// become "spinning" (counted in nspinning, at most half the busy Ps) and
// steal. Work is published before wakep() reads nidle with a seq_cst RMW; a
// worker going idle increments nidle (seq_cst RMW) before re-checking every
// queue. Both RMWs hit one word, so either the waker sees the idler or the
// idler sees the work: no lost wakeup.
#include "sched/sched.h"

#include <pthread.h>
#include <unistd.h>
#include <sys/resource.h>
#include <sched.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <new>

#include "arch/context.h"
#include "arch/sanitizer.h"
#include "goro/runtime.h"
#include "goro/sync.h"
#include "sched/fatal.h"
#include "sched/futex.h"
#include "netpoll/netpoll.h"
#include "netpoll/poller.h"
#include "diag/monitor.h"

namespace goro::rt {

// This thread's P (null on plain threads). Read through current_p() only
// (sched.h: a goroutine may resume on another thread). External, under a
// fixed assembler name and the initial-exec model, for GORO_TLS_LOAD.
__attribute__((tls_model("initial-exec"), visibility("hidden"))) thread_local P* tls_p asm("goro_rt_tls_p") =
    nullptr;

namespace {

constexpr int kMaxProcs = 256;
constexpr int kMaxSlots = kMaxProcsDiag;  // P slots: kMaxProcs active + kMaxHandedOff handed off
constexpr int kMaxHandedOff = 128;
static_assert(kMaxSlots == kMaxProcs + kMaxHandedOff);
// A P whose tick has not moved for this long while it is busy is stuck (see
// ARCHITECTURE "Hand-off" for the choice).
constexpr std::int64_t kStuckNs = 3'000'000;
// A P whose thread has slept in the kernel this long (interruptibly: a
// blocking call) while work waits is handed off at once.
constexpr std::int64_t kBlockedNs = 50'000;
constexpr std::uint32_t kGlobalCheckInterval = 61;
constexpr std::uint32_t kRunnextStreakMax = 128;
constexpr std::uint32_t kGFreeMax = 64;

struct Sched {
  // Protects the global queue, gfree, the idle list, allgs appends, P
  // creation.
  Lock lock;
  // The global queue: two FIFOs (HACKING rule 15). rhead/rtail: goroutines
  // that have run, so hold a stack; ghead/gtail: goroutines that have not.
  G* rhead = nullptr;
  G* rtail = nullptr;
  G* ghead = nullptr;
  G* gtail = nullptr;
  std::atomic<std::uint32_t> gsize{0};  // both lists; written under lock, read without it as a hint
  G* gfree = nullptr;
  std::vector<P*> idle;                 // idle Ps (their threads sleep)
  std::atomic<int> nidle{0};
  std::atomic<int> nspinning{0};
  std::atomic<int> nprocs{0};
  std::atomic<int> nstarted{0};         // Ps created so far (prefix of ps[])
  std::atomic<int> ndormant{0};         // Ps whose thread sleeps in deactivate
  P* ps[kMaxSlots] = {};
  // The monitor sleeps with no timeout (every P idle or dormant); a P that
  // leaves the idle list or dormancy pokes it. seq_cst, against nidle and
  // ndormant (see sysmon_may_sleep).
  std::atomic<bool> sysmon_asleep{false};
  std::atomic<std::uint64_t> handoffs{0};  // hand-offs made (runtime_stats)
  G* allgs = nullptr;
  std::atomic<std::uint64_t> next_id{1};
  std::atomic<std::int64_t> thread_spawned{0};  // spawns from plain threads (exits count on a P)
  std::atomic<std::size_t> default_stack{128 * 1024};
  // A thread is blocked in the netpoller (at most one at a time, as in Go;
  // the others sleep on their futex). Claimed by exchange.
  std::atomic<bool> poll_blocked{false};
  // When the netpoller was last polled (any kind of poll), for the
  // starvation guard in runnable_fast.
  std::atomic<std::int64_t> last_poll_ns{0};
  // Process exit (see "exit" below): set once by the exit handler; every P
  // is then inactive for good and its thread freezes at its next scheduling
  // point, counting itself in `frozen` (release: the exit handler's acquire
  // orders every goroutine's last action before the static destructors).
  std::atomic<bool> exiting{false};
  std::atomic<int> frozen{0};
  // goro::blocking jobs running on pool threads now (user code too).
  std::atomic<int> blocking_running{0};
  // Stopping the world for diagnostics (stop_the_world): `stw_mu` makes one
  // stop at a time and keeps set_max_procs out while one is in progress;
  // `stopping` is set while Ps are asked to stop; each stopped P counts
  // itself in `nstopped` and waits on `stw_seq` (a futex word bumped by
  // start_the_world).
  std::mutex stw_mu;
  std::atomic<bool> stopping{false};
  std::atomic<std::uint32_t> nstopped{0};
  std::atomic<std::uint32_t> stw_seq{0};
  // For the deadlock check (src/diag/monitor.cc): idle_epoch counts Ps
  // leaving the idle list (changed under `lock`); plain threads parked in a
  // goro primitive are listed in `plain_parked` (under plain_mu, a leaf) and
  // plain_epoch counts their readies (ready()) and wake-ups (plain_park_end).
  std::atomic<std::uint64_t> idle_epoch{0};
  std::mutex plain_mu;
  std::vector<std::pair<G*, pid_t>> plain_parked;
  std::atomic<std::uint64_t> plain_epoch{0};
};

// Never destroyed: workers and abandoned goroutines outlive static
// destruction (the union's destructor leaves its member alone). Constant-
// initialized, so sched() is one address, without the guard check that a
// function-local static costs on every call of the hot paths.
union SchedHolder {
  Sched s;
  constexpr SchedHolder() : s() {}
  ~SchedHolder() {}
};
constinit SchedHolder g_sched;

inline Sched& sched() { return g_sched.s; }

thread_local InlineCall tls_inline;  // see inline_call()

extern bool g_migrate;  // GORO_DEBUG=migrate=1, see migrate_filter
bool migrate_keep(P* p, P* q);

// TSan: a worker's start (TSan counts its thread-local storage as written
// then) happens before any goroutine that runs on it; goroutine fibers
// start with no history, so each acquires this after every switch onto a
// worker. Only its address is used.
thread_local char san_thread_start;

// What the context switched to must do first (see the header comment).
struct Action {
  void (*fn)(G* prev, void* arg) = nullptr;  // set by every switch that passes an Action
  G* prev = nullptr;
  void* arg = nullptr;
};

// The transfer word a switch passes, never null: an Action* (at least
// 8-aligned; &kNoAction when there is nothing to do), or the switching G's
// address with kRequeueTag set: "put this G at the tail of the current P's
// run queue" (yield's work, done without an Action to build and call
// through). Never null, so telling the two apart is the only test.
constexpr std::uintptr_t kRequeueTag = 1;
static_assert(alignof(Action) > kRequeueTag && alignof(G) > kRequeueTag);

// What switch_from_g passes: act, or (act null: a yield) `from`, tagged.
// Computed at the call of the switch, so the word is built in the argument
// register rather than kept in a callee-saved one across the path.
inline void* transfer_word(Action* act, G* from) {
  return act != nullptr ? static_cast<void*>(act) : reinterpret_cast<char*>(from) + kRequeueTag;
}

void requeue(G* prev);

void action_none(G*, void*) {}
Action kNoAction{&action_none, nullptr, nullptr};  // never written

__attribute__((always_inline)) inline void run_action(void* transfer) {
  const auto w = reinterpret_cast<std::uintptr_t>(transfer);
  if (w & kRequeueTag) {
    requeue(reinterpret_cast<G*>(w - kRequeueTag));
    return;
  }
  // Copy first: once fn has run, prev may be resumed elsewhere and its stack,
  // which holds the Action, reused.
  Action a = *reinterpret_cast<Action*>(w);
  a.fn(a.prev, a.arg);  // never null: every Action names its work
}

std::uint32_t fastrand(P* p) {
  // xorshift64*
  p->rng ^= p->rng >> 12;
  p->rng ^= p->rng << 25;
  p->rng ^= p->rng >> 27;
  return static_cast<std::uint32_t>((p->rng * 2685821657736338717ULL) >> 32);
}

// ---------------------------------------------------------------- global queue
// Appends gs[0, n), in order, each to the list its stack says (a G that
// has run holds one; see ARCHITECTURE "Scheduler" for why they are kept
// apart). G::stack does not change while a G is queued.
void global_put_batch_locked(Sched& s, G** gs, std::uint32_t n) {
  G *rh = s.rhead, *rt = s.rtail, *gh = s.ghead, *gt = s.gtail;  // in registers through the loop
  for (std::uint32_t i = 0; i < n; ++i) {
    G* g = gs[i];
    g->sched_next = nullptr;
    if (g->stack != nullptr) {
      (rt != nullptr ? rt->sched_next : rh) = g;
      rt = g;
    } else {
      (gt != nullptr ? gt->sched_next : gh) = g;
      gt = g;
    }
  }
  s.rhead = rh;
  s.rtail = rt;
  s.ghead = gh;
  s.gtail = gt;
  s.gsize.store(s.gsize.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
}

// Under s.lock: moves up to n - k Gs from the front of one global list
// (head, tail) into batch[k, n); returns the new k.
inline std::uint32_t global_take_locked(G*& head, G*& tail, G** batch, std::uint32_t k, std::uint32_t n) {
  G* g = head;
  for (; k < n && g != nullptr; g = g->sched_next) batch[k++] = g;
  head = g;
  if (g == nullptr) tail = nullptr;
  return k;
}

void global_put(G* g) {
  Sched& s = sched();
  s.lock.lock();
  global_put_batch_locked(s, &g, 1);
  s.lock.unlock();
}

// Full: move half of p's queue and g to the global queue, as Go's
// runqputslow (each to its list: global_put_batch_locked).
__attribute__((noinline)) void runq_put_slow(P* p, G* g) {
  G* batch[RunQueue::kSize / 2 + 1];
  std::uint32_t n = p->runq.take_half(batch);
  batch[n++] = g;
  Sched& s = sched();
  s.lock.lock();
  global_put_batch_locked(s, batch, n);
  s.lock.unlock();
}

inline void runq_put(P* p, G* g) {
  if (!p->runq.push(g)) [[unlikely]] runq_put_slow(p, g);
}

// Takes one G to run and moves up to a fair share more into p's local
// queue: goroutines that have run first, unless fresh_first (the fairness
// look, which must reach new goroutines however many resumed ones wait).
G* global_get(P* p, std::uint32_t max, bool fresh_first = false) {
  Sched& s = sched();
  if (s.gsize.load(std::memory_order_relaxed) == 0) return nullptr;
  s.lock.lock();
  std::uint32_t size = s.gsize.load(std::memory_order_relaxed);
  if (size == 0) {
    s.lock.unlock();
    return nullptr;
  }
  int np = std::max(1, s.nprocs.load(std::memory_order_relaxed));
  std::uint32_t n = std::min({size, size / np + 1, max, RunQueue::kSize / 2});
  G* batch[RunQueue::kSize / 2];
  std::uint32_t k = 0;
  if (fresh_first) k = global_take_locked(s.ghead, s.gtail, batch, k, n);
  k = global_take_locked(s.rhead, s.rtail, batch, k, n);
  k = global_take_locked(s.ghead, s.gtail, batch, k, n);  // n <= size: k == n now
  s.gsize.store(size - n, std::memory_order_relaxed);
  s.lock.unlock();
  for (std::uint32_t i = 1; i < n; ++i) runq_put(p, batch[i]);
  return batch[0];
}

bool any_work() {
  Sched& s = sched();
  if (s.gsize.load(std::memory_order_relaxed) != 0) return true;
  int n = s.nstarted.load(std::memory_order_acquire);
  for (int i = 0; i < n; ++i) {
    P* q = s.ps[i];
    if (!q->runq.empty() || q->runnext.load(std::memory_order_relaxed) != nullptr) return true;
  }
  return false;
}

// ---------------------------------------------------------------- waking
// The seq_cst increment and the poller's seq_cst `polling` store before it
// re-reads wake_seq form a Dekker pair: either the waker sees `polling` and
// interrupts the poller, or the poller sees the new wake_seq and skips it.
void wake_p(P* q) {
  q->wake_seq.fetch_add(1, std::memory_order_seq_cst);
  if (q->polling.load(std::memory_order_seq_cst)) poller::interrupt();
  futex_wake(&q->wake_seq, 1);
}

// Takes an active P off the idle list (Sched::lock held); inactive ones are
// dropped from the list, they wait on their own for reactivation. `spinning`
// is set under the lock: the P reads it only after taking the lock itself
// (idle_sleep), so the flag and nspinning stay in step.
P* idle_pop_locked(Sched& s, bool spinning) {
  while (!s.idle.empty()) {
    // Prefer a P that is not blocked in the netpoller: it keeps watching the
    // network while others run the new work.
    std::size_t i = s.idle.size() - 1;
    if (i > 0 && s.idle[i]->polling.load(std::memory_order_relaxed)) --i;
    P* q = s.idle[i];
    s.idle.erase(s.idle.begin() + static_cast<std::ptrdiff_t>(i));
    q->in_idle.store(false, std::memory_order_relaxed);
    s.nidle.fetch_sub(1, std::memory_order_seq_cst);
    s.idle_epoch.fetch_add(1, std::memory_order_seq_cst);
    if (q->active.load(std::memory_order_acquire)) {
      q->spinning = spinning;
      return q;
    }
    wake_p(q);  // let it notice its deactivation
  }
  return nullptr;
}

// Wakes an idle P to look for work, unless one is already spinning (it will
// find the work, and wake another if it finds some: reset_spinning).
void wakep() {
  Sched& s = sched();
  // An RMW rather than a load: it reads the latest nidle in modification
  // order, and the idler's increment is an RMW on the same word, so either we
  // see the idler or the idler (reading after its RMW) sees our work. This
  // is the Dekker pair of idle_sleep, written so that TSan can follow it.
  if (s.nidle.fetch_add(0, std::memory_order_seq_cst) == 0) return;
  int zero = 0;
  if (!s.nspinning.compare_exchange_strong(zero, 1, std::memory_order_seq_cst)) return;
  s.lock.lock();
  P* q = idle_pop_locked(s, true);
  s.lock.unlock();
  if (q == nullptr) {
    s.nspinning.fetch_sub(1, std::memory_order_seq_cst);
    return;
  }
  wake_p(q);
}

// Wakes one idle P without making it spinning, so it recomputes its sleep
// deadline (a timer earlier than any it knew of was added).
void poke_idle() {
  Sched& s = sched();
  if (s.nidle.load(std::memory_order_relaxed) == 0) return;
  s.lock.lock();
  P* q = s.idle.empty() ? nullptr : s.idle.back();
  s.lock.unlock();
  if (q != nullptr) wake_p(q);
}

void reset_spinning(P* p) {
  if (!p->spinning) return;
  p->spinning = false;
  if (sched().nspinning.fetch_sub(1, std::memory_order_seq_cst) == 1) wakep();
}

// ---------------------------------------------------------------- G lifecycle
std::uint64_t new_goid(P* p) {
  Sched& s = sched();
  if (p == nullptr) return s.next_id.fetch_add(1, std::memory_order_relaxed);
  if (p->id_next == p->id_end) {
    constexpr std::uint64_t kBatch = 64;
    p->id_next = s.next_id.fetch_add(kBatch, std::memory_order_relaxed);
    p->id_end = p->id_next + kBatch;
  }
  return p->id_next++;
}

// A G that has never been used. Gs are never freed (allgs keeps them all),
// so a P carves them from chunks committed in one system call
// (MADV_POPULATE_WRITE) instead of a page fault for every dozen Gs, which on
// this project's VM cost 13-16 us each: spawning many goroutines at once
// was a fault per 13 Gs besides one per stack (docs/ARCHITECTURE.md,
// "Stacks"). Heap memory, so LeakSanitizer scans the Gs as before.
G* g_fresh(P* p) {
  if (p == nullptr) return new G;
  if (p->ngfresh == 0) {
    // Not page-aligned: an aligned allocation wasted a fifth of the chunk
    // in the allocator. The pages wholly inside are committed, the two
    // partial ones at the ends fault in as usual.
    constexpr std::size_t kChunk = 16384;
    static_assert(kChunk >= sizeof(G));
    auto* m = static_cast<unsigned char*>(::operator new(kChunk, std::align_val_t{alignof(G)}));
    const std::uintptr_t ps = page_size();
    const std::uintptr_t lo = (reinterpret_cast<std::uintptr_t>(m) + ps - 1) & ~(ps - 1);
    const std::uintptr_t hi = (reinterpret_cast<std::uintptr_t>(m) + kChunk) & ~(ps - 1);
    if (hi > lo) commit_pages(reinterpret_cast<void*>(lo), hi - lo);
    p->gfresh = m;
    p->ngfresh = kChunk / sizeof(G);
  }
  G* g = new (p->gfresh) G;
  p->gfresh += sizeof(G);
  --p->ngfresh;
  return g;
}

// A P's free Gs are a cache in front of the global list, refilled and
// drained half a cache at a time under one acquisition of Sched::lock, as
// Go's gfget/gfput: a burst of exits (a close waking 100,000 goroutines) or
// of spawns takes that lock once per 32 Gs, not once per G, where it
// contended with the global run queue's users.
//
// Stacks are not refilled in batches: a P's first runs take them from the
// global pool one at a time, so stacks follow the order goroutines first
// ran in across all Ps, which is about the order they then park in on a
// shared channel; a close walks its waiters (on their stacks) in that
// order. Batches of 16 per P made that walk twice as slow at P=2
// (ctx_fanout, 285 -> 620 ns per waiter). The pool commits fresh stacks'
// top pages ahead, 16 per system call, without changing that order
// (stack_alloc_global).
G* g_get(P* p) {
  Sched& s = sched();
  if (p == nullptr) {
    s.lock.lock();
    G* g = s.gfree;
    if (g != nullptr) s.gfree = g->sched_next;
    s.lock.unlock();
    if (g != nullptr) return g;
  } else {
    if (p->gfree == nullptr) {
      s.lock.lock();
      while (p->ngfree < kGFreeMax / 2 && s.gfree != nullptr) {
        G* g = s.gfree;
        s.gfree = g->sched_next;
        g->sched_next = p->gfree;
        p->gfree = g;
        ++p->ngfree;
      }
      s.lock.unlock();
    }
    if (G* g = p->gfree) {
      p->gfree = g->sched_next;
      --p->ngfree;
      return g;
    }
  }
  G* g = g_fresh(p);
  s.lock.lock();
  g->all_next = s.allgs;
  s.allgs = g;
  s.lock.unlock();
  return g;
}

void g_put(P* p, G* g) {
  g->status.store(GStatus::idle, std::memory_order_relaxed);
  g->sched_next = p->gfree;
  p->gfree = g;
  if (++p->ngfree < kGFreeMax) return;
  // Full: the newest half goes to the global list, in one splice.
  G* last = p->gfree;
  for (std::uint32_t i = 1; i < kGFreeMax / 2; ++i) last = last->sched_next;
  G* first = p->gfree;
  p->gfree = last->sched_next;
  p->ngfree = kGFreeMax / 2;
  Sched& s = sched();
  s.lock.lock();
  last->sched_next = s.gfree;
  s.gfree = first;
  s.lock.unlock();
}

Stack* stack_get(P* p, std::uint8_t cls) {
  // The cache holds stacks of any class (whatever exited here); its top is
  // used when it is of the class asked for.
  if (p->nscache > 0 && p->scache[p->nscache - 1]->size_class == cls) return p->scache[--p->nscache];
  return stack_alloc_global(cls);
}

void stack_put(P* p, Stack* st) {
  st->dirty = true;
  if (p->nscache == P::kStackCache) {
    for (std::uint32_t i = P::kStackCache / 2; i < P::kStackCache; ++i) stack_free_global(p->scache[i]);
    p->nscache = P::kStackCache / 2;
  }
  p->scache[p->nscache++] = st;
}

void g_entry(void* transfer, void* arg);

// Gives a G that has never run its stack and initial context.
void g_prepare(P* p, G* g) {
  g->stack = stack_get(p, g->stack_class);
  g->stack_unguarded = !g->stack->guarded;
  arch::san_unpoison_stack(g->stack->lo, g->stack->size());
  if constexpr (arch::kTsan) {
    if (!arch::san_fresh_stack(g->stack->lo, g->stack->size())) fatal("cannot re-map a goroutine stack");
    if (!g->stack->guarded) stack_set_canary(g->stack);
  }
  g->san.stack_bottom = g->stack->lo;
  g->san.stack_size = g->stack->size();
  g->san.tsan = arch::san_create_fiber();
  g->asan_fake_stack = nullptr;
  g->sp = arch::make_context(g->stack->hi, &g_entry, g);
}

[[noreturn]] void stack_overflow(G* g) {
  char buf[512];
  std::snprintf(buf, sizeof buf, "stack overflow in goroutine %llu (created at %s:%u)",
                static_cast<unsigned long long>(g->id), g->where.file_name(),
                static_cast<unsigned>(g->where.line()));
  fatal(buf);
}

// ---------------------------------------------------------------- switching
// Switches from goroutine `from` (running on p) to goroutine `to`, or to p's
// scheduler context when `to` is null. Returns when `from` is resumed, on
// whatever thread resumes it. `from_done` means `from` has exited and will
// never resume. `act` is what the entered context runs first; null means
// "requeue `from`" (a yield), passed as a tagged transfer word.
__attribute__((always_inline)) inline void switch_from_g(P* p, G* from, G* to, Action* act, bool from_done) {
  if (from->stack_unguarded && !stack_canary_ok(from->stack)) [[unlikely]]
    stack_overflow(from);
  void** fake = from_done ? nullptr : &from->asan_fake_stack;
  const int san_depth = arch::san_depth_save();  // this fiber's scope depth, restored on resume
  void* transfer;
  if (to != nullptr) {
    if (to->stack == nullptr) g_prepare(p, to);
    p->curg = to;
    to->status.store(GStatus::running, std::memory_order_relaxed);
    arch::san_start_switch(fake, to->san);
    transfer = goro_ctx_switch(&from->sp, to->sp, transfer_word(act, from));
  } else {
    p->curg = nullptr;
    arch::san_start_switch(fake, p->g0_san);
    transfer = goro_ctx_switch(&from->sp, p->g0_sp, transfer_word(act, from));
  }
  arch::san_finish_switch(from->asan_fake_stack, nullptr);
  arch::san_depth_restore(san_depth);
  arch::san_acquire(&san_thread_start);
  run_action(transfer);
}

void run_timers(P* p, std::int64_t now);

// Queues goroutines readied by the netpoller on p; wakes another P to share
// them when there is more than one.
void inject(P* p, G** gs, int n) {
  for (int i = 0; i < n; ++i) runq_put(p, gs[i]);
  if (n > 1 && sched().nidle.load(std::memory_order_relaxed) > 0) wakep();
}

// A non-blocking poll, unless nobody waits on the network or a thread is
// blocked polling already (it gets the events). Returns how many goroutines
// it queued on p.
int poll_nonblocking(P* p) {
  Sched& s = sched();
  if (netpoll_waiters() == 0 || s.poll_blocked.load(std::memory_order_relaxed)) return 0;
  G* gs[kNetpollBatch];
  int n = netpoll(0, gs);
  s.last_poll_ns.store(mono_now_ns(), std::memory_order_relaxed);
  inject(p, gs, n);
  return n;
}

// The starvation guard (Go's sysmon does this): if every P stays busy, none
// reaches the idle path's poll, so a busy P polls when nobody has for
// kPollGuardNs. Not more often: goroutines it finds join the back of a
// non-empty queue, and polling busy Ps often enough to overflow their queues
// into the global one made service order uneven (echo p99).
void poll_if_starving(P* p) {
  constexpr std::int64_t kPollGuardNs = 10'000'000;
  if (netpoll_waiters() == 0) return;
  std::int64_t now = mono_now_ns();
  if (now - sched().last_poll_ns.load(std::memory_order_relaxed) < kPollGuardNs) return;
  poll_nonblocking(p);
}

// p's earliest timer is due at `now` (>= 0, a monotonic clock reading).
inline bool timer_due(const P* p, std::int64_t now) {
  return p->next_when.load(std::memory_order_relaxed) <= static_cast<std::uint64_t>(now);
}

// Under p->tlock: publishes the heap's minimum (INT64_MAX: none).
inline void set_next_when(P* p, std::int64_t when) {
  p->next_when.store(when == INT64_MAX ? P::kNoTimer : static_cast<std::uint64_t>(std::max<std::int64_t>(when, 0)),
                     std::memory_order_relaxed);
}

// The part of runnable_pick that runs only when a timer is pending or at
// every kGlobalCheckInterval-th tick. Returns kPickGoOn when pick should go
// on to the local queues, else what pick returns (possibly null). A return
// value rather than an out-parameter: runnable_pick is inlined in every
// switch path, and an out-parameter gave each of them a stack frame.
G* const kPickGoOn = reinterpret_cast<G*>(alignof(G));
__attribute__((noinline)) G* runnable_pick_rare(P* p, bool may_fire_timers, std::uint32_t tick) {
  if (p->next_when.load(std::memory_order_relaxed) != P::kNoTimer) {
    std::int64_t now = mono_now_ns();
    if (timer_due(p, now)) {
      if (!may_fire_timers) return nullptr;
      run_timers(p, now);
    }
  }
  if (tick % kGlobalCheckInterval == 0) {
    poll_if_starving(p);
    if (G* g = global_get(p, 1, true)) return g;
  }
  return kPickGoOn;
}

// The end of runnable_pick, when p's queue is empty: runnext (filled since
// it was looked at), then the global queue. Out of line so that the inline
// part stays short.
__attribute__((noinline)) G* runnable_pick_empty(P* p) {
  if (p->runnext.load(std::memory_order_relaxed) != nullptr) {
    if (G* g = p->runnext.exchange(nullptr, std::memory_order_acquire)) return g;
  }
  return global_get(p, RunQueue::kSize / 2);
}

// The quick search, done on the parking goroutine's own stack: never blocks,
// never steals. Returns null if p has no ready work (or is being deactivated).
// may_fire_timers: false when called from park(), whose caller may still
// hold a primitive's lock (its park hook releases it after the switch). A
// timer's callback may take that very lock (a timer sending on the channel
// its receiver is parking on), so then a due timer makes this return null:
// the switch goes to g0, which runs the timers with nothing held.
// Inline in the switch paths: what they need at every switch is a tick, two
// tests, a look at runnext and a queue pop; the rest is out of line
// (runnable_pick_rare, runnable_pick_empty).
inline G* runnable_pick(P* p, bool may_fire_timers, bool runnext_likely = false) {
  const std::uint32_t tick = p->schedtick.load(std::memory_order_relaxed) + 1;
  p->schedtick.store(tick, std::memory_order_relaxed);
  if (p->next_when.load(std::memory_order_relaxed) != P::kNoTimer || tick % kGlobalCheckInterval == 0) [[unlikely]] {
    G* g = runnable_pick_rare(p, may_fire_timers, tick);
    if (g != kPickGoOn) return g;
  }
  // runnext_streak counts runnext's runs in a row while the queue may be
  // waiting: past the limit the queue goes first if it holds anything, and
  // if it holds nothing the count starts again (so a ping-pong pair with
  // nothing else to run does not look at the queue at every switch).
  // runnext is looked at before it is exchanged unless the caller expects
  // it full: other threads fill it only by exchange (migrate_filter), so a
  // load that sees it empty loses nothing (what is put there meanwhile is
  // taken at the next pick), and an empty slot then costs no locked
  // instruction. A goroutine that parks has usually just readied its partner
  // there; one that yields usually has not.
  if (runnext_likely || p->runnext.load(std::memory_order_relaxed) != nullptr) {
    if (p->runnext_streak < kRunnextStreakMax) [[likely]] {
      if (G* g = p->runnext.exchange(nullptr, std::memory_order_acquire)) {
        ++p->runnext_streak;
        return g;
      }
    } else if (p->runq.empty()) {
      if (G* g = p->runnext.exchange(nullptr, std::memory_order_acquire)) {
        p->runnext_streak = 1;
        return g;
      }
    }
  }
  p->runnext_streak = 0;
  if (G* g = p->runq.pop()) [[likely]] return g;
  return runnable_pick_empty(p);
}

// GORO_DEBUG=migrate=1 (set once at start): a goroutine about to resume on
// the P it last ran on is handed to another active P instead (into its
// runnext slot, which any thread may exchange, and that P is woken), so code
// that keeps a thread_local's address across a blocking call fails in tests.
// A goroutine's `thread_wake` word (a plain thread's futex, unused by
// goroutines) remembers its last P, in this mode only, with kHandedOff set
// once it was handed away: wherever it is picked next (that P, or a stealer,
// even the P it left, when the other P is busy with a goroutine that does not
// yield), it runs there. So it is handed over at most once per resumption
// and can never bounce between Ps unrun.
bool g_migrate = false;  // set once at start, before any worker runs

// Every store of P::active goes through here (sched.h).
void set_active(P* p, bool on) {
  p->active.store(on, std::memory_order_release);
  p->quick_pick.store(on && !g_migrate, std::memory_order_release);
}
constexpr std::uint32_t kHandedOff = 0x80000000u;

G* migrate_filter(P* p, G* g, bool may_fire_timers) {
  Sched& s = sched();
  const std::uint32_t here = static_cast<std::uint32_t>(p->id) + 1;
  for (int bounce = 0; g != nullptr && bounce < 4; ++bounce) {
    if (g->thread_wake.load(std::memory_order_relaxed) != here || g->stack == nullptr) break;
    const int n = s.nstarted.load(std::memory_order_acquire);
    P* q = nullptr;
    for (int k = 0, start = static_cast<int>(fastrand(p) % static_cast<std::uint32_t>(n)); k < n; ++k) {
      P* c = s.ps[(start + k) % n];
      if (c != p && c->active.load(std::memory_order_acquire)) {
        q = c;
        break;
      }
    }
    if (q == nullptr) break;  // no other P: run it here
    g->thread_wake.store(here | kHandedOff, std::memory_order_relaxed);
    g->wait_since_ns = mono_now_ns();  // (a runnable G's wait time is unused: here, when it was handed over)
    if (G* old = q->runnext.exchange(g, std::memory_order_acq_rel)) global_put(old);
    wake_p(q);
    g = runnable_pick(p, may_fire_timers);
  }
  if (g != nullptr) g->thread_wake.store(here, std::memory_order_relaxed);
  return g;
}

// Stealing from q's runnext (migrate mode): leave a goroutine this P handed
// to q there for 5 ms, so q runs it; after that q is busy with a goroutine
// that does not yield, and this P takes it back.
bool migrate_keep(P* p, P* q) {
  if (!g_migrate) return false;
  G* g = q->runnext.load(std::memory_order_acquire);
  return g != nullptr &&
         g->thread_wake.load(std::memory_order_relaxed) == ((static_cast<std::uint32_t>(p->id) + 1) | kHandedOff) &&
         mono_now_ns() - g->wait_since_ns < 5'000'000;
}

__attribute__((noinline)) G* runnable_fast_slow(P* p, bool may_fire_timers) {
  if (!p->active.load(std::memory_order_acquire)) return nullptr;
  G* g = runnable_pick(p, may_fire_timers);
  if (g_migrate) g = migrate_filter(p, g, may_fire_timers);
  return g;
}

G* runnable_fast(P* p, bool may_fire_timers = true, bool runnext_likely = false) {
  if (!p->quick_pick.load(std::memory_order_acquire)) [[unlikely]] return runnable_fast_slow(p, may_fire_timers);
  return runnable_pick(p, may_fire_timers, runnext_likely);
}

// The status stores below come after the switch, so a diagnostics reader that
// sees `runnable` or `waiting` (acquire) sees the G's saved context too.
__attribute__((always_inline)) inline void requeue(G* prev) {
  prev->status.store(GStatus::runnable, std::memory_order_release);
  P* p = current_p();
  runq_put(p, prev);
  if (sched().nidle.load(std::memory_order_relaxed) > 0) [[unlikely]] wakep();
}

void action_unlock(G* prev, void* arg) {
  // Before the hook: once it runs, a waker may ready prev (runnable).
  prev->status.store(GStatus::waiting, std::memory_order_release);
  auto* u = static_cast<std::pair<void (*)(void*), void*>*>(arg);
  auto fn = u->first;
  void* a = u->second;
  if (fn != nullptr) fn(a);
}

void action_exit(G* prev, void*) {
  P* p = current_p();
  arch::san_destroy_fiber(prev->san.tsan);
  prev->san.tsan = nullptr;
  stack_put(p, prev->stack);
  prev->stack = nullptr;
  prev->stack_unguarded = false;
  if (prev->closure != prev->inline_closure)
    ::operator delete(prev->closure, std::align_val_t{std::size_t{1} << prev->closure_align_log2});
  prev->closure = nullptr;
  g_put(p, prev);
}

[[noreturn]] void g_exit(G* g) {
  arch::san_runtime_enter();  // never left: the fiber is destroyed in its scope
  P* p = current_p();
  g->status.store(GStatus::dead, std::memory_order_relaxed);
  p->nlive.store(p->nlive.load(std::memory_order_relaxed) - 1, std::memory_order_relaxed);
  Action act{&action_exit, g, nullptr};
  switch_from_g(p, g, runnable_fast(p), &act, true);
  fatal("dead goroutine resumed");
}

void g_entry(void* transfer, void* arg) {
  G* g = static_cast<G*>(arg);
  // The fiber starts inside a scope (san_create_fiber): runtime work first.
  arch::san_finish_switch(nullptr, nullptr);
  arch::san_depth_restore(1);
  arch::san_acquire(&san_thread_start);
  run_action(transfer);
  arch::san_edge_end(g->san_edge);  // the spawn happens before the goroutine
  g->san_edge = nullptr;
  arch::san_runtime_leave();
  try {
    g->thunk(g->closure);
  } catch (...) {
    die_of_panic(g, std::current_exception());
  }
  g_exit(g);
}

// ---------------------------------------------------------------- timers
// Sifts write each moved timer's heap_index, the one access they make
// outside the array.
void heap_up(std::vector<TimerSlot>& h, std::size_t i) {
  const TimerSlot x = h[i];
  while (i > 0) {
    std::size_t parent = (i - 1) / 4;
    if (!(x.when < h[parent].when)) break;
    h[i] = h[parent];
    h[i].t->heap_index = static_cast<std::int32_t>(i);
    i = parent;
  }
  h[i] = x;
  x.t->heap_index = static_cast<std::int32_t>(i);
}

void heap_down(std::vector<TimerSlot>& h, std::size_t i) {
  const TimerSlot x = h[i];
  const std::size_t n = h.size();
  for (;;) {
    std::size_t best = i;
    std::int64_t bw = x.when;
    for (std::size_t c = 4 * i + 1; c < std::min(n, 4 * i + 5); ++c) {
      if (h[c].when < bw) {
        best = c;
        bw = h[c].when;
      }
    }
    if (best == i) break;
    h[i] = h[best];
    h[i].t->heap_index = static_cast<std::int32_t>(i);
    i = best;
  }
  h[i] = x;
  x.t->heap_index = static_cast<std::int32_t>(i);
}

void heap_remove_locked(P* p, Timer* t) {
  auto& h = p->theap;
  std::size_t i = static_cast<std::size_t>(t->heap_index);
  const TimerSlot last = h.back();
  h.pop_back();
  if (last.t != t) {
    h[i] = last;
    last.t->heap_index = static_cast<std::int32_t>(i);
    heap_down(h, i);
    heap_up(h, static_cast<std::size_t>(last.t->heap_index));
  }
  t->heap_index = -1;
  t->owner.store(nullptr, std::memory_order_relaxed);
  set_next_when(p, h.empty() ? INT64_MAX : h[0].when);
}

void heap_add_locked(P* p, Timer* t) {
  p->theap.push_back(TimerSlot{t->when, t});
  heap_up(p->theap, p->theap.size() - 1);
  t->owner.store(p, std::memory_order_release);
  set_next_when(p, p->theap[0].when);
}

// Fires p's timers that are due at `now`. Any thread may run any P's timers.
void run_timers(P* p, std::int64_t now) {
  constexpr int kBatch = 32;
  for (;;) {
    if (!timer_due(p, now)) return;
    Timer* due[kBatch];
    int n = 0;
    p->tlock.lock();
    while (n < kBatch && !p->theap.empty() && p->theap[0].when <= now) {
      Timer* t = p->theap[0].t;
      heap_remove_locked(p, t);
      due[n++] = t;
    }
    p->tlock.unlock();
    {
      // A timer's own actions (sending the time, spawning an after_func)
      // are the runtime's, not a goroutine's: they state no edge.
      arch::SanQuiet quiet;
      for (int i = 0; i < n; ++i) due[i]->fire(due[i]);
    }
    if (n < kBatch) return;
  }
}

std::int64_t earliest_timer() {
  Sched& s = sched();
  int n = s.nstarted.load(std::memory_order_acquire);
  std::uint64_t w = P::kNoTimer;
  for (int i = 0; i < n; ++i) w = std::min(w, s.ps[i]->next_when.load(std::memory_order_relaxed));
  return w == P::kNoTimer ? INT64_MAX : static_cast<std::int64_t>(w);
}

// Moves all of `from`'s timers to `to` (P deactivation).
void migrate_timers(P* from, P* to) {
  from->tlock.lock();
  std::vector<TimerSlot> moving;
  moving.swap(from->theap);
  from->next_when.store(P::kNoTimer, std::memory_order_relaxed);
  to->tlock.lock();
  for (const TimerSlot& x : moving) heap_add_locked(to, x.t);
  to->tlock.unlock();
  from->tlock.unlock();
}

// ---------------------------------------------------------------- workers
// Takes q's runnext (the last round of stealing). A G there was readied by
// the goroutine running on q, which typically blocks moments later and then
// runs it on q, the core whose cache holds what the two share. Taken at
// once, nearly every readied goroutine moved across Ps (select_buffered at
// P=2: 184k of 218k readies) and producer and consumer contended on their
// channel locks from two cores, at 2.3x Go's time. So, as Go's runqgrab
// does, while q is not idle wait ~3 us first, sleeping (a spinning vCPU
// slowed its sibling on this VM: 100 ns per item against 67 ns), and take
// the G only if it is still there. Not under GORO_DEBUG=migrate=1, which
// moves goroutines between Ps on purpose (migrate_keep decides there): the
// wait doubled its test suite's slowest tests.
G* steal_runnext(P* q) {
  G* g = q->runnext.load(std::memory_order_relaxed);
  if (g == nullptr) return nullptr;
  if (!g_migrate && !q->in_idle.load(std::memory_order_relaxed)) {
    timespec ts{0, 3000};
    nanosleep(&ts, nullptr);
  }
  if (q->runnext.compare_exchange_strong(g, nullptr, std::memory_order_acquire, std::memory_order_relaxed)) return g;
  return nullptr;
}

G* steal_work(P* p) {
  Sched& s = sched();
  int n = s.nstarted.load(std::memory_order_acquire);
  G* buf[RunQueue::kSize / 2];
  std::int64_t now = mono_now_ns();
  for (int round = 0; round < 4; ++round) {
    std::uint32_t start = fastrand(p);
    for (int k = 0; k < n; ++k) {
      P* q = s.ps[(start + k) % n];
      if (q == p) continue;
      run_timers(q, now);
      if (G* g = p->runnext.exchange(nullptr, std::memory_order_acquire)) return g;  // a timer readied it
      if (!q->active.load(std::memory_order_acquire) && q->runq.empty()) continue;
      std::uint32_t got = q->runq.grab(buf);
      if (got == 0 && round == 3 && !migrate_keep(p, q)) {
        if (G* g = steal_runnext(q)) return g;
      }
      if (got == 0) continue;
      // Our own queue may be non-empty (timers run above ready into it).
      for (std::uint32_t i = 1; i < got; ++i) runq_put(p, buf[i]);
      return buf[0];
    }
  }
  return nullptr;
}

// The process is exiting: this P's thread stops for good, on g0 with no
// goroutine running and no lock held, so nothing it did can run under the
// static destructors, and no lock the exiting thread may need is held.
[[noreturn]] void freeze(P* p) {
  Sched& s = sched();
  p->spinning = false;
  s.frozen.fetch_add(1, std::memory_order_release);
  static std::atomic<std::uint32_t> never{0};
  for (;;) futex_wait(&never, 0);
}

// The world is being stopped (stop_the_world): p stops here, on g0 with no
// goroutine running and no lock held, keeping its queues and timers, until
// start_the_world. A P that is also inactive for set_max_procs stops here too
// and goes back to its deactivated sleep afterwards.
void stop_wait(P* p) {
  Sched& s = sched();
  std::uint32_t seq = s.stw_seq.load(std::memory_order_acquire);
  p->stw_stopped.store(true, std::memory_order_release);
  s.nstopped.fetch_add(1, std::memory_order_acq_rel);
  futex_wake(&s.nstopped, 1);
  while (s.stopping.load(std::memory_order_acquire)) {
    if (s.exiting.load(std::memory_order_acquire)) freeze(p);
    futex_wait(&s.stw_seq, seq, mono_now_ns() + 10'000'000);  // bounded: exit needs no wake
    seq = s.stw_seq.load(std::memory_order_acquire);
  }
  p->stw_stopped.store(false, std::memory_order_relaxed);
  s.nstopped.fetch_sub(1, std::memory_order_acq_rel);
  p->clock_ns.store(mono_now_ns(), std::memory_order_relaxed);  // after a sleep
}

// An active P other than `not_this` (the first found; null if none is, as
// while the world is stopped): where work and timers of an inactive P go.
P* some_active_p(P* not_this) {
  Sched& s = sched();
  const int n = s.nstarted.load(std::memory_order_acquire);
  for (int i = 0; i < n; ++i) {
    P* q = s.ps[i];
    if (q != not_this && q->active.load(std::memory_order_acquire)) return q;
  }
  return nullptr;
}

// The monitor sleeps while every P is idle or dormant; a P leaving either
// state wakes it (after its seq_cst decrement of nidle or ndormant: the
// Dekker pair of sysmon_may_sleep).
void sysmon_wake_if_asleep() {
  if (sched().sysmon_asleep.load(std::memory_order_seq_cst)) diag::monitor_poke(diag::kSysmon);
}

// A deactivated P (set_max_procs, or handed off by the monitor) hands its
// work away and sleeps, dormant, until reactivated.
void deactivate(P* p) {
  Sched& s = sched();
  if (s.exiting.load(std::memory_order_acquire)) freeze(p);
  if (s.stopping.load(std::memory_order_acquire)) {
    stop_wait(p);
    if (p->active.load(std::memory_order_acquire)) return;
  }
  reset_spinning(p);
  if (G* g = p->runnext.exchange(nullptr)) global_put(g);
  while (G* g = p->runq.pop()) global_put(g);
  // An active P takes the timers (while the world stops none is: they stay,
  // and idle Ps and the monitor still fire any P's due timers).
  if (P* to = some_active_p(p)) migrate_timers(p, to);
  wakep();
  p->dormant.store(true, std::memory_order_relaxed);
  s.ndormant.fetch_add(1, std::memory_order_seq_cst);
  while (!p->active.load(std::memory_order_acquire)) {
    std::uint32_t seq = p->wake_seq.load(std::memory_order_acquire);
    if (p->active.load(std::memory_order_acquire)) break;
    if (s.exiting.load(std::memory_order_acquire)) freeze(p);
    if (s.stopping.load(std::memory_order_acquire)) {
      stop_wait(p);
      continue;
    }
    futex_wait(&p->wake_seq, seq);
  }
  p->dormant.store(false, std::memory_order_relaxed);
  s.ndormant.fetch_sub(1, std::memory_order_seq_cst);
  p->clock_ns.store(mono_now_ns(), std::memory_order_relaxed);  // after a sleep
  sysmon_wake_if_asleep();
}

// Parks p's thread until woken or until the earliest timer. On return p is
// off the idle list.
void idle_sleep(P* p) {
  Sched& s = sched();
  // Stop spinning before going on the idle list: once there, a waker may set
  // `spinning` again on our behalf (under Sched::lock).
  if (p->spinning) {
    p->spinning = false;
    s.nspinning.fetch_sub(1, std::memory_order_seq_cst);
  }
  std::uint32_t seq = p->wake_seq.load(std::memory_order_acquire);
  s.lock.lock();
  s.idle.push_back(p);
  p->in_idle.store(true, std::memory_order_relaxed);
  const int idle_now = s.nidle.fetch_add(1, std::memory_order_seq_cst) + 1;  // pairs with wakep's RMW
  const int dormant_now = s.ndormant.load(std::memory_order_relaxed);
  s.lock.unlock();
  std::int64_t deadline = earliest_timer();
  // The last P to go idle asks the monitor whether the program is deadlocked
  // (a cheap pre-filter first: with a timer armed, a network wait or a
  // blocking call in flight it cannot be, and servers go idle often; with
  // work queued it is not, and this P does not sleep but goes back for it:
  // a P woken for a goroutine still counts as idle until it runs, so a
  // spawn-and-join at GOMAXPROCS=2 met this state at most bursts, and each
  // poke woke the monitor for a check and its recheck 1 ms later).
  if (idle_now + dormant_now == s.nstarted.load(std::memory_order_relaxed) && deadline == INT64_MAX &&
      netpoll_waiters() == 0 && blocking_inflight() == 0 && !any_work())
    diag::monitor_poke(diag::kCheckDeadlock);
  bool polled = false;
  if (!any_work() && deadline > mono_now_ns() && p->active.load(std::memory_order_acquire)) {
    if (netpoll_waiters() > 0 && !s.poll_blocked.exchange(true, std::memory_order_acquire)) {
      // Become the poller: block in the netpoller until I/O, the earliest
      // timer, or a wake_p (which interrupts it, see wake_p).
      p->polling.store(true, std::memory_order_seq_cst);
      G* gs[kNetpollBatch];
      int n = 0;
      if (p->wake_seq.load(std::memory_order_seq_cst) == seq) n = netpoll(deadline, gs);
      p->polling.store(false, std::memory_order_relaxed);
      s.last_poll_ns.store(mono_now_ns(), std::memory_order_relaxed);
      s.poll_blocked.store(false, std::memory_order_release);
      for (int i = 0; i < n; ++i) runq_put(p, gs[i]);
      polled = n > 0;
    } else {
      futex_wait(&p->wake_seq, seq, deadline == INT64_MAX ? -1 : deadline);
    }
  }
  s.lock.lock();
  if (p->in_idle.load(std::memory_order_relaxed)) {
    s.idle.erase(std::find(s.idle.begin(), s.idle.end(), p));
    p->in_idle.store(false, std::memory_order_relaxed);
    s.nidle.fetch_sub(1, std::memory_order_seq_cst);
    s.idle_epoch.fetch_add(1, std::memory_order_seq_cst);
  }
  s.lock.unlock();
  p->clock_ns.store(mono_now_ns(), std::memory_order_relaxed);  // after a sleep
  sysmon_wake_if_asleep();
  // We run what the poll found; wake another P to take over the polling (and
  // to share the batch if it is large).
  if (polled) wakep();
}

// Stacks per trim call from the scheduler (find_runnable, the monitor): a
// chunk at a time, so that new work is noticed between chunks. TSan builds
// re-map each trimmed stack to reset its shadow: smaller chunks.
constexpr std::size_t kIdleTrimChunk = arch::kTsan ? kTrimChunk / 16 : kTrimChunk;

G* find_runnable(P* p) {
  Sched& s = sched();
  for (;;) {
    if (!p->active.load(std::memory_order_acquire)) {
      deactivate(p);
      continue;
    }
    if (G* g = runnable_fast(p)) {
      reset_spinning(p);
      return g;
    }
    if (poll_nonblocking(p) > 0) continue;
    int busy = s.nprocs.load(std::memory_order_relaxed) - s.nidle.load(std::memory_order_relaxed);
    if (p->spinning || 2 * s.nspinning.load(std::memory_order_relaxed) < busy) {
      if (!p->spinning) {
        p->spinning = true;
        s.nspinning.fetch_add(1, std::memory_order_seq_cst);
      }
      G* g = steal_work(p);
      if (g_migrate && g != nullptr) [[unlikely]] g = migrate_filter(p, g, true);
      if (g != nullptr) {
        reset_spinning(p);
        return g;
      }
    }
    // Nothing to run: hand back pooled stack memory, a chunk at a time so
    // that new work is noticed between chunks, then sleep. Only if every
    // other P is idle too: while one is busy, a burst may be under way that
    // takes these stacks again (each would fault its pages back in), and a
    // P that never idles is the monitor's case (stack_trim_settled).
    if (s.nidle.load(std::memory_order_relaxed) + s.ndormant.load(std::memory_order_relaxed) + 1 >=
            s.nstarted.load(std::memory_order_relaxed) &&
        stack_trim(false, kIdleTrimChunk) > 0)
      continue;
    idle_sleep(p);
  }
}

void worker_main(P* p) {
  arch::san_runtime_enter();  // g0 runs only the scheduler, for life
  arch::san_release(&san_thread_start);
  tls_p = p;
  p->tid.store(gettid(), std::memory_order_release);
  p->clock_ns.store(mono_now_ns(), std::memory_order_relaxed);
  diag::runtime_thread_add(__builtin_frame_address(0));
  install_altstack();
  p->g0_san.tsan = arch::san_current_fiber();
  if constexpr (arch::kAsan) {
    pthread_attr_t attr;
    if (pthread_getattr_np(pthread_self(), &attr) == 0) {
      void* addr = nullptr;
      std::size_t size = 0;
      pthread_attr_getstack(&attr, &addr, &size);
      p->g0_san.stack_bottom = addr;
      p->g0_san.stack_size = size;
      pthread_attr_destroy(&attr);
    }
  }
  for (;;) {
    G* g = find_runnable(p);
    if (g->stack == nullptr) g_prepare(p, g);
    p->curg = g;
    g->status.store(GStatus::running, std::memory_order_relaxed);
    arch::san_start_switch(&p->g0_fake_stack, g->san);
    const int san_depth = arch::san_depth_save();
    void* transfer = goro_ctx_switch(&p->g0_sp, g->sp, &kNoAction);
    arch::san_finish_switch(p->g0_fake_stack, nullptr);
    arch::san_depth_restore(san_depth);
    run_action(transfer);
  }
}

// Starts the thread of P slot i, creating the P (Sched::lock held).
P* new_p_locked(Sched& s) {
  const int i = s.nstarted.load(std::memory_order_relaxed);
  P* p = new P(i);
  p->rng = 0x9E3779B97F4A7C15ULL * static_cast<std::uint64_t>(i + 1);
  s.ps[i] = p;
  s.nstarted.store(i + 1, std::memory_order_release);
  return p;
}

// Makes p active and gets its thread going (Sched::lock held). A P that was
// inactive leaves dormancy: that bumps idle_epoch, which the deadlock check
// reads as "something may have run".
void activate_locked(Sched& s, P* p) {
  set_active(p, true);
  s.idle_epoch.fetch_add(1, std::memory_order_seq_cst);
  if (!p->started) {
    p->started = true;
    diag::start_runtime_thread([p] { worker_main(p); });
  } else {
    wake_p(p);
  }
}

// Makes exactly n Ps active (Sched::lock held): deactivates the active ones
// with the highest ids, or activates inactive ones (dormant first, then
// lowest id) and creates Ps only when there are none.
void set_active_locked(Sched& s, int n) {
  if (s.exiting.load(std::memory_order_acquire)) return;  // exit is final
  const int started = s.nstarted.load(std::memory_order_relaxed);
  int active = 0;
  for (int i = 0; i < started; ++i) active += s.ps[i]->active.load(std::memory_order_relaxed) ? 1 : 0;
  for (int i = started - 1; i >= 0 && active > n; --i) {
    P* p = s.ps[i];
    if (!p->active.load(std::memory_order_relaxed)) continue;
    set_active(p, false);
    wake_p(p);  // to notice it at its next scheduling point
    --active;
  }
  for (int pass = 0; pass < 2 && active < n; ++pass) {
    for (int i = 0; i < started && active < n; ++i) {
      P* p = s.ps[i];
      if (p->active.load(std::memory_order_relaxed)) continue;
      if (pass == 0 && !p->dormant.load(std::memory_order_relaxed)) continue;
      activate_locked(s, p);
      ++active;
    }
  }
  while (active < n && s.nstarted.load(std::memory_order_relaxed) < kMaxSlots) {
    activate_locked(s, new_p_locked(s));
    ++active;
  }
}

int initial_procs() {
  if (const char* e = std::getenv("GOMAXPROCS")) {
    int n = std::atoi(e);
    if (n >= 1) return std::min(n, kMaxProcs);
  }
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof set, &set) == 0) return std::clamp(CPU_COUNT(&set), 1, kMaxProcs);
  return std::clamp(static_cast<int>(std::thread::hardware_concurrency()), 1, kMaxProcs);
}

// Go's habit: a server wants every descriptor the hard limit allows.
void raise_nofile_limit() {
  rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
}

// ---------------------------------------------------------------- exit
// Go ends the process with main: no goroutine runs while the process tears
// down. C++ runs static destructors (and atexit handlers) at exit, on the
// exiting thread, while workers would go on running goroutines that use the
// objects being destroyed. So exit begins by stopping the world, for good:
//  - The handler is registered with on_exit when the runtime starts, and
//    again each time run() returns to a plain thread (capped). Handlers and
//    static destructors run in reverse order of registration, so it runs
//    before the destructors of every static built before that point: those
//    built before the runtime started (package-level channels, maps, mutexes)
//    and those built while run()'s main ran.
//  - It marks every P inactive and wakes them; each P's thread freezes at its
//    next scheduling point (freeze()), on g0, holding nothing. Pool threads
//    start no new goroutine::blocking job.
//  - It waits until every P has frozen and no blocking job runs. A goroutine
//    that does not reach a scheduling point within kExitGrace (a long
//    computation, a call blocking its thread) cannot be stopped: then the
//    process ends at once with the exit status, as Go's does, after flushing
//    stdio (from a helper thread, since a running goroutine may hold a stdio
//    lock), without running the static destructors that would race with it.
constexpr auto kExitGrace = std::chrono::milliseconds(250);

void flush_stdio_bounded_impl() {
  std::atomic<std::uint32_t> done{0};
  std::thread t([&] {
    std::fflush(nullptr);
    done.store(1, std::memory_order_release);
    futex_wake(&done, 1);
  });
  std::int64_t deadline = mono_now_ns() + 100'000'000;
  while (done.load(std::memory_order_acquire) == 0 && mono_now_ns() < deadline) futex_wait(&done, 0, deadline);
  if (done.load(std::memory_order_acquire) != 0) {
    t.join();
  } else {
    t.detach();  // the process ends now; `done` outlives nothing that matters
  }
}

void on_process_exit(int status, void*) {
  arch::SanRuntimeScope san;
  Sched& s = sched();
  if (s.exiting.exchange(true, std::memory_order_seq_cst)) return;  // done by an earlier registration
  P* self = tls_p;  // exit() called from a goroutine: this P's thread is the one exiting
  s.lock.lock();
  int n = s.nstarted.load(std::memory_order_relaxed);
  for (int i = 0; i < n; ++i) set_active(s.ps[i], false);
  s.lock.unlock();
  for (int i = 0; i < n; ++i) {
    if (s.ps[i] != self) wake_p(s.ps[i]);
  }
  int need = n - (self != nullptr ? 1 : 0);
  auto deadline = std::chrono::steady_clock::now() + kExitGrace;
  while (s.frozen.load(std::memory_order_acquire) < need ||
         s.blocking_running.load(std::memory_order_seq_cst) > 0) {
    if (std::chrono::steady_clock::now() >= deadline) {
      arch::san_runtime_leave();  // the helper thread's creation must order it after us (TSan)
      flush_stdio_bounded_impl();
      _exit(status);
    }
    std::this_thread::sleep_for(std::chrono::microseconds(50));
  }
  // TSan: every goroutine's last action happens before the destructors.
  // No goroutine runs now, so each one's fiber can state that for it.
  if constexpr (arch::kTsan) {
    static char exit_sync;
    s.lock.lock();
    for (G* g = s.allgs; g != nullptr; g = g->all_next) {
      if (!g->is_thread && g->san.tsan != nullptr && g != current_g())
        arch::san_as_fiber(g->san.tsan, [] { arch::san_release(&exit_sync); });
    }
    s.lock.unlock();
    arch::san_release(&exit_sync);  // a goroutine calling exit: its own history too
    arch::san_acquire(&exit_sync);
  }
}

void register_exit_handler() {
  static std::atomic<int> registrations{0};
  if (registrations.fetch_add(1, std::memory_order_relaxed) < 1024) on_exit(&on_process_exit, nullptr);
}

void start_runtime() {
  Sched& s = sched();
  register_exit_handler();
  raise_nofile_limit();
  if (const char* e = std::getenv("GORO_STACK_SIZE")) {
    long long v = std::atoll(e);
    if (v > 0) s.default_stack.store(static_cast<std::size_t>(v));
  }
  install_fault_handler();
  diag::monitor_start();
  g_migrate = diag::debug_option("migrate") > 0;
  int n = initial_procs();
  s.lock.lock();
  s.nprocs.store(n, std::memory_order_release);
  set_active_locked(s, n);
  s.lock.unlock();
}

// A plain thread parked in a goro primitive is listed (with its thread id) for
// the deadlock check, which counts it as unable to act while its wake word is
// 0. Listed after the unlock hook: a thread not yet listed counts as running,
// which can only prevent a report.
void plain_park_begin(G* t) {
  Sched& s = sched();
  static thread_local pid_t tid = gettid();
  bool all_idle;
  {
    std::lock_guard<std::mutex> lk(s.plain_mu);
    s.plain_parked.emplace_back(t, tid);
    all_idle = s.nidle.load(std::memory_order_relaxed) + s.ndormant.load(std::memory_order_relaxed) ==
               s.nstarted.load(std::memory_order_relaxed);
  }
  if (all_idle) diag::monitor_poke(diag::kCheckDeadlock);
}

void plain_park_end(G* t) {
  Sched& s = sched();
  std::lock_guard<std::mutex> lk(s.plain_mu);
  s.plain_epoch.fetch_add(1, std::memory_order_seq_cst);
  for (auto& e : s.plain_parked) {
    if (e.first == t) {
      e = s.plain_parked.back();
      s.plain_parked.pop_back();
      break;
    }
  }
}

// The pseudo-G of a plain thread, for park/ready.
G& thread_g() {
  thread_local G g;
  g.is_thread = true;
  return g;
}

}  // namespace

P* blocking_enter(G* g) {
  Sched& s = sched();
  P* p = current_p();
  if (p == nullptr || !p->active.load(std::memory_order_relaxed)) return nullptr;
  // A hand-off needs a spare: a dormant P or room for a new one, and fewer
  // than kMaxHandedOff handed off (read racily: a hint; when it is wrong the
  // call still runs, and at worst its P's work waits, as with no spare).
  const int started = s.nstarted.load(std::memory_order_acquire);
  int handed = 0;
  for (int i = 0; i < started; ++i) {
    P* q = s.ps[i];
    handed += !q->active.load(std::memory_order_relaxed) && !q->dormant.load(std::memory_order_relaxed) ? 1 : 0;
  }
  if (handed >= kMaxHandedOff) return nullptr;
  if (p->sysstack == nullptr) p->sysstack = stack_alloc_global(stack_class_for(kSystemStackBytes));
  p->blocking_g.store(g, std::memory_order_relaxed);
  tls_inline = {g, p->sysstack};
  tls_p = nullptr;  // a plain thread until blocking_leave
  return p;
}

void blocking_leave(P* p) {
  tls_p = p;  // the goroutine could not park meanwhile: still on this thread and P
  tls_inline = {};
  // A new tick first, then the release that clears blocking_g: a monitor
  // round that sees blocking_g cleared (acquire) sees the new tick too, so
  // the time spent in the call never counts as running (a false stall
  // report, or a hand-off, the moment the call returns). Only this thread
  // writes blocking_g while it holds p (the monitor and stop_the_world only
  // read it): plain stores.
  p->schedtick.store(p->schedtick.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  p->blocking_g.store(nullptr, std::memory_order_release);
  if (!p->active.load(std::memory_order_acquire)) goro::yield();  // handed off meanwhile
}

InlineCall inline_call() { return tls_inline; }

const char kInBlocking[] = "blocking";

void lock_wait_begin() {
  if (P* p = tls_p) p->lock_waits.fetch_add(1, std::memory_order_relaxed);
}
void lock_wait_end() {
  if (P* p = tls_p) p->lock_waits.fetch_sub(1, std::memory_order_relaxed);
}

#ifndef GORO_HAVE_TLS_LOAD
// Not inlined, and opaque to the optimizer: a goroutine may resume on another
// thread after any switch, so the address of tls_p must be recomputed after
// every call that can switch. A function the compiler cannot see into is
// re-called each time. (Where arch/tls.h has a load sequence, current_p is
// inline in sched.h instead.)
__attribute__((noinline)) P* current_p() {
  P* p = tls_p;
  asm volatile("" : "+r"(p)::"memory");
  return p;
}
#endif

G* thread_waiter() { return &thread_g(); }

void ensure_started() {
  arch::SanRuntimeScope san;
  static std::once_flag once;
  std::call_once(once, start_runtime);
}

void* stack_mark() {
  void* p = __builtin_frame_address(0);
  asm volatile("" : "+r"(p));
  return p;
}

namespace {
// A plain thread parks on its wake word. Every callee-saved register is
// spilled into this frame first and `sp` marks the stack below it, so that
// while the thread is parked, everything its code can still use lies in
// memory at or above `sp` (the leak proof scans it; src/diag/reach.cc).
__attribute__((noinline)) void park_thread(void (*unlock)(void*), void* arg) {
  __builtin_unwind_init();
  G& t = thread_g();
  t.sp = stack_mark();
  if (unlock != nullptr) unlock(arg);
  plain_park_begin(&t);
  // The wake word stays 1 until the thread is off the parked list, so the
  // deadlock check never counts a woken thread as parked.
  while (t.thread_wake.load(std::memory_order_acquire) == 0) futex_wait(&t.thread_wake, 0);
  plain_park_end(&t);
  t.thread_wake.store(0, std::memory_order_relaxed);  // consumed (one ready per park)
  asm volatile("" ::: "memory");  // keep the spill slots alive until here
}
}  // namespace

namespace {
// park()'s work once it knows the parking goroutine: act(g, act_arg) runs
// on the next context (hooked: it releases a lock).
inline void park_g(P* p, G* g, const char* reason, void (*act)(G*, void*), void* act_arg, bool hooked) {
  g->wait_reason = reason;
  g->wait_since_ns = p->clock_ns.load(std::memory_order_relaxed);  // ARCHITECTURE "Wait start"
  Action a{act, g, act_arg};
  G* to = runnable_fast(p, false, true);
  if (to != nullptr && to->stack == nullptr && hooked) [[unlikely]] {
    // A goroutine's first run allocates its stack and faults in its first
    // page (microseconds on a VM), and the hook's lock would be held
    // meanwhile: it is released only after the switch. With a million
    // goroutines parking on one WaitGroup, the other P then spun and slept
    // on that lock (GOMAXPROCS=2: 246k futex calls). So go through g0: it
    // runs the hook, then prepares and runs `to`, put back into runnext.
    if (G* old = p->runnext.exchange(to, std::memory_order_release)) runq_put(p, old);
    to = nullptr;
  }
  switch_from_g(p, g, to, &a, false);
  g->wait_reason = nullptr;
}
}  // namespace

void park(const char* reason, void (*unlock)(void*), void* arg) {
  P* p = current_p();
  G* g = p != nullptr ? p->curg : nullptr;
  if (g == nullptr) {
    park_thread(unlock, arg);
    return;
  }
  std::pair<void (*)(void*), void*> u{unlock, arg};
  park_g(p, g, reason, &action_unlock, &u, unlock != nullptr);
}

void park_action(const char* reason, void (*act)(G*, void*), void (*unlock)(void*), void* arg) {
  P* p = current_p();
  G* g = p != nullptr ? p->curg : nullptr;
  if (g == nullptr) {
    park_thread(unlock, arg);
    return;
  }
  park_g(p, g, reason, act, arg, true);
}

void ready_backlog(P* p, G* old) {
  if (old != nullptr) runq_put(p, old);
  wakep();
}

void ready_slow(G* g, bool next) {
  if (g->is_thread) {
    // Release pairs with the acquire load in park(). Then plain_epoch, for
    // the deadlock check: a readier may exit before the check lists the
    // process's threads, and the thread it woke may not have run yet, so
    // the wake-up itself must show. Word first, epoch second (release):
    // a check whose epoch read (acquire) sees this increment also sees
    // the word set (sched_quiescent).
    g->thread_wake.store(1, std::memory_order_release);
    sched().plain_epoch.fetch_add(1, std::memory_order_seq_cst);
    futex_wake(&g->thread_wake, 1);
    return;
  }
  g->status.store(GStatus::runnable, std::memory_order_release);
  P* p = current_p();
  if (p == nullptr || !p->active.load(std::memory_order_relaxed)) {
    global_put(g);
    wakep();
    return;
  }
  if (!next) {
    runq_put(p, g);
    wakep();
    return;
  }
  // runnext: the readied G runs as soon as the current one blocks, on this P
  // (a ping-pong pair stays on one core). No other P is woken for it unless
  // there is a backlog, since this P will run it at its next switch.
  G* old = p->runnext.exchange(g, std::memory_order_release);
  if (old != nullptr) runq_put(p, old);
  if (old != nullptr || !p->runq.empty()) wakep();
}

void ready_list(G* head, G* tail, std::uint32_t n) {
  if (head == nullptr) return;
  P* p = current_p();
  if (p != nullptr && p->active.load(std::memory_order_relaxed)) {
    while (head != nullptr) {
      // Read the link first: once pushed, g may be stolen, run, and put on
      // the global queue, which rewrites it.
      G* next = head->sched_next;
      if (!p->runq.push(head)) break;
      head = next;
      --n;
    }
  }
  if (head != nullptr) {
    Sched& s = sched();
    s.lock.lock();
    // Every G readied here parked, so has run: the resumed list, in one
    // splice (HACKING rule 15).
    if (s.rtail != nullptr) s.rtail->sched_next = head; else s.rhead = head;
    s.rtail = tail;
    s.gsize.store(s.gsize.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
    s.lock.unlock();
  }
  wakep();
}

void poll_wanted() {
  Sched& s = sched();
  if (s.poll_blocked.load(std::memory_order_relaxed) || s.nidle.load(std::memory_order_relaxed) == 0) return;
  poke_idle();
}

void timer_add(Timer* t) {
  ensure_started();
  P* p = current_p();
  // A plain thread's timer, or one added on a P that is no longer active
  // (handed off: its goroutine runs on), goes to an active P, which runs it.
  if (p == nullptr || !p->active.load(std::memory_order_relaxed)) {
    if (P* q = some_active_p(nullptr)) p = q;
    else if (p == nullptr) p = sched().ps[0];  // none while the world stops: idle Ps fire any P's timers
  }
  p->tlock.lock();
  heap_add_locked(p, t);
  bool earliest = p->theap[0].t == t;
  p->tlock.unlock();
  if (earliest) poke_idle();
}

bool timer_del(Timer* t) {
  for (;;) {
    P* p = t->owner.load(std::memory_order_acquire);
    if (p == nullptr) return false;
    p->tlock.lock();
    if (t->owner.load(std::memory_order_relaxed) == p) {
      heap_remove_locked(p, t);
      p->tlock.unlock();
      return true;
    }
    p->tlock.unlock();
  }
}

// seq_cst: blocking_begin's increment then exiting()'s load, against the
// exit handler's store of `exiting` then its load of the count (a Dekker
// pair: a job either sees `exiting` or is waited for).
bool exiting() { return sched().exiting.load(std::memory_order_seq_cst); }
void blocking_begin() { sched().blocking_running.fetch_add(1, std::memory_order_seq_cst); }
void blocking_end() { sched().blocking_running.fetch_sub(1, std::memory_order_release); }

// ---------------------------------------------------------------- stopping the world
// stw_mu from a goroutine: yield until it is free instead of blocking the
// worker, whose P must be able to stop for the stop in progress.
void lock_stw(Sched& s) {
  if (current_g() == nullptr) {
    s.stw_mu.lock();
    return;
  }
  while (!s.stw_mu.try_lock()) goro::yield();
}

// Diagnostics read every goroutine's descriptor and copy parked goroutines'
// stacks while no P runs a goroutine. Each P stops at its next scheduling
// point (runnable_fast and find_runnable check `active` first, so a P that
// sees it false switches to g0 and reaches stop_wait before running anything
// else); idle and polling Ps are woken to do the same. A P whose goroutine
// computes without a scheduling point cannot be stopped: after `timeout_ns`
// the caller goes on without it (that goroutine is shown as running; it
// cannot resume any other goroutine before it stops, for the same reason).
void stop_the_world(WorldStop& w, std::int64_t timeout_ns) {
  Sched& s = sched();
  ensure_started();
  lock_stw(s);
  w.self = current_p();
  s.stopping.store(true, std::memory_order_seq_cst);
  // Not waited for: a P whose goroutine blocks its thread (handed off, or
  // inside goro::blocking's inline call): it reaches no scheduling point
  // soon, and it cannot resume another goroutine before it does. It still
  // counts against all_stopped.
  bool skip[kMaxSlots] = {};
  s.lock.lock();
  w.nprocs = s.nstarted.load(std::memory_order_relaxed);
  for (int i = 0; i < w.nprocs; ++i) {
    P* q = s.ps[i];
    w.was_active[i] = q->active.load(std::memory_order_relaxed);
    G* bg = q->blocking_g.load(std::memory_order_relaxed);
    skip[i] = (!w.was_active[i] && !q->dormant.load(std::memory_order_relaxed)) ||
              (bg != nullptr && bg == __atomic_load_n(&q->curg, __ATOMIC_RELAXED));
    set_active(q, false);
  }
  s.lock.unlock();
  for (int i = 0; i < w.nprocs; ++i) {
    if (s.ps[i] != w.self) wake_p(s.ps[i]);
  }
  auto stopped = [&](bool all) {
    for (int i = 0; i < w.nprocs; ++i) {
      P* q = s.ps[i];
      if (q != w.self && (all || !skip[i]) && !q->stw_stopped.load(std::memory_order_acquire)) return false;
    }
    return true;
  };
  const std::int64_t deadline = mono_now_ns() + timeout_ns;
  for (;;) {
    std::uint32_t n = s.nstopped.load(std::memory_order_acquire);
    if (stopped(false) || mono_now_ns() >= deadline || s.exiting.load(std::memory_order_acquire)) break;
    futex_wait(&s.nstopped, n, std::min(deadline, mono_now_ns() + 1'000'000));
  }
  w.all_stopped = stopped(true);
}

void start_the_world(WorldStop& w) {
  Sched& s = sched();
  s.lock.lock();
  if (!s.exiting.load(std::memory_order_seq_cst)) {  // exit is final (HACKING rule 9)
    for (int i = 0; i < w.nprocs; ++i) set_active(s.ps[i], w.was_active[i]);
  }
  s.lock.unlock();
  s.stopping.store(false, std::memory_order_seq_cst);
  s.stw_seq.fetch_add(1, std::memory_order_release);
  futex_wake(&s.stw_seq, INT32_MAX);
  s.stw_mu.unlock();
}

// The scheduler's half of the deadlock check (the proof is in
// docs/ARCHITECTURE.md, "Deadlock reports"): no P runs or can find work, no
// timer is armed, nothing waits on the network or a goro::blocking call, and
// the world is not being stopped or torn down. `epoch` changes whenever a P
// leaves the idle list or a parked plain thread wakes; equal epochs around
// two successful checks mean nothing ran in between. `tids` gets the worker
// threads and the plain threads parked now (wake word still 0).
void flush_stdio_bounded() { flush_stdio_bounded_impl(); }

bool sched_quiescent(std::uint64_t& epoch, std::vector<pid_t>* tids) {
  Sched& s = sched();
  if (s.stopping.load(std::memory_order_seq_cst) || s.exiting.load(std::memory_order_seq_cst)) return false;
  // Under Sched::lock: nidle, idle_epoch, the idle list and the global
  // queue change only with it held, so these reads are one consistent cut
  // (wakep raises nspinning just before it takes the lock to pop an idle P,
  // which bumps idle_epoch). The local queues change only through their own
  // running P (an idle P pushes nothing) or by being emptied.
  s.lock.lock();
  const int n = s.nstarted.load(std::memory_order_relaxed);
  std::uint64_t idle_epoch = s.idle_epoch.load(std::memory_order_relaxed);
  // Every P idle or dormant: a dormant P leaves dormancy only when
  // reactivated under the lock, which bumps idle_epoch; a handed-off P (its
  // goroutine still runs) is neither.
  bool quiet = n > 0 && s.nidle.load(std::memory_order_relaxed) + s.ndormant.load(std::memory_order_relaxed) == n &&
               s.nspinning.load(std::memory_order_relaxed) == 0 && s.gsize.load(std::memory_order_relaxed) == 0;
  s.lock.unlock();
  if (!quiet || any_work() || netpoll_waiters() != 0 || blocking_inflight() != 0 || timers_pending() != 0) return false;
  std::lock_guard<std::mutex> lk(s.plain_mu);
  // Epoch first (acquire), wake words after: a read that sees a ready()'s
  // increment also sees its wake word. So a thread counted as parked below
  // had not been readied when the epoch was read, and if it is readied
  // before the second check, that check reads a different epoch (unless
  // the readier is still running then, and the enumeration meets it).
  epoch = idle_epoch * 0x9E3779B97F4A7C15ULL + s.plain_epoch.load(std::memory_order_acquire);
  if (tids != nullptr) {
    for (int i = 0; i < n; ++i) tids->push_back(s.ps[i]->tid.load(std::memory_order_acquire));
    for (auto& e : s.plain_parked) {
      if (e.first->thread_wake.load(std::memory_order_acquire) == 0) tids->push_back(e.second);
    }
  }
  return true;
}

// ---------------------------------------------------------------- the monitor (sysmon)
namespace {

// A P's progress as the monitor sees it: scheduling decisions and spawns (a
// goroutine that spawns in a loop makes work for others; it is not stuck).
std::uint32_t progress(P* p) {
  return p->schedtick.load(std::memory_order_relaxed) +
         static_cast<std::uint32_t>(p->nspawned.load(std::memory_order_relaxed));
}

// Whether p, stuck, sits on work no other P can take: its own queue,
// runnext or due timers, or global work, while no P is idle or spinning.
// With an idle P about, waking it is enough: a spinning P steals p's queue
// (runnext too) and runs any P's due timers, and a P that spawns or readies
// goroutines for a while without parking (not stuck: producing) keeps its P.
bool stuck_with_work(Sched& s, P* p, std::int64_t now) {
  const bool local = !p->runq.empty() || p->runnext.load(std::memory_order_relaxed) != nullptr ||
                     timer_due(p, now);
  if (!local && s.gsize.load(std::memory_order_relaxed) == 0) return false;
  if (s.nidle.load(std::memory_order_relaxed) > 0 || s.nspinning.load(std::memory_order_relaxed) > 0) {
    wakep();
    return false;
  }
  return true;
}

// Whether the thread of p, whose goroutine has run `ran` ns without a
// scheduling point while work waits, is stuck in a way a hand-off cures.
// The kernel tells (/proc/self/task/<tid>/stat and schedstat):
//  - asleep, interruptibly ('S': a read of a pipe or socket, a sleep, a
//    futex such as a std::mutex) in two rounds kBlockedNs apart with no
//    CPU time in between: a blocking call -> hand off, as Go's sysmon does
//    for a P in a syscall after one tick;
//  - asleep uninterruptibly ('D': disk I/O, or the kernel's own locks, as a
//    page fault waits on a loaded machine) -> hand off once two sample
//    windows of 2 ms running found it off the CPU and not waiting for one
//    (judge_window: a look that finds it 'R' never counts as off the CPU);
//  - runnable ('R'): computing -> hand off once it has run kComputeNs, Go's
//    preemption threshold, on the CPU most of a window; but not if it was
//    mostly waiting for a CPU (more busy threads than cores): another
//    thread would wait for the same cores.
// Waiting for one of the runtime's own locks is never stuck (its holder is
// off a CPU; more threads would not help). Without the kernel's numbers:
// hand off once kStuckNs has passed.
// `look_soon` is set when this round took the first look at a thread asleep
// ('S'): the second look is due kBlockedNs later, not a whole period.
bool stuck_thread(P* p, std::int64_t now, std::int64_t ran, bool& look_soon) {
  constexpr std::int64_t kComputeNs = 10'000'000;
  constexpr std::int64_t kSampleNs = 2'000'000;
  if (p->lock_waits.load(std::memory_order_relaxed) != 0) return false;
  const pid_t tid = p->tid.load(std::memory_order_acquire);
  const char state = tid != 0 ? diag::thread_state(tid) : '?';
  // Inside goro::blocking's inline path and off the CPU: the call the
  // program said would block; no second look needed. (On the CPU, it is
  // judged like any computation: a directory listing served from the
  // cache is work, and handing it off only costs.)
  G* bg = p->blocking_g.load(std::memory_order_relaxed);
  if (bg != nullptr && bg == __atomic_load_n(&p->curg, __ATOMIC_RELAXED) && state != 'R') return true;
  // The CPU times only where a verdict uses them: a thread found running
  // or in 'D' before kStuckNs (mostly one the kernel preempted: the common
  // look under network load) is let be without them.
  if (state != 'S' && ran < kStuckNs) return false;
  std::int64_t run = 0, wait = 0;
  const bool times = state != '?' && diag::thread_cpu_times(tid, run, wait);
  if (state == 'S' && times) {
    // Asleep now, and not a moment on a CPU since a round at least
    // kBlockedNs ago that also found it asleep: a blocking call, not a
    // brief wait (a contended malloc lock sleeps for microseconds).
    if (p->mon_s_at < p->mon_since || p->mon_s_at == 0 || run != p->mon_s_run) {
      p->mon_s_at = now;
      p->mon_s_run = run;
      look_soon = true;
      return false;
    }
    return now - p->mon_s_at >= kBlockedNs;
  }
  if (ran < kStuckNs) return false;
  if (!times) return true;
  if (p->mon_sample_at < p->mon_since || p->mon_sample_at == 0) {  // no sample from this stall yet
    p->mon_sample_at = now;
    p->mon_run_ns = run;
    p->mon_wait_ns = wait;
    p->mon_asleep = 0;
    return false;
  }
  const std::int64_t dt = now - p->mon_sample_at;
  if (dt < kSampleNs) return false;
  const std::int64_t drun = run - p->mon_run_ns, dwait = wait - p->mon_wait_ns;
  p->mon_sample_at = now;
  p->mon_run_ns = run;
  p->mon_wait_ns = wait;
  const ThreadWindow w = judge_window(state, drun, dwait, dt);
  if (w == ThreadWindow::off_cpu) return ++p->mon_asleep >= 2;  // two windows running
  p->mon_asleep = 0;
  return w == ThreadWindow::computing && ran >= kComputeNs;  // not if waiting for a CPU
}

}  // namespace

// Off the CPU: neither running nor waiting for a CPU for 3/4 of the window,
// by the counters, and not found running at its end. The counters alone
// are not enough: the kernel adds a running thread's CPU time to them only
// when it accounts for it (a tick, a switch), so a thread that ran through
// a whole 2 ms window can show none (an echo server's worker, under load,
// was handed off this way about once a second).
ThreadWindow judge_window(char state, std::int64_t drun, std::int64_t dwait, std::int64_t dt) {
  if (state != 'R' && drun + dwait < dt / 4) return ThreadWindow::off_cpu;
  if (drun >= dt / 2) return ThreadWindow::computing;
  return ThreadWindow::waiting_for_cpu;
}

namespace {

// Moves stuck P p's work to a spare P (Sched::stw_mu held by the caller, so
// no stop of the world or set_max_procs runs). Returns whether it did.
bool hand_off(Sched& s, P* p, std::int64_t now) {
  s.lock.lock();
  if (!p->active.load(std::memory_order_relaxed) || s.stopping.load(std::memory_order_relaxed) ||
      s.exiting.load(std::memory_order_relaxed)) {
    s.lock.unlock();
    return false;
  }
  const int started = s.nstarted.load(std::memory_order_relaxed);
  int handed = 0;
  P* spare = nullptr;
  for (int i = 0; i < started; ++i) {
    P* q = s.ps[i];
    if (q->active.load(std::memory_order_relaxed)) continue;
    if (q->dormant.load(std::memory_order_relaxed)) {
      if (spare == nullptr) spare = q;
    } else {
      ++handed;
    }
  }
  if (handed >= kMaxHandedOff || (spare == nullptr && started >= kMaxSlots)) {
    s.lock.unlock();
    return false;
  }
  if (progress(p) != p->mon_tick) {  // it moved on meanwhile
    s.lock.unlock();
    return false;
  }
  if (spare == nullptr) spare = new_p_locked(s);
  set_active(p, false);
  spare->mon_tick = progress(spare);
  spare->mon_since = now;
  // p's queue to the global queue, where the spare (and anyone) finds it.
  // Any thread may pop a P's run queue; only p's own thread pushes, and
  // from now on it pushes nothing it does not hand away itself.
  if (G* g = p->runnext.exchange(nullptr, std::memory_order_acquire)) global_put_batch_locked(s, &g, 1);
  while (G* g = p->runq.pop()) global_put_batch_locked(s, &g, 1);
  activate_locked(s, spare);
  s.handoffs.fetch_add(1, std::memory_order_relaxed);
  s.lock.unlock();
  migrate_timers(p, spare);
  wakep();
  return true;
}

}  // namespace

constexpr std::int64_t kClockStaleNs = 1'000'000;

bool sysmon_round(std::int64_t now, std::int64_t stall_ns, std::vector<Stall>& stalls, int& handed, bool& backlog,
                  bool& look_soon) {
  Sched& s = sched();
  handed = 0;
  backlog = false;
  look_soon = false;
  if (s.exiting.load(std::memory_order_acquire)) return false;
  // Wait-start stamps (ARCHITECTURE "Wait start"), before the lock below: a
  // dump that waits for a computing P holds it for 100 ms. Only a stale
  // stamp is written, so a P that switches often keeps its line to itself.
  // (A P slot, once started, is never freed.)
  for (int i = 0, n = s.nstarted.load(std::memory_order_acquire); i < n; ++i) {
    P* p = s.ps[i];
    if (now - p->clock_ns.load(std::memory_order_relaxed) > kClockStaleNs) p->clock_ns.store(now, std::memory_order_relaxed);
  }
  // Not while the world is stopped or set_max_procs runs (never waits).
  std::unique_lock<std::mutex> stw(s.stw_mu, std::try_to_lock);
  if (!stw.owns_lock()) return true;
  // The network, if nobody has polled it for 10 ms (every P busy) and no
  // thread is blocked polling: what is ready goes to the global queue.
  if (netpoll_waiters() > 0 && !s.poll_blocked.load(std::memory_order_relaxed) &&
      now - s.last_poll_ns.load(std::memory_order_relaxed) >= 10'000'000) {
    G* gs[kNetpollBatch];
    int n = netpoll(0, gs);
    s.last_poll_ns.store(now, std::memory_order_relaxed);
    if (n > 0) {
      s.lock.lock();
      global_put_batch_locked(s, gs, static_cast<std::uint32_t>(n));
      s.lock.unlock();
      wakep();
    }
  }
  bool busy = false;
  const int started = s.nstarted.load(std::memory_order_acquire);
  for (int i = 0; i < started; ++i) {
    P* p = s.ps[i];
    if (!p->active.load(std::memory_order_acquire)) {
      if (p->dormant.load(std::memory_order_relaxed)) {
        // Timers a racing timer_add left on a dormant P.
        if (timer_due(p, now)) run_timers(p, now);
        continue;
      }
      // Handed off (or deactivating): what its goroutine queued since goes
      // to the global queue; its due timers fire here.
      busy = true;
      if (!p->runq.empty() || p->runnext.load(std::memory_order_relaxed) != nullptr) {
        s.lock.lock();
        if (G* g = p->runnext.exchange(nullptr, std::memory_order_acquire)) global_put_batch_locked(s, &g, 1);
        while (G* g = p->runq.pop()) global_put_batch_locked(s, &g, 1);
        s.lock.unlock();
        wakep();
      }
      if (timer_due(p, now)) run_timers(p, now);
      continue;
    }
    if (p->in_idle.load(std::memory_order_relaxed)) {
      p->mon_since = now;
      continue;
    }
    busy = true;
    backlog = backlog || !p->runq.empty();
    const std::uint32_t tick = progress(p);
    if (tick != p->mon_tick || p->mon_since == 0) {
      p->mon_tick = tick;
      p->mon_since = now;
      continue;
    }
    const std::int64_t ran = now - p->mon_since;
    if (stall_ns > 0 && ran >= stall_ns && p->mon_reported != tick) {
      // The goroutine that ran all along: curg read between two equal
      // ticks (a P that switched in between has a new tick). Not one in
      // goro::blocking's call: the program said that call blocks.
      G* g = __atomic_load_n(&p->curg, __ATOMIC_ACQUIRE);
      if (g != nullptr && g != p->blocking_g.load(std::memory_order_acquire) && progress(p) == tick) {
        stalls.push_back({g, ran});
        p->mon_reported = tick;
      }
    }
    if (ran >= kBlockedNs && stuck_with_work(s, p, now) && stuck_thread(p, now, ran, look_soon) && hand_off(s, p, now))
      ++handed;
  }
  backlog = (backlog || s.gsize.load(std::memory_order_relaxed) != 0) && s.nidle.load(std::memory_order_relaxed) == 0;
  if (busy) {
    // Pooled stacks a burst left behind, once no P has taken one for
    // kTrimSettleNs: idle Ps trim only when all are idle, which a program
    // that keeps one P busy never is. Not under stw_mu.
    stw.unlock();
    stack_trim_settled(now, kIdleTrimChunk);
  }
  return busy;
}

bool sysmon_may_sleep() {
  Sched& s = sched();
  s.sysmon_asleep.store(true, std::memory_order_seq_cst);
  // After the store: a P that leaves idle or dormancy from now on sees it
  // and pokes; one that left before is counted as busy here.
  const int n = s.nstarted.load(std::memory_order_seq_cst);
  const int quiet = s.nidle.load(std::memory_order_seq_cst) + s.ndormant.load(std::memory_order_seq_cst);
  if (n > 0 && quiet >= n) return true;
  s.sysmon_asleep.store(false, std::memory_order_relaxed);
  return false;
}

void sysmon_awake() { sched().sysmon_asleep.store(false, std::memory_order_relaxed); }

std::uint64_t plain_wakeups() { return sched().plain_epoch.load(std::memory_order_seq_cst); }

void plain_parked_threads(std::vector<PlainParked>& out, std::uint64_t* epoch) {
  Sched& s = sched();
  std::lock_guard<std::mutex> lk(s.plain_mu);
  if (epoch != nullptr) *epoch = s.plain_epoch.load(std::memory_order_acquire);  // before the words: see sched_quiescent
  for (auto& e : s.plain_parked) {
    if (e.first->thread_wake.load(std::memory_order_acquire) == 0)
      out.push_back({e.second, reinterpret_cast<std::uintptr_t>(e.first->sp)});
  }
}

void for_each_g(void (*fn)(G*, void*), void* arg) {
  Sched& s = sched();
  s.lock.lock();
  G* head = s.allgs;  // links are immutable once published
  s.lock.unlock();
  for (G* g = head; g != nullptr; g = g->all_next) fn(g, arg);
}

SchedCounts sched_counts() {
  Sched& s = sched();
  SchedCounts c;
  c.procs = s.nprocs.load(std::memory_order_relaxed);
  c.idle = s.nidle.load(std::memory_order_relaxed);
  c.spinning = s.nspinning.load(std::memory_order_relaxed);
  c.global_queue = s.gsize.load(std::memory_order_relaxed);
  c.started = s.nstarted.load(std::memory_order_acquire);
  for (int i = 0; i < c.started && i < kMaxProcsDiag; ++i) {
    P* q = s.ps[i];
    c.local_queue[i] = q->runq.size() + (q->runnext.load(std::memory_order_relaxed) != nullptr ? 1 : 0);
    c.spawned += q->nspawned.load(std::memory_order_relaxed);
  }
  c.spawned += static_cast<std::uint64_t>(s.thread_spawned.load(std::memory_order_relaxed));
  c.blocking_running = s.blocking_running.load(std::memory_order_relaxed);
  c.handoffs = s.handoffs.load(std::memory_order_relaxed);
  return c;
}

std::size_t timers_pending() {
  Sched& s = sched();
  std::size_t total = 0;
  int n = s.nstarted.load(std::memory_order_acquire);
  for (int i = 0; i < n; ++i) {
    P* q = s.ps[i];
    q->tlock.lock();
    total += q->theap.size();
    q->tlock.unlock();
  }
  return total;
}

}  // namespace goro::rt

// ---------------------------------------------------------------- public API
namespace goro {

namespace detail {

GHandle* g_alloc(std::size_t size, std::size_t align, void** storage) {
  arch::SanRuntimeScope san;
  rt::ensure_started();
  rt::G* g = rt::g_get(rt::current_p());
  // TSan builds put every closure on the heap: a recycled descriptor's
  // inline storage would carry the shadow of a dead goroutine's accesses.
  if (!arch::kTsan && size <= rt::G::kInlineClosure && align <= 16) {
    g->closure = g->inline_closure;
  } else {
    std::size_t a = std::max<std::size_t>(align, 16);
    g->closure_align_log2 = static_cast<std::uint8_t>(__builtin_ctzll(a));
    g->closure = ::operator new(size, std::align_val_t{a});
  }
  *storage = g->closure;
  return reinterpret_cast<GHandle*>(g);
}

void g_start(GHandle* h, void (*thunk)(void*), const SpawnOptions* opts,
             const SourceSite& where) {
  arch::SanRuntimeScope san;
  auto* g = reinterpret_cast<rt::G*>(h);
  rt::Sched& s = rt::sched();
  rt::P* p = rt::current_p();
  g->san_edge = arch::san_edge_begin();  // the spawner's past happens before the goroutine
  std::size_t ss = opts != nullptr && opts->stack_size != 0 ? opts->stack_size
                                                           : s.default_stack.load(std::memory_order_relaxed);
  g->thunk = thunk;
  g->where = where;
  g->stack_class = rt::stack_class_for(ss);
  g->id = rt::new_goid(p);
  g->parent_id = p != nullptr && p->curg != nullptr ? p->curg->id : 0;
  g->status.store(rt::GStatus::runnable, std::memory_order_relaxed);
  if (p == nullptr || !p->active.load(std::memory_order_relaxed)) {
    s.thread_spawned.fetch_add(1, std::memory_order_relaxed);
    rt::global_put(g);
    rt::wakep();
    return;
  }
  p->nlive.store(p->nlive.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  p->nspawned.store(p->nspawned.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  rt::G* old = p->runnext.exchange(g, std::memory_order_release);
  if (old != nullptr) rt::runq_put(p, old);
  rt::wakep();
}

void run_main(const SourceSite& where, void* ctx, void (*fn)(void*)) {
  WaitGroup wg;
  wg.add(1);
  spawn_closure(nullptr, NoFinally{}, where, [ctx, fn, &wg] {
    fn(ctx);
    wg.done();
  });
  wg.wait();
  // Statics built while main ran are destroyed before handlers registered
  // earlier: register the exit handler again so that it runs before them.
  if (rt::current_p() == nullptr) rt::register_exit_handler();
}

}  // namespace detail

void yield() {
  arch::SanRuntimeScope san;
  rt::P* p = rt::current_p();
  rt::G* g = p != nullptr ? p->curg : nullptr;
  if (g == nullptr) {
    sched_yield();
    return;
  }
  rt::G* next = rt::runnable_fast(p);
  if (next == nullptr) {
    if (!p->active.load(std::memory_order_acquire)) {
      rt::switch_from_g(p, g, nullptr, nullptr, false);
    }
    return;
  }
  rt::switch_from_g(p, g, next, nullptr, false);
}

void sleep_until(Clock::time_point deadline) {
  arch::SanRuntimeScope san;
  auto rel = deadline - Clock::now();
  if (rel <= Clock::duration::zero()) return;
  rt::G* g = rt::current_g();
  if (g == nullptr) {
    std::this_thread::sleep_until(deadline);
    return;
  }
  rt::Timer t;
  t.when = rt::deadline_after_ns(std::chrono::duration_cast<std::chrono::nanoseconds>(rel).count());
  t.arg = g;
  t.fire = [](rt::Timer* tm) { rt::ready(static_cast<rt::G*>(tm->arg), false); };
  rt::park("sleep", [](void* a) { rt::timer_add(static_cast<rt::Timer*>(a)); }, &t);
}

int max_procs() {
  rt::ensure_started();
  return rt::sched().nprocs.load(std::memory_order_acquire);
}

void set_max_procs(int n) {
  if (n < 1) throw panic_error("runtime: set_max_procs: n must be >= 1");
  n = std::min(n, rt::kMaxProcs);
  arch::SanRuntimeScope san;
  rt::ensure_started();
  rt::Sched& s = rt::sched();
  rt::lock_stw(s);  // not while the world is stopped
  std::lock_guard<std::mutex> stw(s.stw_mu, std::adopt_lock);
  s.lock.lock();
  s.nprocs.store(n, std::memory_order_release);
  rt::set_active_locked(s, n);
  s.lock.unlock();
}

std::size_t num_goroutines() {
  rt::Sched& s = rt::sched();
  std::int64_t total = s.thread_spawned.load(std::memory_order_relaxed);
  int n = s.nstarted.load(std::memory_order_acquire);
  for (int i = 0; i < n; ++i) total += s.ps[i]->nlive.load(std::memory_order_relaxed);
  return total > 0 ? static_cast<std::size_t>(total) : 0;
}

std::uint64_t goroutine_id() {
  rt::G* g = rt::current_g();
  return g != nullptr ? g->id : 0;
}

std::size_t default_stack_size() {
  return rt::sched().default_stack.load(std::memory_order_relaxed);
}

void set_default_stack_size(std::size_t bytes) {
  if (bytes == 0) throw panic_error("runtime: set_default_stack_size: size must be > 0");
  rt::sched().default_stack.store(bytes, std::memory_order_relaxed);
}

}  // namespace goro
