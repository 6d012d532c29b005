// src/diag/snapshot.cc: the stopped-world part of a dump: copy descriptors and
// the stacks of goroutines whose context is saved.
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "arch/sanitizer.h"
#include "diag/diag.h"
#include "goro/runtime.h"
#include "sched/futex.h"
#include "goro/sync.h"
#include "sched/sched.h"

namespace goro::rt::diag {

namespace {

// Copies a goroutine's stack. Not through memcpy: under ASan the live part of
// a parked stack holds the redzones of its frames' locals, and reading them
// is what a dump is for. The world is stopped (nothing writes these words
// but, rarely, a waker completing a channel operation into a parked
// receiver's slot: a value, never a saved register or return address).
__attribute__((no_sanitize("address", "thread")))
void copy_stack_words(unsigned char* dst, const unsigned char* src, std::size_t n) {
  for (std::size_t i = 0; i < n; i += 8) {
    std::uint64_t w;
    __builtin_memcpy(&w, src + i, 8);
    asm volatile("" : "+r"(w));  // keep the compiler from making this a memcpy call
    __builtin_memcpy(dst + i, &w, 8);
  }
}

// Reads a word of each parked stack (the page at its saved stack pointer and
// its top page) before the world stops. Parked stacks are 128 KiB apart,
// each on its own pages, and a first touch of a page after the process's
// page tables changed can cost microseconds on a VM (see "Stacks" in
// docs/ARCHITECTURE.md): paid here, while everything runs, it is not paid
// with the world stopped. The reads race with goroutines that resume
// meanwhile and are only warming: slabs are never unmapped and a saved stack
// pointer always lies inside some stack, so every address read is mapped;
// the values are discarded.
__attribute__((no_sanitize("address", "thread"))) void warm(G* g, void*) {
  GStatus st = g->status.load(std::memory_order_acquire);
  if (g->is_thread || (st != GStatus::waiting && st != GStatus::runnable)) return;
  Stack* stack = g->stack;
  void* sp = g->sp;
  if (stack == nullptr || sp == nullptr) return;
  auto p = reinterpret_cast<std::uintptr_t>(sp) & ~std::uintptr_t{7};
  auto lo = reinterpret_cast<std::uintptr_t>(stack->lo);
  auto hi = reinterpret_cast<std::uintptr_t>(stack->hi);
  if (p < lo || p + 8 > hi) return;
  std::uint64_t w;
  __builtin_memcpy(&w, reinterpret_cast<const void*>(p), 8);
  asm volatile("" : : "r"(w));
  __builtin_memcpy(&w, reinterpret_cast<const void*>(hi - 8), 8);
  asm volatile("" : : "r"(w));
}

struct Collect {
  Snapshot* s;
  G* caller;
  bool stacks;
  std::size_t budget;
};

void collect(G* g, void* arg) {
  auto& c = *static_cast<Collect*>(arg);
  // acquire: `waiting` and `runnable` are stored after the G's context was
  // saved (see G::status), so its sp and stack words below are complete.
  GStatus st = g->status.load(std::memory_order_acquire);
  if (st == GStatus::idle || st == GStatus::dead || g->is_thread) return;
  GSnap n;
  n.id = g->id;
  n.parent_id = g->parent_id;
  n.status = st;
  n.is_caller = g == c.caller;
  n.self = g;
  n.where = g->where;
  if (st == GStatus::running) {
    // In goro::blocking's inline call: shown with that reason (racy reads
    // of a running goroutine's fields: a hint, as its state is).
    const char* r = __atomic_load_n(&g->wait_reason, __ATOMIC_RELAXED);
    if (r == kInBlocking) {
      n.wait_reason = r;
      n.wait_since_ns = __atomic_load_n(&g->wait_since_ns, __ATOMIC_RELAXED);
    }
  }
  if (st == GStatus::waiting) {
    n.wait_reason = g->wait_reason;
    n.wait_since_ns = g->wait_since_ns;
    n.wait_obj = g->wait_obj;
    if (n.wait_obj != nullptr && n.wait_reason != nullptr &&
        (std::strcmp(n.wait_reason, "chan send") == 0 || std::strcmp(n.wait_reason, "chan receive") == 0)) {
      std::size_t len = 0, cap = 0;
      chan_diag(n.wait_obj, len, cap);
      n.chan_len = static_cast<long>(len);
      n.chan_cap = static_cast<long>(cap);
    }
    if (detail::leak_checks.load(std::memory_order_relaxed) && n.wait_obj != nullptr && n.wait_reason != nullptr &&
        std::strcmp(n.wait_reason, "sync.Mutex.Lock") == 0)
      n.lock_owner = mutex_owner(n.wait_obj);
  }
  if (c.stacks && !n.is_caller && (st == GStatus::waiting || st == GStatus::runnable) &&
      g->stack != nullptr && g->sp != nullptr) {
    auto sp = reinterpret_cast<std::uintptr_t>(g->sp);
    auto hi = reinterpret_cast<std::uintptr_t>(g->stack->hi);
    auto lo = reinterpret_cast<std::uintptr_t>(g->stack->lo);
    if (sp >= lo && sp + arch::kSavedFrameBytes <= hi) {
      std::size_t len = std::min<std::size_t>(hi - sp, kMaxStackCopy);
      len &= ~std::size_t{7};
      if (len <= c.budget) {
        c.budget -= len;
        n.copy_off = c.s->bytes.size();
        if (unsigned char* dst = c.s->bytes.append(len)) {
          n.sp = sp;
          n.copy_len = len;
          copy_stack_words(dst, reinterpret_cast<const unsigned char*>(sp), len);
        } else {
          n.stack_elided = true;
        }
      } else {
        n.stack_elided = true;
      }
    }
  }
  c.s->gs.push_back(std::move(n));
}

}  // namespace

void populate(void* p, std::size_t n) {
  const std::uintptr_t ps = static_cast<std::uintptr_t>(sysconf(_SC_PAGESIZE));
  std::uintptr_t b = (reinterpret_cast<std::uintptr_t>(p) + ps - 1) & ~(ps - 1);
  std::uintptr_t e = (reinterpret_cast<std::uintptr_t>(p) + n) & ~(ps - 1);
  if (e > b) madvise(reinterpret_cast<void*>(b), e - b, MADV_POPULATE_WRITE);  // best effort
}

Snapshot::~Snapshot() {
  for (GSnap& g : gs) {
    g.self = g.wait_obj = g.lock_owner = nullptr;
    g.sp = 0;
  }
  asm volatile("" ::: "memory");  // the stores are not dead: the scan reads freed blocks
}

CopyBuffer::~CopyBuffer() {
  if (p_ != nullptr) munmap(p_, cap_);
}

void CopyBuffer::reserve(std::size_t cap) {
  cap = (cap + 0xFFFF) & ~std::size_t{0xFFFF};
  if (cap <= cap_) return;
  void* m = p_ == nullptr ? mmap(nullptr, cap, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0)
                          : mremap(p_, cap_, cap, MREMAP_MAYMOVE);
  if (m == MAP_FAILED) return;
  if (p_ != nullptr) madvise(static_cast<char*>(m) + cap_, cap - cap_, MADV_POPULATE_WRITE);  // best effort
  p_ = static_cast<unsigned char*>(m);
  cap_ = cap;
}

unsigned char* CopyBuffer::append(std::size_t n) {
  if (size_ + n > cap_) reserve(std::max(2 * cap_, size_ + n));
  if (size_ + n > cap_) return nullptr;
  unsigned char* at = p_ + size_;
  size_ += n;
  return at;
}

void take_snapshot(Snapshot& s, bool stacks) {
  arch::SanRuntimeScope san;
  // Grow the vectors while everything runs. (Allocating while the world is
  // stopped is safe too: stopped Ps hold no lock, malloc's included, since
  // they stop on g0 between goroutines; only running threads may hold one,
  // and they release it.)
  std::size_t n = goro::num_goroutines() + 64;
  s.gs.reserve(n + n / 4);
  populate(s.gs.data(), s.gs.capacity() * sizeof(GSnap));
  if (stacks) s.bytes.reserve(std::min(kCopyBudget, (n + n / 4) * 1024));
  Collect c{&s, current_g(), stacks, kCopyBudget};
  if (stacks) for_each_g(&warm, nullptr);
  WorldStop w;
  stop_the_world(w, 100'000'000);
  s.all_stopped = w.all_stopped;
  s.taken_ns = mono_now_ns();
  for_each_g(&collect, &c);
  start_the_world(w);
  std::sort(s.gs.begin(), s.gs.end(), [](const GSnap& a, const GSnap& b) {
    if (a.is_caller != b.is_caller) return a.is_caller;
    return a.id < b.id;
  });
}

}  // namespace goro::rt::diag
