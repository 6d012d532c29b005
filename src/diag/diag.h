// src/diag/diag.h: the runtime's diagnostics (goroutine dumps, deadlock
// reports, stats), shared by the files of src/diag.
//
// A dump is taken in two steps. take_snapshot stops the world (every P at its
// next scheduling point, see stop_the_world in sched.cc) only long enough to
// copy each goroutine's descriptor and, for a goroutine whose context is
// saved, the live part of its stack (saved stack pointer to stack top,
// bounded). The world then runs again, and the copies are unwound and
// symbolized (unwind.cc: libdw, loaded on first use) at leisure: nothing of
// the live goroutines is read after the world restarts.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "arch/context.h"
#include "sched/g.h"

namespace goro::rt::diag {

struct GSnap {
  std::uint64_t id = 0;
  std::uint64_t parent_id = 0;
  GStatus status = GStatus::idle;
  bool is_caller = false;        // the goroutine that asked for the snapshot
  bool stack_elided = false;     // the copy budget ran out
  const char* wait_reason = nullptr;
  std::int64_t wait_since_ns = 0;
  detail::SourceSite where;
  const void* wait_obj = nullptr;
  long chan_len = -1, chan_cap = -1;  // when parked on a channel
  const void* self = nullptr;         // the descriptor (identity for lock-cycle edges)
  const void* lock_owner = nullptr;   // holder of the Mutex it waits for (GORO_DEBUG=leaks=1)
  // The copied stack: bytes [sp, sp + copy_len) of the goroutine's stack
  // live at Snapshot::bytes[copy_off ...]; its saved registers are the first
  // arch::kSavedFrameBytes of it.
  std::uintptr_t sp = 0;
  std::size_t copy_off = 0, copy_len = 0;
  std::vector<std::uintptr_t> pcs;  // filled by unwind (return addresses)
};

// Memory for the stack copies: one anonymous mapping populated up front (on
// some virtual machines a page fault costs tens of microseconds; one
// populate call for the whole buffer costs far less), grown by remapping.
class CopyBuffer {
 public:
  CopyBuffer() = default;
  CopyBuffer(const CopyBuffer&) = delete;
  CopyBuffer& operator=(const CopyBuffer&) = delete;
  ~CopyBuffer();
  void reserve(std::size_t cap);
  // Room for n more bytes (grows if needed); nullptr if memory ran out.
  unsigned char* append(std::size_t n);
  const unsigned char* data() const { return p_; }
  std::size_t size() const { return size_; }

 private:
  unsigned char* p_ = nullptr;
  std::size_t size_ = 0, cap_ = 0;
};

// Has the kernel fault in the pages of [p, p + n) in one call (best effort).
void populate(void* p, std::size_t n);

struct Snapshot {
  Snapshot() = default;
  Snapshot(const Snapshot&) = delete;
  Snapshot& operator=(const Snapshot&) = delete;
  // Clears the copied pointers (descriptors, wait objects) before the
  // memory goes back to malloc: a stale copy in a free block would count as
  // a reference in the leak proof's scan, and hide a leak.
  ~Snapshot();
  std::vector<GSnap> gs;                 // the caller first, then by id
  CopyBuffer bytes;                      // stack copies
  std::int64_t taken_ns = 0;             // coarse monotonic time
  bool all_stopped = true;               // every P stopped in time
};

// Per goroutine: at most this much stack is copied (deeper frames are
// elided, as Go elides frames past 100); all copies together at most
// kCopyBudget (frames of the rest are elided).
inline constexpr std::size_t kMaxStackCopy = 64 * 1024;
inline constexpr std::size_t kCopyBudget = std::size_t{256} << 20;
inline constexpr int kMaxFrames = 100;

// Takes a snapshot of every live goroutine (and copies of parked ones'
// stacks when `stacks`). Callable from goroutines and plain threads.
void take_snapshot(Snapshot& s, bool stacks);

// Fills g.pcs from its stack copy (the caller's from its own live stack).
// Returns false when no unwinder is available (libdw missing).
bool unwind(const Snapshot& s, GSnap& g);
void unwind_self(GSnap& g, int skip);

struct Symbol {
  std::string function;  // demangled, or "?"
  std::string file;      // source file, empty without debug info
  int line = 0;
  std::string module;    // the object file holding pc
  std::uintptr_t offset = 0;         // pc - function start
  std::uintptr_t module_offset = 0;  // pc - the module's load address (for addr2line)
};
// pc is a return address (looked up at pc - 1). Returns one frame, or with
// debug info one per function inlined at pc, innermost first, the real
// function last. Never throws.
std::vector<Symbol> symbolize(std::uintptr_t pc);

std::string render_text(Snapshot& s);
std::string render_json(Snapshot& s);

// Writes s to stderr (all of it, retrying short writes and EINTR).
void write_stderr(const std::string& s);

// The holder of a Mutex recorded under GORO_DEBUG=leaks=1 (src/sync/mutex.cc).
const void* mutex_owner(const void* m);
// Looks for goroutines waiting on each other's Mutex in a cycle and reports
// each new one on stderr with their stacks (the monitor calls it). Returns
// false when it could not look (some P did not stop): try again later.
bool check_lock_cycles();

// Channel internals for the dump (src/chan/chan.cc).
void chan_diag(const void* core, std::size_t& len, std::size_t& cap);

// The ids of the goroutines proved blocked forever (src/diag/reach.cc): on
// nil channels or an empty select, or on channels no running code can reach.
// False when no proof could be made now (a thread goro does not know runs,
// a goroutine.blocking call is in flight, a P did not stop, a sanitizer
// build): then nothing is claimed.
bool blocked_forever_ids(std::vector<std::uint64_t>& out);
// Zeroes the dead stack below the caller (see reach.cc); public entry points
// call it before they call a function that calls blocked_forever_ids.
void clear_stack_below();
// GORO_DEBUG=leaks=1: reports, once each, goroutines proved blocked forever,
// with their stacks (the monitor calls it every second).
void report_blocked_forever();

}  // namespace goro::rt::diag
