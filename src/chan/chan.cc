// src/chan/chan.cc: channels and select, on the park/ready protocol.
//
// The design follows Go's chan.go and select.go; the code is our own.
//
// Invariants (c->lock held to read or change any of them):
//  - At least one of sendq and recvq is empty, except for waiters that
//    belong to a select already won by another case (stale, skipped by
//    dequeue), or a select that waits to both send and receive on the same
//    unbuffered channel.
//  - Buffered: if count > 0 then recvq has no live waiter; if count < cap
//    then sendq has no live waiter.
//  - closed never goes back to false. Once closed, no waiter is added.
//  - A waiter (a Waiter in its G for a plain send or receive, on its
//    goroutine's stack for a select's case) is on a queue only while
//    its goroutine is parked; whoever dequeues it completes its operation
//    (copying the value, setting success) before ready(), and never touches
//    it afterwards.
// Memory order: count, closed and (for unbuffered channels) the queue heads
// are mirrored in atomics, stored with release under the lock, so that
// non-blocking operations can answer "not ready" without the lock, reading
// them with acquire, as Go's fast paths do (see full()/empty() for why the
// order of those reads proves the answer); a stale read only costs taking
// the lock. Values are handed over under the lock; ready()/park() order the
// woken goroutine's reads after the waker's writes.
//
// TSan (arch/sanitizer.h): every entry point runs in a SanRuntimeScope, and
// the edges a Go program can rely on are stated explicitly, as Go's race
// annotations in chan.go: a buffered send or receive syncs on its buffer
// slot (so the k-th receive happens before the (k+cap)-th send completes);
// a hand-off to or from a parked goroutine syncs on the channel (the parked
// side released it before parking and acquires it once woken); close
// releases &closed, and a receive that sees the channel closed acquires it.
//
// Select (select_impl): in a random order, try the first case that a
// lock-free peek shows ready under its channel's lock alone; failing that,
// lock every channel involved in address order (duplicates once), poll the
// cases in that order and run the first ready one; else enqueue one Waiter
// per case, all pointing at one SelectState whose `done` flag a waker
// claims by swapping in true, and park with the unlock of all locks as the
// park hook. The waker that swapped out false completes that case; the
// selecting goroutine then dequeues its other waiters before returning,
// relocking everything unless each of them was already taken off its queue
// by a waker that lost the swap (Waiter::unlinked). Waiters of a select
// that another case won are skipped by dequeue and removed by their owner:
// no value is lost or duplicated when several channels fire at once.
#include <goro/detail/chan_core.h>
#include <goro/panic.h>

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <new>
#include <type_traits>
#include <memory>

#include "arch/sanitizer.h"
#include "sched/futex.h"
#include "diag/diag.h"
#include "sched/sched.h"

namespace goro::detail {

namespace {

using rt::G;

struct SelectState {
  std::atomic<bool> done{false};
  // The select's cases, for the leak proof (src/diag/reach.cc), which reads
  // them only while the selecting goroutine is parked and the world stopped.
  const SelectCase* cases = nullptr;
  int ncases = 0;
};

// Constructed only just before it is pushed: next and prev are left for
// push() to write (zeroing the whole line first cost every parking
// operation a few stores).
struct Waiter {
  Waiter(G* g_, void* elem_) : g(g_), elem(elem_) {}
  Waiter(G* g_, void* elem_, SelectState* sel_, int case_index_, int* won_index_)
      : g(g_), elem(elem_), sel(sel_), case_index(case_index_), won_index(won_index_) {}
  Waiter(const Waiter&) = delete;
  Waiter& operator=(const Waiter&) = delete;

  G* g;
  void* elem;                  // send: T*; recv: std::optional<T>*
  Waiter* next;                // written by push
  Waiter* prev;                // written by push
  SelectState* sel = nullptr;  // non-null inside a select
  int case_index;              // select only, as won_index
  bool success = false;        // the operation completed (false: woken by close)
  // Select: set (release) by a dequeue that took this waiter off its queue
  // but lost the select to another case, as its last touch of the waiter,
  // under the channel's lock. The select, once woken, reads it (acquire)
  // and skips relocking a channel whose waiter is already gone.
  std::atomic<bool> unlinked{false};
  int* won_index;              // select: where the winning case's index goes
};
static_assert(sizeof(Waiter) <= 64, "a waiter fits one cache line");
static_assert(sizeof(Waiter) <= G::kChanWaiter && alignof(Waiter) <= 16, "a waiter fits its room in the G");

// The waiter of a plain send or receive by the current goroutine (or
// thread), in its G's room for it: only one can be parked at a time.
// Trivially destructible: nothing ends its life but the next one.
Waiter& plain_waiter(void* elem) {
  G* g = rt::current_waiter();
  return *new (g->chan_waiter) Waiter(g, elem);
}

struct WaitQueue {
  Waiter* first = nullptr;
  Waiter* last = nullptr;
  std::atomic<Waiter*> first_hint{nullptr};  // mirrors `first` for lock-free peeks
  bool keep_hint = false;  // only unbuffered channels peek at the queues

  void publish() {
    if (keep_hint) first_hint.store(first, std::memory_order_release);
  }

  void push(Waiter* w) {
    w->next = nullptr;
    w->prev = last;
    if (last != nullptr) last->next = w; else first = w;
    last = w;
    publish();
  }
  void remove(Waiter* w) {
    if (w->prev != nullptr) w->prev->next = w->next; else if (first == w) first = w->next; else return;
    if (w->next != nullptr) w->next->prev = w->prev; else last = w->prev;
    w->next = w->prev = nullptr;
    publish();
  }
  // Takes the first waiter that can still be completed: a plain waiter, or a
  // select waiter whose select this call wins.
  Waiter* dequeue() {
    while (Waiter* w = first) {
      // Unlinks the head. Its prev is already null, and with first moved
      // past it remove() knows it is off the queue: next is left as is.
      first = w->next;
      if (first != nullptr) first->prev = nullptr; else last = nullptr;
      publish();
      if (w->sel != nullptr) {
        // done only ever goes false -> true: whoever swaps out false won.
        if (w->sel->done.exchange(true, std::memory_order_acq_rel)) {
          w->unlinked.store(true, std::memory_order_release);  // the last touch: w may be gone after it
          continue;
        }
        *w->won_index = w->case_index;
      }
      return w;
    }
    return nullptr;
  }
};

}  // namespace

// Laid out in cache lines by who touches what, aligned to a line so that
// the split holds wherever the allocator puts it:
//   1. the lock, and what changes only when a handle is copied or dropped;
//   2. what a send or receive reads and writes under the lock;
//   3. the wait queues, written only when a goroutine parks or is woken.
// The lock has a line of its own because goroutines on other cores poll it
// while they wait (RawMutex::lock_slow): if it shared a line with the
// buffer's indexes, every poll pulled that line away from the holder in the
// middle of its critical section. With the header at whatever offset the
// allocator gave it (16-byte aligned, 152 bytes), channel-bound workloads
// at GOMAXPROCS=2 were bimodal run to run: fanout_pipeline 101-153 ns per
// item, chan_mpmc 43-62; with this layout 104-121 and 45-47 (8 and 4
// alternating runs of each binary). With the lock and the indexes on one
// line it was worse than either: fanout_pipeline 121-150.
struct alignas(64) ChanCore {
  rt::Lock lock;
  std::atomic<std::size_t> refs{1};
  // Runs when the last handle goes, before anything is destroyed (the
  // Ticker uses it: a ticker lives as long as its channel has users).
  // Set once, before the channel is shared.
  void (*on_last_handle)(void*) = nullptr;
  void* on_last_handle_arg = nullptr;

  alignas(64) std::atomic<bool> closed{false};
  std::atomic<std::size_t> count{0};  // buffered elements (lock; relaxed mirror for peeks)
  std::size_t recvx = 0;              // next slot to receive from
  std::size_t sendx = 0;              // next slot to send into
  std::size_t cap = 0;
  unsigned char* buf = nullptr;       // cap slots of ops->size bytes
  const ElemOps* ops = nullptr;

  alignas(64) WaitQueue recvq;
  WaitQueue sendq;

  void* slot(std::size_t i) const { return buf + i * ops->size; }
};
static_assert(offsetof(ChanCore, ops) + sizeof(void*) <= 2 * 64 && offsetof(ChanCore, sendq) + sizeof(WaitQueue) <= 3 * 64,
              "each group of ChanCore's fields fits its cache line");

namespace {

std::size_t align_up(std::size_t n, std::size_t a) { return (n + a - 1) & ~(a - 1); }

// The largest channel buffer: no allocation on a 64-bit Linux address space
// (47 bits of user space) can be larger.
constexpr std::size_t kMaxChanBuffer = std::size_t{1} << 47;

[[noreturn]] void panic_send_closed() { throw panic_error("send on closed channel"); }

// Parks forever (nil channel, empty select).
[[noreturn]] void block_forever(const char* reason) {
  for (;;) rt::park(reason, nullptr, nullptr);
}

void put_buffer(ChanCore* c, void* src) {
  arch::san_sync(c->slot(c->sendx));
  c->ops->move_construct(c->slot(c->sendx), src);
  if (++c->sendx == c->cap) c->sendx = 0;
  c->count.store(c->count.load(std::memory_order_relaxed) + 1, std::memory_order_release);
}

void take_buffer(ChanCore* c, void* opt) {
  void* s = c->slot(c->recvx);
  arch::san_sync(s);
  c->ops->move_to_optional(opt, s);
  c->ops->destroy(s);
  if (++c->recvx == c->cap) c->recvx = 0;
  c->count.store(c->count.load(std::memory_order_relaxed) - 1, std::memory_order_release);
}

// A waiting receiver r was dequeued: hand it the value at src. Lock held.
void send_to_waiter(ChanCore* c, Waiter* r, void* src) {
  c->ops->move_to_optional(r->elem, src);
  r->success = true;
  arch::san_sync(c);  // the parked receiver acquires c once woken
}

// A waiting sender s was dequeued; receive into opt. Lock held.
void recv_from_waiter(ChanCore* c, Waiter* s, void* opt) {
  if (c->cap == 0) {
    c->ops->move_to_optional(opt, s->elem);
  } else {
    // Buffer full: take its head, and the sender's value goes to the tail
    // (which is the slot just freed), keeping FIFO order.
    take_buffer(c, opt);
    put_buffer(c, s->elem);
  }
  s->success = true;
  arch::san_sync(c);  // the parked sender acquires c once woken
}

// The lock-free peeks of the fast paths. Acquire pairs with the release
// stores of count / first_hint (made under the lock after any change to
// `closed`), so "empty, then not closed" read in that order means the
// channel was open when it was seen empty (Go's argument in chanrecv).
bool full(const ChanCore* c) {
  if (c->cap == 0) return c->recvq.first_hint.load(std::memory_order_acquire) == nullptr;
  return c->count.load(std::memory_order_acquire) == c->cap;
}

bool empty(const ChanCore* c) {
  if (c->cap == 0) return c->sendq.first_hint.load(std::memory_order_acquire) == nullptr;
  return c->count.load(std::memory_order_acquire) == 0;
}

}  // namespace

ChanCore* chan_new(std::size_t cap, const ElemOps* ops) {
  arch::SanRuntimeScope san;
  std::size_t align = std::max<std::size_t>(ops->align, alignof(ChanCore));
  std::size_t header = align_up(sizeof(ChanCore), align);
  // Go's makechan: a buffer whose size overflows, or exceeds what could ever
  // be allocated, panics instead of wrapping around to a small allocation.
  std::size_t bytes = 0;
  if (__builtin_mul_overflow(cap, ops->size, &bytes) || bytes > kMaxChanBuffer - header)
    throw panic_error("makechan: size out of range");
  void* mem = nullptr;
  try {
    mem = ::operator new(header + bytes, std::align_val_t{align});
  } catch (const std::bad_alloc&) {
    throw panic_error("makechan: size out of range");
  }
  auto* c = ::new (mem) ChanCore;
  c->ops = ops;
  c->cap = cap;
  c->buf = static_cast<unsigned char*>(mem) + header;
  c->recvq.keep_hint = c->sendq.keep_hint = cap == 0;
  return c;
}

void chan_retain(ChanCore* c) { c->refs.fetch_add(1, std::memory_order_relaxed); }

void chan_on_last_handle(ChanCore* c, void (*fn)(void*), void* arg) {
  c->on_last_handle = fn;
  c->on_last_handle_arg = arg;
}

void chan_release(ChanCore* c) {
  arch::SanRuntimeScope san;
  // acq_rel: the last owner must see every other owner's writes before
  // destroying buffered elements.
  if (c->refs.fetch_sub(1, std::memory_order_acq_rel) != 1) return;
  if (c->on_last_handle != nullptr) c->on_last_handle(c->on_last_handle_arg);
  std::size_t n = c->count.load(std::memory_order_relaxed);
  for (std::size_t i = 0, x = c->recvx; i < n; ++i, x = (x + 1 == c->cap ? 0 : x + 1)) c->ops->destroy(c->slot(x));
  std::size_t align = std::max<std::size_t>(c->ops->align, alignof(ChanCore));
  c->~ChanCore();
  ::operator delete(static_cast<void*>(c), std::align_val_t{align});
}

bool chan_send(ChanCore* c, void* src, bool block) {
  arch::SanRuntimeScope san;
  if (c == nullptr) {
    if (!block) return false;
    block_forever("chan send (nil chan)");
  }
  // Fast path (Go's): a non-blocking send on an open, full channel fails
  // without the lock. closed is read after full: if it is still false then,
  // the channel was open and full at the moment full was read.
  if (!block && full(c) && !c->closed.load(std::memory_order_acquire)) return false;

  c->lock.lock();
  if (c->closed.load(std::memory_order_relaxed)) {
    c->lock.unlock();
    panic_send_closed();
  }
  if (Waiter* r = c->recvq.dequeue()) {
    send_to_waiter(c, r, src);
    c->lock.unlock();
    rt::ready(r->g);
    return true;
  }
  if (c->count.load(std::memory_order_relaxed) < c->cap) {
    put_buffer(c, src);
    c->lock.unlock();
    return true;
  }
  if (!block) {
    c->lock.unlock();
    return false;
  }
  Waiter& w = plain_waiter(src);
  c->sendq.push(&w);
  arch::san_release(c);
  w.g->wait_obj = c;
  rt::park_unlocking<&rt::unlock_lock>("chan send", &c->lock);
  // Nothing of the channel is touched from here on (the waker completed the
  // operation under the lock), so every user handle may be gone by now; the
  // TSan edge uses only the address.
  if (w.success) arch::san_acquire(c);
  if (!w.success) panic_send_closed();
  return true;
}

RecvResult chan_recv(ChanCore* c, void* opt, bool block) {
  arch::SanRuntimeScope san;
  if (c == nullptr) {
    if (!block) return RecvResult::would_block;
    block_forever("chan receive (nil chan)");
  }
  // Without the lock: a receive that fails (non-blocking, open and empty),
  // and one from a closed, drained channel, blocking or not. The latter
  // keeps the receivers that a close of a busy channel wakes (a `for`
  // over the channel receives once more) off the lock the close may still
  // hold while it readies the rest (chan_close).
  if (!block) {
    if (empty(c)) {
      if (!c->closed.load(std::memory_order_acquire)) return RecvResult::would_block;
      // Closed: it stays closed, so if it is still empty it is drained for good.
      if (empty(c)) {
        arch::san_acquire(&c->closed);
        return RecvResult::closed;
      }
    }
  } else if (c->closed.load(std::memory_order_acquire) && empty(c)) {
    // Seen closed, then empty: drained for good, as above.
    arch::san_acquire(&c->closed);
    return RecvResult::closed;
  }
  c->lock.lock();
  if (Waiter* s = c->sendq.dequeue()) {
    recv_from_waiter(c, s, opt);
    c->lock.unlock();
    rt::ready(s->g);
    return RecvResult::value;
  }
  if (c->count.load(std::memory_order_relaxed) > 0) {
    take_buffer(c, opt);
    c->lock.unlock();
    return RecvResult::value;
  }
  if (c->closed.load(std::memory_order_relaxed)) {
    c->lock.unlock();
    arch::san_acquire(&c->closed);
    return RecvResult::closed;
  }
  if (!block) {
    c->lock.unlock();
    return RecvResult::would_block;
  }
  Waiter& w = plain_waiter(opt);
  c->recvq.push(&w);
  arch::san_release(c);
  w.g->wait_obj = c;
  rt::park_unlocking<&rt::unlock_lock>("chan receive", &c->lock);
  // As in chan_send: the channel itself is not touched after the wake.
  arch::san_acquire(w.success ? static_cast<const void*>(c) : &c->closed);
  return w.success ? RecvResult::value : RecvResult::closed;
}

void chan_close(ChanCore* c) {
  arch::SanRuntimeScope san;
  if (c == nullptr) throw panic_error("close of nil channel");
  c->lock.lock();
  if (c->closed.load(std::memory_order_relaxed)) {
    c->lock.unlock();
    throw panic_error("close of closed channel");
  }
  c->closed.store(true, std::memory_order_release);
  arch::san_release(&c->closed);
  // Dequeue every waiter; a goroutine's G is linked into a list for
  // ready_list as it is dequeued (one walk over the waiters, which live in
  // their Gs, or on their stacks for a select, a page each). Its status is set here, as
  // ready() would: its park is complete (the hook that unlocks this
  // channel runs after the parked G's switch), and it is on no queue, so
  // its sched_next is free. Every kCloseBatch goroutines are readied at
  // once, still under the lock (lock order: a channel's lock before
  // Sched::lock), so that other Ps run them while the walk goes on: the
  // walk is slow (a miss per waiter), and readying only at its end left
  // every other P idle for all of it. The rest are readied after the
  // unlock. A woken goroutine that touches this channel again takes its
  // lock after the walk, except a receive, which sees it closed and
  // drained without the lock (chan_recv). Thread waiters are readied one
  // by one after the unlock.
  constexpr std::uint32_t kCloseBatch = 128;
  rt::G* head = nullptr;
  rt::G* tail = nullptr;
  std::uint32_t n = 0;
  Waiter* threads = nullptr;
  auto take = [&](Waiter* w) {
    w->success = false;
    rt::G* g = w->g;
    if (g->is_thread) {
      w->next = threads;
      threads = w;
      return;
    }
    g->status.store(rt::GStatus::runnable, std::memory_order_release);
    g->sched_next = nullptr;
    if (tail != nullptr) tail->sched_next = g; else head = g;
    tail = g;
    if (++n == kCloseBatch) {
      rt::ready_list(head, tail, n);
      head = tail = nullptr;
      n = 0;
    }
  };
  while (Waiter* w = c->recvq.dequeue()) take(w);
  while (Waiter* w = c->sendq.dequeue()) take(w);
  c->lock.unlock();
  while (threads != nullptr) {
    Waiter* next = threads->next;  // read first: the waiter dies once its thread runs
    rt::ready(threads->g);
    threads = next;
  }
  rt::ready_list(head, tail, n);
}

std::size_t chan_size(const ChanCore* c) { return c == nullptr ? 0 : c->count.load(std::memory_order_relaxed); }
std::size_t chan_cap(const ChanCore* c) { return c == nullptr ? 0 : c->cap; }

}  // namespace goro::detail

namespace goro::rt::diag {
// For dumps, while the world is stopped (a goroutine parked on c keeps it
// alive: its handle is in use). A relaxed read of the counter.
void chan_diag(const void* core, std::size_t& len, std::size_t& cap) {
  const auto* c = static_cast<const detail::ChanCore*>(core);
  len = c->count.load(std::memory_order_relaxed);
  cap = c->cap;
}
}  // namespace goro::rt::diag

namespace goro::rt::diag {
// For the leak proof, with the world stopped and the parked goroutine's
// channels kept alive by its handle (send, receive) or its references (select).
void chan_extent(const void* core, std::uintptr_t& lo, std::uintptr_t& hi, std::uintptr_t& buf_lo,
                 std::uintptr_t& buf_hi) {
  const auto* c = static_cast<const detail::ChanCore*>(core);
  lo = reinterpret_cast<std::uintptr_t>(c);
  buf_lo = reinterpret_cast<std::uintptr_t>(c->buf);
  buf_hi = buf_lo + c->cap * c->ops->size;
  hi = buf_hi > lo + sizeof(detail::ChanCore) ? buf_hi : lo + sizeof(detail::ChanCore);
}

int select_chans(const void* sel, std::uintptr_t* out, std::size_t max) {
  const auto* st = static_cast<const detail::SelectState*>(sel);
  int k = 0;
  for (int i = 0; i < st->ncases; ++i) {
    if (st->cases[i].chan == nullptr) continue;
    if (static_cast<std::size_t>(k) == max) return -1;
    out[k++] = reinterpret_cast<std::uintptr_t>(st->cases[i].chan);
  }
  return k;
}
}  // namespace goro::rt::diag

// ---------------------------------------------------------------- select
namespace goro::detail {

namespace {

// Seeded at a thread's first select (zero until then: a constant-initialized
// thread_local needs no guard on each call, as a dynamically initialized one
// does). Goroutines that move between threads share its stream with others
// on their thread; the values only pick a poll order.
thread_local std::uint64_t fastrand_state = 0;

// A Weyl sequence (an odd increment) mixed by one 64x64->128-bit multiply,
// its halves folded (wyrand's construction): any state is valid, so the seed
// is only there to give threads different streams.
std::uint32_t fastrand() {
  std::uint64_t s = fastrand_state;
  if (s == 0) [[unlikely]]
    s = reinterpret_cast<std::uintptr_t>(&fastrand_state) ^ static_cast<std::uint64_t>(rt::mono_now_ns());
  s += 0xa0761d6478bd642fULL;
  fastrand_state = s;
  __extension__ typedef unsigned __int128 u128;
  const u128 m = static_cast<u128>(s) * (s ^ 0xe7037ed1a0b428dbULL);
  return static_cast<std::uint32_t>(static_cast<std::uint64_t>(m >> 64) ^ static_cast<std::uint64_t>(m));
}

// Sorts a select's channels by address (its lock order). Selects have a few
// cases: insertion sort, inline, without std::sort's call and set-up.
void sort_chans(ChanCore** a, int n) {
  if (n > 8) {
    std::sort(a, a + n);
    return;
  }
  for (int i = 1; i < n; ++i) {
    ChanCore* c = a[i];
    int j = i;
    for (; j > 0 && a[j - 1] > c; --j) a[j] = a[j - 1];
    a[j] = c;
  }
}

struct LockSet {
  ChanCore** chans;
  int n;
  void lock() const {
    for (int i = 0; i < n; ++i) chans[i]->lock.lock();
  }
  // The loop makes no call unless some lock has a sleeper, so that it needs
  // no registers saved around one (the park hook runs it on every select
  // that parks).
  void unlock() const {
    for (int i = n - 1; i >= 0; --i)
      if (!chans[i]->lock.unlock_unwoken()) [[unlikely]] {
        unlock_woken(i);
        return;
      }
  }
  // Wakes lock i's sleeper, then releases the locks below it.
  __attribute__((noinline)) void unlock_woken(int i) const {
    chans[i]->lock.wake_one();
    for (--i; i >= 0; --i) chans[i]->lock.unlock();
  }
};

void unlock_set(void* p) { static_cast<LockSet*>(p)->unlock(); }

// The per-select bookkeeping: the poll order, the distinct channels in lock
// order, and a waiter per case. Storage only: nothing is constructed (a
// select over two channels used to value-initialize sixteen Waiters every
// time it parked, half of its instructions), so each element is written
// before it is read (Waiters by placement new, at registration). Selects
// of up to kInline cases keep it on the stack; larger ones (rare) take one
// heap block for all three arrays.
struct SelectScratch {
  static constexpr int kInline = 16;
  static_assert(std::is_trivially_destructible_v<Waiter>);
  explicit SelectScratch(int n) {
    if (n <= kInline) [[likely]] {
      order = inline_order;
      chans = inline_chans;
      waiters = reinterpret_cast<Waiter*>(inline_waiters);
      return;
    }
    const std::size_t nn = static_cast<std::size_t>(n);
    heap = static_cast<unsigned char*>(::operator new(nn * (sizeof(Waiter) + sizeof(ChanCore*) + sizeof(int))));
    waiters = reinterpret_cast<Waiter*>(heap);
    chans = reinterpret_cast<ChanCore**>(heap + nn * sizeof(Waiter));
    order = reinterpret_cast<int*>(heap + nn * (sizeof(Waiter) + sizeof(ChanCore*)));
  }
  ~SelectScratch() {
    if (heap != nullptr) [[unlikely]]
      ::operator delete(heap);
  }
  SelectScratch(const SelectScratch&) = delete;
  SelectScratch& operator=(const SelectScratch&) = delete;

  int* order;
  ChanCore** chans;
  Waiter* waiters;
  unsigned char* heap = nullptr;
  alignas(Waiter) unsigned char inline_waiters[sizeof(Waiter) * kInline];
  ChanCore* inline_chans[kInline];
  int inline_order[kInline];
};

// Pass 1: tries case i with every lock held; returns whether it ran. On
// success the locks are released (and a waiter readied) before returning.
__attribute__((always_inline)) inline bool try_case(SelectCase& sc, const LockSet& locks) {
  ChanCore* c = sc.chan;
  if (sc.is_send) {
    if (c->closed.load(std::memory_order_relaxed)) {
      locks.unlock();
      panic_send_closed();
    }
    if (Waiter* r = c->recvq.dequeue()) {
      send_to_waiter(c, r, sc.elem);
      locks.unlock();
      rt::ready(r->g);
      return true;
    }
    if (c->count.load(std::memory_order_relaxed) < c->cap) {
      put_buffer(c, sc.elem);
      locks.unlock();
      return true;
    }
    return false;
  }
  if (Waiter* s = c->sendq.dequeue()) {
    recv_from_waiter(c, s, sc.elem);
    sc.received = true;
    locks.unlock();
    rt::ready(s->g);
    return true;
  }
  if (c->count.load(std::memory_order_relaxed) > 0) {
    take_buffer(c, sc.elem);
    sc.received = true;
    locks.unlock();
    return true;
  }
  if (c->closed.load(std::memory_order_relaxed)) {
    sc.received = false;
    locks.unlock();
    arch::san_acquire(&c->closed);
    return true;
  }
  return false;
}

}  // namespace

namespace {

// Steps 1b-5 for npoll non-nil cases in poll order `order`. kN > 0 says
// npoll == kN at compile time (the two-way select), so the loops over the
// cases unroll (GCC does not unroll loops with an early exit unless told
// to); kN == 0 is any count.
#define GORO_SELECT_UNROLL _Pragma("GCC unroll 2")
template <int kN>
__attribute__((always_inline)) inline int select_body(SelectCase* cases, int n, int npoll_any, bool has_default,
                                                      SelectScratch& scratch) {
  const int npoll = kN > 0 ? kN : npoll_any;
  int* const order = scratch.order;
  // 1b. In poll order, the first case that a lock-free peek (not full(),
  //    not empty()) says may proceed is tried under its own channel's
  //    lock alone. Go locks every channel first and then polls; the answer
  //    is the same kind (the first case in a random order that could
  //    proceed when tried), without taking and releasing the other locks,
  //    each a cache line that the other channels' users on other Ps write.
  //    A stale peek either way costs only the full pass below, which polls
  //    every case again under all the locks.
  GORO_SELECT_UNROLL
  for (int k = 0; k < npoll; ++k) {
    SelectCase& sc = cases[order[k]];
    ChanCore* c = sc.chan;
    if (sc.is_send ? full(c) : empty(c)) continue;  // (closed ones: the full pass)
    LockSet one{&c, 1};
    one.lock();
    if (try_case(sc, one)) return order[k];
    one.unlock();
  }

  // 2. Lock order: distinct channels by address.
  ChanCore** const chans = scratch.chans;
  int nchans;
  if (kN == 2) {
    ChanCore* c0 = cases[order[0]].chan;
    ChanCore* c1 = cases[order[1]].chan;
    chans[0] = c0 < c1 ? c0 : c1;
    chans[1] = c0 < c1 ? c1 : c0;
    nchans = c0 == c1 ? 1 : 2;
  } else {
    for (int k = 0; k < npoll; ++k) chans[k] = cases[order[k]].chan;
    sort_chans(&chans[0], npoll);
    nchans = static_cast<int>(std::unique(&chans[0], &chans[0] + npoll) - &chans[0]);
  }
  LockSet locks{&chans[0], nchans};
  locks.lock();

  // 3. Pass 1: the first ready case in poll order runs.
  GORO_SELECT_UNROLL
  for (int k = 0; k < npoll; ++k) {
    if (try_case(cases[order[k]], locks)) return order[k];
  }
  if (has_default) {
    locks.unlock();
    return -1;
  }

  // 4. Pass 2: wait on every case at once, registered in poll order.
  SelectState st;
  st.cases = cases;
  st.ncases = n;
  int won = -1;
  G* self = rt::current_waiter();
  Waiter* const waiters = scratch.waiters;
  GORO_SELECT_UNROLL
  for (int k = 0; k < npoll; ++k) {
    int i = order[k];
    Waiter* w = new (&waiters[i]) Waiter(self, cases[i].elem, &st, i, &won);
    (cases[i].is_send ? cases[i].chan->sendq : cases[i].chan->recvq).push(w);
  }
  // Unlike send and recv, select touches its channels after the wake: the
  // clean-up below may relock every one of them. So it holds a reference to
  // each while parked, and no channel can be freed under it even if every
  // user handle goes meanwhile.
  for (int k = 0; k < nchans; ++k) {
    chan_retain(chans[k]);
    arch::san_release(chans[k]);
  }
  self->wait_obj = &st;
  rt::park_unlocking<&unlock_set>("select", &locks);

  // 5. One case won (its waker dequeued its waiter and completed it); take
  //    the other waiters off their queues, relocking the channels only if
  //    some waiter is still on one: a dequeue that skipped a waiter of this
  //    select marked it unlinked (a sender to the other channel of a
  //    two-way select usually has, by the time the select runs again).
  bool relock = false;
  GORO_SELECT_UNROLL
  for (int k = 0; k < npoll; ++k) {
    int i = order[k];
    if (i != won && !waiters[i].unlinked.load(std::memory_order_acquire)) {
      relock = true;
      break;
    }
  }
  if (relock) {
    locks.lock();
    GORO_SELECT_UNROLL
    for (int k = 0; k < npoll; ++k) {
      int i = order[k];
      if (i == won) continue;
      (cases[i].is_send ? cases[i].chan->sendq : cases[i].chan->recvq).remove(&waiters[i]);
    }
    locks.unlock();
  }
  SelectCase& sc = cases[won];
  arch::san_acquire(waiters[won].success ? static_cast<const void*>(sc.chan) : &sc.chan->closed);
  for (int k = 0; k < nchans; ++k) chan_release(chans[k]);
  if (sc.is_send) {
    if (!waiters[won].success) panic_send_closed();
  } else {
    sc.received = waiters[won].success;
  }
  return won;
}

}  // namespace

int select_impl(SelectCase* cases, int n, bool has_default) {
  arch::SanRuntimeScope san;
  // 1. Poll order: a uniformly random permutation of the non-nil cases
  //    (inside-out Fisher-Yates), so that no ready case is favoured.
  SelectScratch scratch(n);
  int* const order = scratch.order;
  if (n == 2 && cases[0].chan != nullptr && cases[1].chan != nullptr) [[likely]] {
    // The common two-way select: one random bit picks the order (the
    // loop below draws the same distribution, at three times the cost).
    cases[0].received = cases[1].received = false;
    order[0] = static_cast<int>(fastrand() >> 31);
    order[1] = order[0] ^ 1;
    return select_body<2>(cases, n, 2, has_default, scratch);
  }
  int npoll = 0;
  for (int i = 0; i < n; ++i) {
    cases[i].received = false;
    if (cases[i].chan == nullptr) continue;
    // A slot in [0, npoll] (the first case needs no draw): the high half of
    // a 32x32-bit product, Lemire's reduction, rather than a division.
    int j = npoll == 0 ? 0
                       : static_cast<int>((std::uint64_t{fastrand()} * static_cast<std::uint32_t>(npoll + 1)) >> 32);
    order[npoll] = order[j];
    order[j] = i;
    ++npoll;
  }
  if (npoll == 0) {
    if (has_default) return -1;
    block_forever("select (no cases)");
  }
  return select_body<0>(cases, n, npoll, has_default, scratch);
}

}  // namespace goro::detail
