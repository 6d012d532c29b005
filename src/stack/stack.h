// src/stack/stack.h: goroutine stacks.
//
// Stacks are carved from large anonymous mappings ("slabs") reserved with
// MAP_NORESERVE, so a stack costs only the pages its goroutine touches, and a
// million stacks cost a few thousand mappings rather than two million
// (vm.max_map_count is 65530 on a stock kernel). Each stack has a guard page
// below it, made in the cheapest way the kernel offers:
//   1. MADV_GUARD_INSTALL (Linux 6.13+): a guard marker inside the mapping,
//      no extra VMA, so every stack is guarded (a slab's guards go in
//      batches through process_madvise where it allows);
//   2. otherwise mprotect(PROT_NONE), which splits the mapping, as long as a
//      budget of mappings lasts (a quarter of vm.max_map_count);
//   3. past that budget, no guard page: a canary word at the lowest address of
//      the stack is checked at every switch away from the goroutine.
// A fault in a guard page is reported by the SIGSEGV handler as
// "stack overflow" naming the goroutine (src/sched/fatal.cc).
//
// Free stacks are pooled: a per-P cache (no lock) in front of a global pool
// per size class (under its lock). A take of a clean stack commits the top
// pages of it and of the next clean ones in one system call (populate_tops
// in stack.cc). Pages a stack dirtied stay committed while
// the pool is small; past kKeepDirty pooled stacks, trim returns
// each stack's pages to the OS (MADV_DONTNEED, adjacent stacks in one range,
// 64 ranges per system call where the kernel allows).
// An idle worker trims when every other P is idle too, and the monitor once
// the pool has gone untouched for kTrimSettleNs while some P stays busy, so
// memory falls back after a burst without a syscall on any hot path.
#pragma once

#include <cstddef>
#include <cstdint>

namespace goro::rt {

struct Stack {
  char* lo = nullptr;  // lowest usable address
  char* hi = nullptr;  // one past the highest usable address
  std::uint8_t size_class = 0;
  bool guarded = false;
  bool dirty = false;  // pages below the top may be committed
  bool top_committed = false;  // a clean stack whose top page was committed ahead of use (under the pool's lock)
  bool lsan_root = false;  // registered with LeakSanitizer (ASan builds)
  Stack* next = nullptr;  // free-list link, stored in the descriptor (not on the stack)

  std::size_t size() const { return static_cast<std::size_t>(hi - lo); }
};

// The canary of an unguarded stack; see stack_canary_ok().
inline constexpr std::uint64_t kStackCanary = 0x676f726f2d737461ULL;

std::size_t page_size();
// Rounds a requested stack size to its class (a power of two, >= 16 KiB).
std::uint8_t stack_class_for(std::size_t bytes);

// Takes a stack of at least `bytes` from the global pool, or a fresh slab.
// Never returns null: running out of address space is fatal.
Stack* stack_alloc_global(std::uint8_t size_class);
// Commits the pages of [addr, addr + len) now, in one system call, rather
// than by a fault at each first touch; best effort (a kernel without
// MADV_POPULATE_WRITE leaves them to be faulted in).
void commit_pages(void* addr, std::size_t len);
// Returns a stack to the global pool.
void stack_free_global(Stack* s);
// Returns the pages of pooled stacks beyond kKeepDirty to the OS, at most
// max_stacks of them per call. Cheap when there is nothing to do. Returns the
// number of stacks trimmed. With wait=false it returns 0 at once if another
// trim is in progress; with wait=true it waits for that one first.
std::size_t stack_trim(bool wait, std::size_t max_stacks = SIZE_MAX);
// Idle workers trim in chunks of this many stacks, re-checking for work
// between chunks.
inline constexpr std::size_t kTrimChunk = 4096;
// Trims (as stack_trim(false, max_stacks)) only once the pool has settled:
// no stack taken from it for kTrimSettleNs, as seen by calls to this at
// `now_ns`. The monitor calls it while some P is busy (an idle worker trims
// at once, but only when every other P is idle too: see find_runnable).
std::size_t stack_trim_settled(std::int64_t now_ns, std::size_t max_stacks);
inline constexpr std::int64_t kTrimSettleNs = 100'000'000;

bool stack_canary_ok(const Stack* s);
// Writes the canary of an unguarded stack (after its memory was replaced).
void stack_set_canary(Stack* s);

struct StackStats {
  std::size_t slabs = 0;          // mappings reserved
  std::size_t stacks = 0;         // stacks carved so far
  std::size_t pooled = 0;         // in the global pool
  std::size_t pooled_dirty = 0;   // of which may hold committed pages
  std::size_t guarded_madvise = 0;
  std::size_t guarded_mprotect = 0;
  std::size_t unguarded = 0;
  std::size_t reserved_bytes = 0;  // address space of every slab
  std::size_t resident_bytes = 0;  // of which in RAM now (mincore; only when asked)
};
StackStats stack_stats(bool resident = false);
// Calls fn on every slab ever mapped (all stacks live inside them).
void stack_slabs(void (*fn)(const void* base, std::size_t len, void* arg), void* arg);

// Finds the stack whose guard page holds `addr` (for the SIGSEGV handler;
// async-signal-safe: reads only immutable slab metadata).
bool stack_guard_hit(const void* addr, const Stack* s);

inline constexpr std::size_t kKeepDirty = 256;

}  // namespace goro::rt
