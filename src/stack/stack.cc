// src/stack/stack.cc: slabs, guard pages and the global stack pool; the
// design is described in stack.h.
//
// Locks: Pool::lock protects that size class's free lists and counters. It is
// a leaf lock: nothing else is acquired while it is held (mmap and madvise
// calls are made outside it). Global::trim_lock serializes trims and is taken
// before a Pool::lock.
#include "stack/stack.h"

#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>
#include <vector>
#include <algorithm>

#include "arch/sanitizer.h"
#include "sched/fatal.h"
#include "sched/lock.h"
#include "sched/sched.h"

#ifndef MADV_GUARD_INSTALL
#define MADV_GUARD_INSTALL 102
#endif

namespace goro::rt {

namespace {

constexpr std::uint8_t kMinClassShift = 14;  // 16 KiB
constexpr std::uint8_t kClasses = 17;        // 16 KiB .. 1 GiB
constexpr std::size_t kSlabTargetBytes = std::size_t{64} << 20;

struct Pool {
  Lock lock;
  // Stacks taken from this pool ever: the demand stack_trim_settled watches.
  // Written under lock; read without it.
  std::atomic<std::uint64_t> takes{0};
  Stack* dirty = nullptr;  // LIFO: recently used stacks first, their pages are warm
  Stack* clean = nullptr;
  // Written under lock; relaxed atomics so that trim can peek without it.
  std::atomic<std::size_t> ndirty{0};
  std::atomic<std::size_t> nclean{0};
};

// Every slab ever mapped (slabs are never unmapped), for stack_stats. A
// lock-free stack of immutable nodes.
struct SlabInfo {
  char* base;
  std::size_t len;
  SlabInfo* next;
};

struct Global {
  Pool pools[kClasses];
  std::atomic<SlabInfo*> slab_list{nullptr};
  std::atomic<std::size_t> slabs{0};
  std::atomic<std::size_t> stacks{0};
  std::atomic<std::size_t> guarded_madvise{0};
  std::atomic<std::size_t> guarded_mprotect{0};
  std::atomic<std::size_t> unguarded{0};
  std::atomic<long> mprotect_budget{-1};  // mappings we allow ourselves to split
  std::atomic<int> madvise_guard{-1};     // -1 unknown, 0 unsupported, 1 works
  Lock trim_lock;                         // held for a whole stack_trim(); taken before a Pool::lock
  // stack_trim_settled's view (the monitor's thread is its only caller): the
  // pools' total takes when last seen to change, and when.
  std::uint64_t settle_takes = 0;
  std::int64_t settle_since = 0;
};

// Never destroyed: goroutines abandoned at exit may still hold stacks.
Global& global() {
  static Global* g = new Global;
  return *g;
}

long read_max_map_count() {
  long v = 65530;
  if (FILE* f = std::fopen("/proc/sys/vm/max_map_count", "r")) {
    if (std::fscanf(f, "%ld", &v) != 1) v = 65530;
    std::fclose(f);
  }
  return v;
}

// One last-level page table maps this much address space (2 MiB on x86-64
// and on AArch64 with 4 KiB pages; with larger pages a table maps more, and
// new_slab's one fault per 2 MiB is then merely more often than needed).
constexpr unsigned kPageTableShift = 21;

// Faults in the page table holding `guard` (see new_slab): by writing the
// previous stack's top word when `write_below`, else by reading the guard
// page. Uninstrumented: no goroutine owns these stacks yet.
__attribute__((no_sanitize("address", "thread"))) void fault_in(char* guard, bool write_below) {
  if (write_below) {
    *static_cast<volatile std::uint64_t*>(static_cast<void*>(guard - 8)) = 0;
  } else {
    (void)*static_cast<volatile const char*>(static_cast<void*>(guard));
  }
}

// Makes the page at `guard` a guard page; returns whether it is one.
bool install_guard(char* guard, Global& g) {
  const std::size_t ps = page_size();
  int mg = g.madvise_guard.load(std::memory_order_relaxed);
  if (mg != 0) {
    if (madvise(guard, ps, MADV_GUARD_INSTALL) == 0) {
      g.madvise_guard.store(1, std::memory_order_relaxed);
      g.guarded_madvise.fetch_add(1, std::memory_order_relaxed);
      return true;
    }
    g.madvise_guard.store(0, std::memory_order_relaxed);
  }
  long budget = g.mprotect_budget.load(std::memory_order_relaxed);
  if (budget < 0) {
    g.mprotect_budget.compare_exchange_strong(budget, read_max_map_count() / 4);
    budget = g.mprotect_budget.load(std::memory_order_relaxed);
  }
  // Each mprotect'd guard inside a slab adds two mappings.
  while (budget >= 2) {
    if (g.mprotect_budget.compare_exchange_weak(budget, budget - 2)) {
      if (mprotect(guard, ps, PROT_NONE) == 0) {
        g.guarded_mprotect.fetch_add(1, std::memory_order_relaxed);
        return true;
      }
      break;
    }
  }
  g.unguarded.fetch_add(1, std::memory_order_relaxed);
  return false;
}

// Batched madvise. process_madvise applies one advice to up to UIO_MAXIOV
// ranges in one system call; on Linux 6.13+ a process may give itself any
// advice that way, and since 6.16 the ranges of one MADV_DONTNEED call share
// one TLB flush. The flush is what costs: on this project's VM, with another
// thread of the process running on the other CPU, releasing 3,000 stacks one
// madvise each took 29.5 us a stack (an IPI per call) and 0.93 us batched by
// 64 (bench note in docs/ARCHITECTURE.md, "Stacks").
constexpr std::size_t kAdviseBatch = 64;  // 1 KiB of iovecs: may run on a small goroutine stack

// A pidfd of this process for one series of process_madvise calls (none is
// kept open between series); fd < 0 where pidfd_open is unavailable.
struct SelfPidfd {
  int fd = -1;
  SelfPidfd() {
#if defined(SYS_process_madvise) && defined(SYS_pidfd_open)
    fd = static_cast<int>(syscall(SYS_pidfd_open, getpid(), 0));
#endif
  }
  ~SelfPidfd() {
    if (fd >= 0) ::close(fd);
  }
  SelfPidfd(const SelfPidfd&) = delete;
  SelfPidfd& operator=(const SelfPidfd&) = delete;
};

// Applies `advice` to iov[0, n) (n <= kAdviseBatch) in one process_madvise
// call. Returns how many leading ranges it applied whole, or -1 if the call
// failed (the kernel does not allow it). A short count stops at the first
// range it did not finish; the caller redoes that one with madvise.
long advise_batch(const SelfPidfd& self, iovec* iov, std::size_t n, int advice) {
#if defined(SYS_process_madvise) && defined(SYS_pidfd_open)
  if (self.fd < 0) return -1;
  long r = syscall(SYS_process_madvise, self.fd, iov, n, advice, 0);
  if (r < 0) return -1;
  std::size_t left = static_cast<std::size_t>(r);
  long whole = 0;
  for (std::size_t j = 0; j < n && left >= iov[j].iov_len; ++j) {
    left -= iov[j].iov_len;
    ++whole;
  }
  return whole;
#else
  (void)self;
  (void)iov;
  (void)n;
  (void)advice;
  return -1;
#endif
}

// Installs the guard pages at base + i * stride for i in [0, n) with
// MADV_GUARD_INSTALL, kAdviseBatch ranges per system call instead of one
// madvise each (0.42 us a guard instead of 0.67-0.71 on this project's VM,
// 3,000 guards; a slab of 128 KiB stacks has ~500). Returns how many leading
// guards it installed; the caller installs the rest one by one (installing a
// guard twice is harmless). 0 (and never again) where the kernel cannot;
// 0 this time where no pidfd could be opened (the process may be out of
// descriptors only for now).
std::size_t install_guards_batched(char* base, std::size_t n, std::size_t stride, Global& g) {
  static std::atomic<bool> unsupported{false};
  if (g.madvise_guard.load(std::memory_order_relaxed) == 0 || unsupported.load(std::memory_order_relaxed)) return 0;
  const std::size_t ps = page_size();
  SelfPidfd self;
  iovec iov[kAdviseBatch];
  std::size_t done = 0;
  while (done < n) {
    const std::size_t k = std::min(kAdviseBatch, n - done);
    for (std::size_t j = 0; j < k; ++j) {
      iov[j].iov_base = base + (done + j) * stride;
      iov[j].iov_len = ps;
    }
    const long whole = advise_batch(self, iov, k, MADV_GUARD_INSTALL);
    if (whole < 0) {
      if (self.fd >= 0) unsupported.store(true, std::memory_order_relaxed);  // (no pidfd: out of descriptors, maybe for now)
      break;
    }
    done += static_cast<std::size_t>(whole);
    if (static_cast<std::size_t>(whole) < k) break;
  }
  if (done > 0) {
    g.madvise_guard.store(1, std::memory_order_relaxed);
    g.guarded_madvise.fetch_add(done, std::memory_order_relaxed);
  }
  return done;
}

// Applies `advice` to ranges[0, n): kAdviseBatch ranges per process_madvise
// call while the kernel takes it (`batch_off` remembers a refusal, per
// advice), one madvise each for what that did not do. Returns false if
// madvise itself refused the advice (a kernel without it).
bool advise_ranges(iovec* ranges, std::size_t n, int advice, std::atomic<bool>& batch_off) {
  std::size_t done = 0;
  if (n > 1 && !batch_off.load(std::memory_order_relaxed)) {
    SelfPidfd self;
    while (done < n) {
      const std::size_t k = std::min(kAdviseBatch, n - done);
      const long whole = advise_batch(self, &ranges[done], k, advice);
      if (whole < 0) {
        if (self.fd >= 0) batch_off.store(true, std::memory_order_relaxed);  // as for the guards
        break;
      }
      done += static_cast<std::size_t>(whole);
      if (static_cast<std::size_t>(whole) < k) break;
    }
  }
  for (; done < n; ++done) {
    if (madvise(ranges[done].iov_base, ranges[done].iov_len, advice) != 0 && errno == EINVAL) return false;
  }
  return true;
}

// Returns the pages of `ranges` to the OS (MADV_DONTNEED).
void release_ranges(std::vector<iovec>& ranges) {
  static std::atomic<bool> batch_off{false};
  advise_ranges(ranges.data(), ranges.size(), MADV_DONTNEED, batch_off);
}

// How many stacks' top pages one take commits: 1.3 us a page at 16 a call
// (4 at a time: 1.7 us; 1 at a time: 3.4 us).
constexpr std::size_t kCommitAhead = 16;
static_assert(kCommitAhead <= kAdviseBatch);

// Commits the top page of each of the unused stacks s[0, n), n <=
// kCommitAhead, before its first goroutine writes it (MADV_POPULATE_WRITE,
// Linux 5.14+): one system call for the lot instead of a page fault each. A fault is a trap into the
// kernel, and under a hypervisor often an exit from the guest as well: on
// this project's VM one cost 13-16 us, and a page committed this way, 16 to
// a call, 1.3 us (docs/ARCHITECTURE.md, "Stacks"). Only the page the
// initial frame goes on: deeper pages are committed by the goroutines that
// reach them. Not under TSan, whose goroutine start re-maps a stack that has
// resident pages (san_fresh_stack).
void populate_tops(Stack** s, std::size_t n) {
  static std::atomic<bool> batch_off{false};
  static std::atomic<bool> unsupported{false};
  if (arch::kTsan || n == 0 || unsupported.load(std::memory_order_relaxed)) return;
  const std::size_t ps = page_size();
  iovec iov[kCommitAhead];
  for (std::size_t i = 0; i < n; ++i) iov[i] = iovec{s[i]->hi - ps, ps};
  if (!advise_ranges(iov, n, MADV_POPULATE_WRITE, batch_off)) unsupported.store(true, std::memory_order_relaxed);
}

// Maps a slab for `cls`, carves it, keeps the first stack and pools the rest.
Stack* new_slab(std::uint8_t cls) {
  Global& g = global();
  const std::size_t ps = page_size();
  const std::size_t ssize = std::size_t{1} << (cls + kMinClassShift);
  const std::size_t stride = ssize + ps;  // guard page, then the stack
  std::size_t n = kSlabTargetBytes / stride;
  if (n == 0) n = 1;
  void* base = mmap(nullptr, n * stride, PROT_READ | PROT_WRITE,
                    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (base == MAP_FAILED) fatal("out of memory: cannot map goroutine stacks");
  // A stack touches a page or two; a transparent huge page would commit 2 MiB.
  madvise(base, n * stride, MADV_NOHUGEPAGE);
  auto* descs = new (std::nothrow) Stack[n];
  if (descs == nullptr) fatal("out of memory: cannot allocate stack descriptors");
  std::uintptr_t last_table = ~std::uintptr_t{0};
  for (std::size_t i = 0; i < n; ++i) {
    char* guard = static_cast<char*>(base) + i * stride;
    // Fault in the first page of each page table (2 MiB) that will hold a
    // guard before installing the guard, by an ordinary page fault. On this
    // project's VM (shadow paging), a MADV_GUARD_INSTALL that itself has to
    // create the page table makes every page the process touched before slow
    // on its next touch (~5-10 us each; measured in docs/ARCHITECTURE.md,
    // "Stacks"); after a fault has created it, neither. The page faulted in
    // is the top of the previous stack, which its first goroutine writes
    // anyway (committed a little early, no extra fault), or for the slab's
    // first guard, the guard page read (the shared zero page, then replaced
    // by the guard).
    auto table = reinterpret_cast<std::uintptr_t>(guard) >> kPageTableShift;
    if (table != last_table) {
      last_table = table;
      fault_in(guard, i > 0 && (reinterpret_cast<std::uintptr_t>(guard - 8) >> kPageTableShift) == table);
    }
    descs[i].lo = guard + ps;
    descs[i].hi = guard + stride;
    descs[i].size_class = cls;
  }
  // The guards: as many as one process_madvise call takes at a time, then
  // one by one for what it did not (an older kernel, a seccomp filter).
  std::size_t i = install_guards_batched(static_cast<char*>(base), n, stride, g);
  for (std::size_t k = 0; k < i; ++k) descs[k].guarded = true;
  for (; i < n; ++i) descs[i].guarded = install_guard(static_cast<char*>(base) + i * stride, g);
  for (std::size_t k = 0; k < n; ++k) {
    if (!descs[k].guarded) std::memcpy(descs[k].lo, &kStackCanary, sizeof kStackCanary);
  }
  g.slabs.fetch_add(1, std::memory_order_relaxed);
  g.stacks.fetch_add(n, std::memory_order_relaxed);
  auto* info = new SlabInfo{static_cast<char*>(base), n * stride, g.slab_list.load(std::memory_order_relaxed)};
  while (!g.slab_list.compare_exchange_weak(info->next, info, std::memory_order_release, std::memory_order_relaxed)) {
  }
  if (n > 1) {
    Pool& p = g.pools[cls];
    for (std::size_t i = 1; i + 1 < n; ++i) descs[i].next = &descs[i + 1];
    p.lock.lock();
    descs[n - 1].next = p.clean;
    p.clean = &descs[1];
    p.nclean += n - 1;
    p.lock.unlock();
  }
  descs[0].next = nullptr;
  return &descs[0];
}

}  // namespace

std::size_t page_size() {
  static const std::size_t ps = static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
  return ps;
}

void commit_pages(void* addr, std::size_t len) { (void)madvise(addr, len, MADV_POPULATE_WRITE); }

std::uint8_t stack_class_for(std::size_t bytes) {
  if (bytes <= (std::size_t{1} << kMinClassShift)) return 0;
  // ceil(log2(bytes)) - kMinClassShift, at most the largest class.
  const unsigned lg = 64u - static_cast<unsigned>(__builtin_clzll(bytes - 1));
  return static_cast<std::uint8_t>(std::min<unsigned>(lg - kMinClassShift, kClasses - 1));
}

namespace {

// Under p.lock: marks s (unless committed already) and the clean stacks
// that the next takes will get as committed, and lists them in ahead for
// populate_tops. The walk stops at the first committed one: the rest were
// committed by an earlier take (or, past a trimmed stack put back in
// front, will be when a take reaches them).
void mark_ahead(Pool& p, Stack* s, Stack** ahead, std::size_t& n) {
  if (!s->top_committed) {
    s->top_committed = true;
    ahead[n++] = s;
  }
  for (Stack* c = p.clean; c != nullptr && n < kCommitAhead && !c->top_committed; c = c->next) {
    c->top_committed = true;
    ahead[n++] = c;
  }
}

}  // namespace

Stack* stack_alloc_global(std::uint8_t cls) {
  Pool& p = global().pools[cls];
  // One stack per take, not a batch per P: stacks then follow the order
  // goroutines first ran in across all Ps (see above g_get in sched.cc). A
  // take of a clean stack commits the top pages of it and of the next clean
  // ones in one call (populate_tops), whichever P takes those. Marked under
  // the lock, so each page is asked for once; another P's take racing with
  // the commit is harmless (a fault meanwhile, and the commit finds the
  // page present).
  Stack* ahead[kCommitAhead];
  std::size_t nahead = 0;
  p.lock.lock();
  Stack* s = p.dirty;
  if (s != nullptr) {
    p.dirty = s->next;
    --p.ndirty;
  } else if ((s = p.clean) != nullptr) {
    p.clean = s->next;
    --p.nclean;
    mark_ahead(p, s, ahead, nahead);
  }
  if (s != nullptr) p.takes.store(p.takes.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  p.lock.unlock();
  if (s == nullptr) {
    s = new_slab(cls);  // pools the rest of the slab
    p.lock.lock();
    p.takes.store(p.takes.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
    mark_ahead(p, s, ahead, nahead);
    p.lock.unlock();
  }
  populate_tops(ahead, nahead);
  s->next = nullptr;
  // LeakSanitizer scans a stack from its first use on (every stack passes
  // here before any goroutine runs on it; the per-P caches only hold stacks
  // that did). Only the usable part: it must not read the guard page.
  // Registering whole slabs up front made every ASan test process spend
  // 0.7 s at exit reading the untouched pages of 64 MiB slabs.
  if (arch::kAsan && !s->lsan_root) {
    arch::san_register_root(s->lo, s->size());
    s->lsan_root = true;
  }
  return s;
}

void stack_free_global(Stack* s) {
  Pool& p = global().pools[s->size_class];
  p.lock.lock();
  if (s->dirty) {
    s->next = p.dirty;
    p.dirty = s;
    ++p.ndirty;
  } else {
    s->next = p.clean;
    p.clean = s;
    ++p.nclean;
  }
  p.lock.unlock();
}

std::size_t stack_trim(bool wait, std::size_t max_stacks) {
  // trim_lock serializes trims, so a caller that waits sees every stack that
  // an earlier trim detached back in the pool, trimmed. Idle workers do not
  // wait: one trimming is enough.
  Global& g = global();
  if (wait) {
    g.trim_lock.lock();
  } else if (!g.trim_lock.try_lock()) {
    return 0;
  }
  const std::size_t ps = page_size();
  std::size_t trimmed = 0;
  std::vector<Stack*> batch;
  std::vector<iovec> ranges;
  for (Pool& p : g.pools) {
    if (rt::exiting()) break;  // exit waits for this worker to freeze
    if (p.ndirty.load(std::memory_order_relaxed) <= kKeepDirty) continue;  // re-checked under the lock
    // The dirty list is LIFO: the first kKeepDirty entries are the warmest
    // and stay; up to max_stacks of the rest are detached and trimmed.
    batch.clear();
    p.lock.lock();
    if (p.ndirty > kKeepDirty) {
      Stack* keep = p.dirty;
      for (std::size_t i = 1; i < kKeepDirty; ++i) keep = keep->next;
      std::size_t n = std::min<std::size_t>(p.ndirty - kKeepDirty, max_stacks - trimmed);
      for (std::size_t i = 0; i < n; ++i) {
        Stack* s = keep->next;
        keep->next = s->next;
        batch.push_back(s);
      }
      p.ndirty -= n;
    }
    p.lock.unlock();
    if (batch.empty()) continue;
    // Whole stacks go back, top page included: a million goroutines that
    // each touched one page would otherwise keep it all. Stacks adjacent in a
    // slab make one range (guard markers and PROT_NONE pages in between are
    // unaffected by MADV_DONTNEED), and the ranges go to the kernel in
    // batches (release_ranges).
    std::sort(batch.begin(), batch.end(), [](Stack* a, Stack* b) { return a->lo < b->lo; });
    if constexpr (arch::kTsan) {
      // One stack at a time, guard pages untouched (see san_release_stack_pages).
      for (Stack* s : batch) arch::san_release_stack_pages(s->lo, static_cast<std::size_t>(s->hi - s->lo));
    } else {
      ranges.clear();
      for (Stack* s : batch) {
        if (!ranges.empty() && static_cast<char*>(ranges.back().iov_base) + ranges.back().iov_len + ps == s->lo) {
          ranges.back().iov_len += ps + s->size();
        } else {
          ranges.push_back(iovec{s->lo, s->size()});
        }
      }
      release_ranges(ranges);
    }
    for (Stack* s : batch) {
      if (!s->guarded) std::memcpy(s->lo, &kStackCanary, sizeof kStackCanary);
      s->dirty = false;
      s->top_committed = false;
    }
    for (std::size_t i = 0; i + 1 < batch.size(); ++i) batch[i]->next = batch[i + 1];
    p.lock.lock();
    batch.back()->next = p.clean;
    p.clean = batch.front();
    p.nclean += batch.size();
    p.lock.unlock();
    trimmed += batch.size();
    if (trimmed >= max_stacks) break;
  }
  g.trim_lock.unlock();
  return trimmed;
}

std::size_t stack_trim_settled(std::int64_t now_ns, std::size_t max_stacks) {
  Global& g = global();
  std::uint64_t takes = 0;
  bool over = false;
  for (Pool& p : g.pools) {
    takes += p.takes.load(std::memory_order_relaxed);
    over = over || p.ndirty.load(std::memory_order_relaxed) > kKeepDirty;
  }
  if (takes != g.settle_takes || g.settle_since == 0) {
    g.settle_takes = takes;
    g.settle_since = now_ns;
    return 0;
  }
  if (!over || now_ns - g.settle_since < kTrimSettleNs) return 0;
  return stack_trim(false, max_stacks);
}

void stack_set_canary(Stack* s) { std::memcpy(s->lo, &kStackCanary, sizeof kStackCanary); }

bool stack_canary_ok(const Stack* s) {
  if (s->guarded) return true;
  std::uint64_t v;
  std::memcpy(&v, s->lo, sizeof v);
  return v == kStackCanary;
}

bool stack_guard_hit(const void* addr, const Stack* s) {
  auto a = reinterpret_cast<std::uintptr_t>(addr);
  auto lo = reinterpret_cast<std::uintptr_t>(s->lo);
  return s->guarded && a < lo && a >= lo - page_size();
}

void stack_slabs(void (*fn)(const void* base, std::size_t len, void* arg), void* arg) {
  for (SlabInfo* i = global().slab_list.load(std::memory_order_acquire); i != nullptr; i = i->next) fn(i->base, i->len, arg);
}

StackStats stack_stats(bool resident) {
  Global& g = global();
  StackStats st;
  std::vector<unsigned char> vec;
  const std::size_t ps = page_size();
  for (SlabInfo* i = g.slab_list.load(std::memory_order_acquire); i != nullptr; i = i->next) {
    st.reserved_bytes += i->len;
    if (!resident) continue;
    vec.resize((i->len + ps - 1) / ps);
    if (mincore(i->base, i->len, vec.data()) != 0) continue;
    for (unsigned char v : vec) st.resident_bytes += (v & 1) * ps;
  }
  st.slabs = g.slabs.load();
  st.stacks = g.stacks.load();
  st.guarded_madvise = g.guarded_madvise.load();
  st.guarded_mprotect = g.guarded_mprotect.load();
  st.unguarded = g.unguarded.load();
  for (Pool& p : g.pools) {
    p.lock.lock();
    st.pooled += p.ndirty + p.nclean;
    st.pooled_dirty += p.ndirty;
    p.lock.unlock();
  }
  return st;
}

}  // namespace goro::rt
