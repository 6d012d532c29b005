// src/diag/reach.cc: the proof that a goroutine is blocked forever on
// channels no running code can reach (blocked_forever(), GORO_DEBUG=leaks=1).
//
// The argument is in docs/ARCHITECTURE.md ("Partial deadlocks", (b)). In
// short: with every P stopped, no goroutine.blocking call in flight and every
// other thread either the runtime's (holding no user object below its entry
// frame) or parked in a goro primitive (registers spilled above its stack
// mark), all the memory any code can ever use again is the process's
// writable memory. A candidate is a goroutine parked on channel operations
// only (send, receive, select without timers of its own). Starting from the
// roots (all writable memory except the candidates' live stacks and inline
// closures, their channels, and the runtime's own bookkeeping about them),
// every word that points into a candidate's stack or closure makes that
// candidate reachable (its locals may be read or written), and every word
// that points into a channel makes it reachable; a reachable channel makes
// its waiters reachable, and a reachable candidate's stack and closure are
// roots too. What is left when nothing more can be reached is blocked
// forever: to wake it, some code must operate on one of its channels, and
// no code can get at one. Any aligned word that looks like a pointer counts,
// so the scan errs only towards missing a leak.
//
// Everything the proof keeps (ranges, candidates, channels, the maps text)
// lives in one private mapping that the scan skips: a pointer the proof
// itself holds must not count as a reference.
#include <fcntl.h>
#include <pthread.h>
#include <sys/mman.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <thread>
#include <cerrno>
#include <cstring>
#include <dirent.h>
#include <new>
#include <vector>

#include "arch/sanitizer.h"
#include "diag/diag.h"
#include "diag/monitor.h"
#include "goro/debug.h"
#include "sched/sched.h"

namespace goro::rt::diag {

void chan_extent(const void* core, std::uintptr_t& lo, std::uintptr_t& hi, std::uintptr_t& buf_lo,
                 std::uintptr_t& buf_hi);
int select_chans(const void* sel, std::uintptr_t* out, std::size_t max);

namespace {

// A bump allocator over one private anonymous mapping (reserved, committed
// as used), released at the end of the proof.
class Arena {
 public:
  explicit Arena(std::size_t cap) {
    void* m = mmap(nullptr, cap, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (m != MAP_FAILED) {
      base_ = static_cast<char*>(m);
      cap_ = cap;
    }
  }
  ~Arena() {
    if (base_ != nullptr) munmap(base_, cap_);
  }
  Arena(const Arena&) = delete;
  Arena& operator=(const Arena&) = delete;
  bool ok() const { return base_ != nullptr; }
  std::uintptr_t lo() const { return reinterpret_cast<std::uintptr_t>(base_); }
  std::uintptr_t hi() const { return lo() + cap_; }
  template <class T>
  T* alloc(std::size_t n) {
    std::size_t at = (used_ + 63) & ~std::size_t{63};
    if (base_ == nullptr || n > (cap_ - at) / sizeof(T)) return nullptr;
    used_ = at + n * sizeof(T);
    return reinterpret_cast<T*>(base_ + at);
  }

 private:
  char* base_ = nullptr;
  std::size_t cap_ = 0, used_ = 0;
};

// A fixed-capacity array in the arena; push fails (and the proof gives up)
// when it is full.
template <class T>
struct Vec {
  T* p = nullptr;
  std::size_t n = 0, cap = 0;
  bool init(Arena& a, std::size_t c) {
    p = a.alloc<T>(c);
    cap = p != nullptr ? c : 0;
    return p != nullptr;
  }
  bool push(const T& v) {
    if (n == cap) return false;
    p[n++] = v;
    return true;
  }
  T* begin() { return p; }
  T* end() { return p + n; }
  T& operator[](std::size_t i) { return p[i]; }
};

struct Span {
  std::uintptr_t lo, hi;
};

// A goroutine parked on channels only.
struct Cand {
  G* g;
  Span stack;    // [saved sp, stack top)
  Span closure;  // its inline closure, or empty
  std::uint32_t first_chan, nchans;  // its channels: chan_of[first_chan ...]
  bool reached;
};

struct Chan {
  std::uintptr_t core;
  Span extent;  // the whole allocation
  Span buffer;  // buffered elements (user data: scanned once reached)
  bool reached;
};

// An object the scan looks for: a candidate's stack or closure, or a channel.
struct Obj {
  Span at;
  std::uint32_t index;
  bool is_chan;
};

struct Proof {
  explicit Proof(Arena& a) : arena(a) {}
  Arena& arena;
  Vec<Span> skip;            // never scanned as roots
  Vec<Span> roots;           // scanned besides the writable mappings
  Vec<Cand> cands;
  Vec<std::uintptr_t> chan_of;  // each candidate's channel cores, then their indexes in chans
  Vec<Chan> chans;
  Vec<Obj> objs;
  Vec<std::uint32_t> work;   // reached objects whose memory is still to scan (kind in the high bit)
  Vec<std::pair<std::uint32_t, std::uint32_t>> waiters;  // (chan, candidate), sorted
  Vec<std::uint64_t> stuck;  // ids: nil channels and empty selects
  Vec<unsigned char> buf;    // read buffer
  std::uintptr_t omin = 0, ospan = 0;
  G* caller = nullptr;
  std::uintptr_t caller_sp = 0;
  std::uint64_t threads_generation = 0;  // the runtime thread registry's, when read
  std::uint64_t plain_epoch = 0;         // plain_wakeups() when the parked threads were listed
  pid_t pid = 0;
  bool overflow = false;
};

// Why the last proof could not be made (read in a debugger).
const char* volatile g_no_proof = nullptr;
bool no_proof(const char* why) {
  g_no_proof = why;
  return false;
}

constexpr const char* kUnknownThread = "a thread goro does not know is running";
constexpr const char* kUnsureThreads = "threads exited while the process's threads were listed";

bool reason_is(const char* r, const char* s) { return r != nullptr && std::strcmp(r, s) == 0; }

void collect(G* g, void* arg) {
  auto& pr = *static_cast<Proof*>(arg);
  GStatus st = g->status.load(std::memory_order_acquire);
  auto gaddr = reinterpret_cast<std::uintptr_t>(g);
  // The descriptor is the runtime's (saved sp, wait object, links), except
  // a live goroutine's inline closure, which is user data.
  pr.overflow |= !pr.skip.push({gaddr, gaddr + sizeof(G)});
  if (g->is_thread || st == GStatus::idle || st == GStatus::dead) return;
  Span closure{0, 0};
  if (g->closure == g->inline_closure)
    closure = {reinterpret_cast<std::uintptr_t>(g->inline_closure),
               reinterpret_cast<std::uintptr_t>(g->inline_closure) + G::kInlineClosure};
  Span stack{0, 0};
  if (g->stack != nullptr) {
    auto sp = g == pr.caller ? pr.caller_sp : reinterpret_cast<std::uintptr_t>(g->sp);
    auto lo = reinterpret_cast<std::uintptr_t>(g->stack->lo);
    auto hi = reinterpret_cast<std::uintptr_t>(g->stack->hi);
    if (sp >= lo && sp < hi) stack = {sp & ~std::uintptr_t{7}, hi};
    else if (st != GStatus::runnable || g->sp != nullptr) pr.overflow = !no_proof("a stack pointer outside its stack");
  }
  const char* r = st == GStatus::waiting ? g->wait_reason : nullptr;
  if (reason_is(r, "chan send (nil chan)") || reason_is(r, "chan receive (nil chan)") ||
      reason_is(r, "select (no cases)")) {
    pr.overflow |= !pr.stuck.push(g->id);
    return;
  }
  const bool chan_op = reason_is(r, "chan send") || reason_is(r, "chan receive");
  if (g != pr.caller && g->wait_obj != nullptr && stack.hi != 0 && (chan_op || reason_is(r, "select"))) {
    Cand c{g, stack, closure, static_cast<std::uint32_t>(pr.chan_of.n), 0, false};
    if (chan_op) {
      pr.overflow |= !pr.chan_of.push(reinterpret_cast<std::uintptr_t>(g->wait_obj));
    } else {
      int k = select_chans(g->wait_obj, pr.chan_of.p + pr.chan_of.n, pr.chan_of.cap - pr.chan_of.n);
      if (k < 0) pr.overflow = true;
      else pr.chan_of.n += static_cast<std::size_t>(k);
    }
    c.nchans = static_cast<std::uint32_t>(pr.chan_of.n - c.first_chan);
    pr.overflow |= !pr.cands.push(c);
    return;
  }
  // Anything else that lives: its stack and closure are roots.
  if (stack.hi != 0) pr.overflow |= !pr.roots.push(stack);
  if (closure.hi != 0) pr.overflow |= !pr.roots.push(closure);
}

// The mapping of /proc/self/maps holding addr, from the parsed list.
const Span* mapping_of(Vec<Span>& maps, std::uintptr_t addr) {
  auto* it = std::upper_bound(maps.begin(), maps.end(), addr, [](std::uintptr_t a, const Span& s) { return a < s.lo; });
  if (it == maps.begin()) return nullptr;
  --it;
  return addr < it->hi ? it : nullptr;
}

// Reads all of /proc/self/maps; each mapping's span and whether the
// program can read and write it.
bool read_maps(Arena& a, Vec<Span>& all, Vec<Span>& writable) {
  int fd = ::open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  std::size_t cap = std::size_t{64} << 20;
  char* text = a.alloc<char>(cap);
  std::size_t len = 0;
  bool ok = text != nullptr;
  while (ok) {
    if (len == cap) {
      ok = false;
      break;
    }
    ssize_t n = ::read(fd, text + len, cap - len);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) ok = false;
    if (n <= 0) break;
    len += static_cast<std::size_t>(n);
  }
  ::close(fd);
  if (!ok) return false;
  std::size_t lines = static_cast<std::size_t>(std::count(text, text + len, '\n')) + 1;
  if (!all.init(a, lines) || !writable.init(a, lines)) return false;
  for (std::size_t i = 0; i < len;) {
    std::size_t e = i;
    while (e < len && text[e] != '\n') ++e;
    // "lo-hi perms offset dev inode path"
    char* p = text + i;
    char* end = nullptr;
    std::uintptr_t lo = std::strtoull(p, &end, 16);
    if (end == nullptr || *end != '-') return false;
    std::uintptr_t hi = std::strtoull(end + 1, &end, 16);
    if (end == nullptr || *end != ' ' || end + 3 > text + e) return false;
    all.push({lo, hi});
    if (end[1] == 'r' && end[2] == 'w') writable.push({lo, hi});
    i = e + 1;
  }
  return true;
}

// Calls word(w) on every aligned word of [lo, hi) of a mapping read from
// /proc/self/maps, through process_vm_readv into buf a chunk at a time: an
// unreadable range (a file mapping past the end of its file) is an error
// there instead of a fault, and such bytes are not readable by the program
// either.
template <class F>
void scan_mapping(Proof& pr, std::uintptr_t lo, std::uintptr_t hi, F&& word) {
  lo = (lo + 7) & ~std::uintptr_t{7};
  hi &= ~std::uintptr_t{7};
  while (lo < hi) {
    std::size_t n = std::min<std::size_t>(hi - lo, pr.buf.cap);
    iovec local{pr.buf.p, n};
    iovec remote{reinterpret_cast<void*>(lo), n};
    ssize_t got = process_vm_readv(pr.pid, &local, 1, &remote, 1, 0);
    if (got <= 0) {
      lo = (lo | 4095) + 1;  // skip the unreadable page
      continue;
    }
    const auto* w = reinterpret_cast<const std::uintptr_t*>(pr.buf.p);
    for (std::size_t i = 0, k = static_cast<std::size_t>(got) / 8; i < k; ++i) word(w[i]);
    lo += static_cast<std::uintptr_t>(got);
  }
}

// The same for memory the runtime knows is mapped and readable: a live
// goroutine's stack above its saved stack pointer, a descriptor's closure,
// a channel's buffer.
template <class F>
void scan_known(std::uintptr_t lo, std::uintptr_t hi, F&& word) {
  lo = (lo + 7) & ~std::uintptr_t{7};
  hi &= ~std::uintptr_t{7};
  for (; lo < hi; lo += 8) {
    std::uintptr_t w;
    __builtin_memcpy(&w, reinterpret_cast<const void*>(lo), 8);
    word(w);
  }
}

struct Reach {
  Proof& pr;
  void operator()(std::uintptr_t w) const {
    if (w - pr.omin >= pr.ospan) return;
    Obj* it = std::upper_bound(pr.objs.begin(), pr.objs.end(), w, [](std::uintptr_t a, const Obj& o) { return a < o.at.lo; });
    if (it == pr.objs.begin()) return;
    --it;
    if (w >= it->at.hi) return;
    bool& reached = it->is_chan ? pr.chans[it->index].reached : pr.cands[it->index].reached;
    if (reached) return;
    reached = true;
    pr.overflow |= !pr.work.push(it->index | (it->is_chan ? 0x80000000u : 0));
  }
};

// Whether every thread of the process is known to hold no user object
// outside the memory the scan covers: the caller, the runtime's threads
// and plain threads parked in goro (false with the reason set, as
// no_proof). Fills the stack spans below each one's entry frame or stack
// mark (runtime frames and dead slots, not scanned).
bool threads_known(Proof& pr, Vec<Span>& maps, pid_t self) {
  std::vector<RuntimeThread> rts = runtime_threads(&pr.threads_generation);
  std::vector<PlainParked> plain;
  plain_parked_threads(plain, &pr.plain_epoch);
  std::vector<pid_t> known{self};
  for (const RuntimeThread& t : rts) known.push_back(t.tid);
  for (const PlainParked& t : plain) known.push_back(t.tid);
  switch (only_threads(known)) {
    case ThreadsSeen::only_known:
      break;
    case ThreadsSeen::unsure:
      return no_proof(kUnsureThreads);
    case ThreadsSeen::unknown:
      return no_proof(kUnknownThread);
  }
  auto below = [&](std::uintptr_t mark) {
    if (const Span* m = mapping_of(maps, mark)) pr.overflow |= !pr.skip.push({m->lo, mark});
  };
  for (const RuntimeThread& t : rts) below(t.entry_frame);
  for (const PlainParked& t : plain) below(t.sp);
  if (pr.caller == nullptr) below(pr.caller_sp);
  return true;
}

void merge(Vec<Span>& v) {
  std::sort(v.begin(), v.end(), [](const Span& a, const Span& b) { return a.lo < b.lo; });
  std::size_t k = 0;
  for (std::size_t i = 0; i < v.n; ++i) {
    if (v[i].hi <= v[i].lo) continue;
    if (k > 0 && v[i].lo <= v[k - 1].hi) {
      v[k - 1].hi = std::max(v[k - 1].hi, v[i].hi);
    } else {
      v[k++] = v[i];
    }
  }
  v.n = k;
}

// With the world stopped: true and the ids in `out` when the proof ran. Not
// inlined: its locals must live below the stack mark, which is not scanned.
__attribute__((noinline)) bool prove(Proof& pr, std::vector<std::uint64_t>& out) {
  Arena& a = pr.arena;
  const std::size_t ng = goro::num_goroutines() + 4096;
  std::size_t nall = 0;
  for_each_g([](G*, void* n) { ++*static_cast<std::size_t*>(n); }, &nall);
  if (!pr.buf.init(a, std::size_t{1} << 20) || !pr.skip.init(a, nall + 4 * ng + 65536) || !pr.roots.init(a, 2 * ng + 64) ||
      !pr.cands.init(a, ng) || !pr.chan_of.init(a, 4 * ng + 65536) || !pr.stuck.init(a, ng) ||
      !pr.work.init(a, 8 * ng))
    return false;
  pr.buf.n = pr.buf.cap;

  Vec<Span> maps, writable;
  if (!read_maps(a, maps, writable)) return no_proof("cannot read /proc/self/maps");
  if (!threads_known(pr, maps, gettid())) return false;
  if (blocking_inflight() != 0) return no_proof("a goroutine.blocking call is in flight");  // a pool thread may run user code

  for_each_g(&collect, &pr);
  if (pr.overflow) return no_proof("collect");
  pr.overflow |= !pr.skip.push({a.lo(), a.hi()});
  stack_slabs([](const void* base, std::size_t len, void* arg) {
    auto& p = *static_cast<Proof*>(arg);
    auto b = reinterpret_cast<std::uintptr_t>(base);
    p.overflow |= !p.skip.push({b, b + len});
  }, &pr);

  // The channels: distinct cores, then each candidate's list as indexes.
  Vec<std::uintptr_t> cores;
  if (!cores.init(a, pr.chan_of.n + 1)) return false;
  for (std::uintptr_t c : pr.chan_of) cores.push(c);
  std::sort(cores.begin(), cores.end());
  cores.n = static_cast<std::size_t>(std::unique(cores.begin(), cores.end()) - cores.begin());
  if (!pr.chans.init(a, cores.n + 1) || !pr.objs.init(a, cores.n + 2 * pr.cands.n + 1) ||
      !pr.waiters.init(a, pr.chan_of.n + 1))
    return false;
  for (std::uintptr_t c : cores) {
    Chan ch{c, {0, 0}, {0, 0}, false};
    chan_extent(reinterpret_cast<const void*>(c), ch.extent.lo, ch.extent.hi, ch.buffer.lo, ch.buffer.hi);
    pr.chans.push(ch);
    // Only the core's own address counts: every handle holds exactly that,
    // and a word just inside the allocation may be malloc's (the next
    // block's header overlaps the last word of this one).
    pr.objs.push({{c, c + 1}, static_cast<std::uint32_t>(pr.chans.n - 1), true});
    pr.overflow |= !pr.skip.push(ch.extent);  // its fields are the runtime's (the waiter queues)
  }
  for (std::size_t i = 0; i < pr.cands.n; ++i) {
    Cand& c = pr.cands[i];
    for (std::uint32_t k = 0; k < c.nchans; ++k) {
      std::uintptr_t& slot = pr.chan_of[c.first_chan + k];
      slot = static_cast<std::uintptr_t>(std::lower_bound(cores.begin(), cores.end(), slot) - cores.begin());
      pr.waiters.push({static_cast<std::uint32_t>(slot), static_cast<std::uint32_t>(i)});
    }
    pr.objs.push({c.stack, static_cast<std::uint32_t>(i), false});
    if (c.closure.hi != 0) pr.objs.push({c.closure, static_cast<std::uint32_t>(i), false});
  }
  std::sort(pr.waiters.begin(), pr.waiters.end());
  std::sort(pr.objs.begin(), pr.objs.end(), [](const Obj& x, const Obj& y) { return x.at.lo < y.at.lo; });
  for (std::size_t i = 1; i < pr.objs.n; ++i) {
    if (pr.objs[i].at.lo < pr.objs[i - 1].at.hi) return false;  // overlapping objects: not a picture we understand
  }
  if (pr.objs.n > 0) {
    pr.omin = pr.objs[0].at.lo;
    std::uintptr_t omax = 0;
    for (const Obj& o : pr.objs) omax = std::max(omax, o.at.hi);
    pr.ospan = omax - pr.omin;
  }
  for (const Obj& o : pr.objs) pr.overflow |= !pr.skip.push(o.at);
  if (pr.overflow) return no_proof("out of room");
  merge(pr.skip);

  // Roots: the writable mappings minus the skipped spans, and the live
  // goroutines' stacks and closures.
  Reach reach{pr};
  if (pr.objs.n > 0) {
    for (const Span& m : writable) {
      std::uintptr_t at = m.lo;
      const Span* s = std::upper_bound(pr.skip.begin(), pr.skip.end(), at, [](std::uintptr_t x, const Span& y) { return x < y.lo; });
      if (s != pr.skip.begin() && (s - 1)->hi > at) at = (s - 1)->hi;
      for (; at < m.hi; ++s) {
        std::uintptr_t end = s != pr.skip.end() ? std::min(m.hi, s->lo) : m.hi;
        if (end > at) scan_mapping(pr, at, end, reach);
        if (s == pr.skip.end()) break;
        at = std::max(at, s->hi);
      }
    }
    for (const Span& r : pr.roots) scan_known(r.lo, r.hi, reach);
  }
  // Everything reached from there.
  while (pr.work.n > 0 && !pr.overflow) {
    std::uint32_t w = pr.work[--pr.work.n];
    std::uint32_t i = w & 0x7fffffffu;
    if ((w & 0x80000000u) != 0) {
      Chan& ch = pr.chans[i];
      scan_known(ch.buffer.lo, ch.buffer.hi, reach);
      auto* it = std::lower_bound(pr.waiters.begin(), pr.waiters.end(), std::make_pair(i, std::uint32_t{0}));
      for (; it != pr.waiters.end() && it->first == i; ++it) {
        Cand& c = pr.cands[it->second];
        if (c.reached) continue;
        c.reached = true;
        pr.overflow |= !pr.work.push(it->second);
      }
    } else {
      Cand& c = pr.cands[i];
      scan_known(c.stack.lo, c.stack.hi, reach);
      if (c.closure.hi != 0) scan_known(c.closure.lo, c.closure.hi, reach);
    }
  }
  if (pr.overflow) return false;
  // A thread listed as parked that was readied since (by a thread that
  // then exited before the enumeration) has been running during the scan:
  // its stack and what it reaches may have changed under it.
  if (plain_wakeups() != pr.plain_epoch) return no_proof("a parked plain thread was woken");
  for (std::uint64_t id : pr.stuck) out.push_back(id);
  for (const Cand& c : pr.cands) {
    if (!c.reached) out.push_back(c.g->id);
  }
  return true;
}

// Entered with every callee-saved register spilled into this frame: the
// caller's values are in memory at or above `mark`.
// `generation`: the thread registry's, as the proof read it.
__attribute__((noinline)) bool blocked_forever_ids_impl(std::vector<std::uint64_t>& out, std::uint64_t& generation) {
  __builtin_unwind_init();
  Arena arena(std::size_t{1} << 32);
  Proof* mem = arena.alloc<Proof>(1);
  if (mem == nullptr) return false;
  // In the arena, like everything the proof keeps: its fields point at the
  // objects, and this frame is above the stack mark (scanned).
  Proof& pr = *new (mem) Proof(arena);
  pr.caller = current_g();
  pr.pid = getpid();
  pr.caller_sp = reinterpret_cast<std::uintptr_t>(stack_mark());
  WorldStop w;
  stop_the_world(w, 100'000'000);
  std::vector<std::uint64_t> ids;
  ids.reserve(4096);
  bool ok = (w.all_stopped || no_proof("a P did not stop")) && prove(pr, ids);
  start_the_world(w);
  asm volatile("" ::: "memory");
  generation = pr.threads_generation;
  if (ok) out = std::move(ids);
  return ok;
}

}  // namespace

// Zeroes the stack below the caller's frame (as deep as it safely can, up to
// 64 KiB): the frames the proof then calls start clean, so values that
// earlier calls left in slots they never write again cannot pose as
// references. Only what lies above, in frames of the program's own, can.
__attribute__((noinline)) void clear_stack_below() {
  std::uintptr_t here = reinterpret_cast<std::uintptr_t>(__builtin_frame_address(0));
  std::uintptr_t lo = 0;
  if (G* g = current_g(); g != nullptr && g->stack != nullptr) {
    lo = reinterpret_cast<std::uintptr_t>(g->stack->lo);
  } else {
    thread_local std::uintptr_t thread_lo = 0;
    if (thread_lo == 0) {
      pthread_attr_t attr;
      if (pthread_getattr_np(pthread_self(), &attr) == 0) {
        void* addr = nullptr;
        std::size_t size = 0;
        if (pthread_attr_getstack(&attr, &addr, &size) == 0) thread_lo = reinterpret_cast<std::uintptr_t>(addr);
        pthread_attr_destroy(&attr);
      }
    }
    lo = thread_lo;
  }
  // Leave 16 KiB for the memset call and what interrupts it.
  if (lo == 0 || here < lo + 20 * 1024) return;
  std::size_t n = std::min<std::size_t>(64 * 1024, here - lo - 16 * 1024);
  void* p = __builtin_alloca(n);
  std::memset(p, 0, n);
  asm volatile("" : : "r"(p) : "memory");
}

bool blocked_forever_ids(std::vector<std::uint64_t>& out) {
  out.clear();
  // Sanitizer builds keep shadow memory, fake stacks and quarantined
  // allocations the scan cannot tell from the program's own: no proof.
  if constexpr (arch::kAsan || arch::kTsan) return false;
  arch::SanRuntimeScope san;
  // A runtime thread that is starting or ending is one the proof cannot
  // name yet, and a thread that exits while the threads are listed may hide
  // others (only_threads); either settles in microseconds (milliseconds on
  // a loaded machine), so try again while one does, for up to about a
  // second.
  for (int attempt = 0;; ++attempt) {
    std::uint64_t generation = 0;
    if (blocked_forever_ids_impl(out, generation)) break;
    const bool settling = reason_is(g_no_proof, kUnsureThreads) ||
                          (reason_is(g_no_proof, kUnknownThread) && runtime_threads_settling(generation));
    if (attempt == 200 || !settling) return false;
    std::this_thread::sleep_for(std::chrono::microseconds(attempt < 10 ? 100 : 5000));
  }
  std::sort(out.begin(), out.end());
  return true;
}

}  // namespace goro::rt::diag
