// src/sched/g.h: G, the goroutine descriptor.
//
// A G is created by go() without a stack: the stack is taken from the pool the
// first time the G runs and returned when it exits, so goroutines queued but
// not yet started cost only their descriptor. Descriptors are recycled through
// per-P and global free lists and never freed; every G ever made is on the
// allgs list (for goroutine dumps).
//
// The same struct stands for a plain OS thread blocked in a goro primitive
// (is_thread): parking such a G blocks its thread on the futex `thread_wake`,
// and ready() wakes it. Wait queues therefore hold G* whatever the caller is.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

#include <goro/detail/spawn.h>

#include "arch/sanitizer.h"
#include "stack/stack.h"

namespace goro::rt {

struct P;

enum class GStatus : std::uint8_t {
  idle,      // on a free list
  runnable,  // on a run queue, or about to be
  running,
  waiting,   // parked; ready() makes it runnable
  dead,      // returned; about to be recycled
};

struct G {
  // --- switch state: written only by the thread running or switching this G.
  void* sp = nullptr;  // saved stack pointer while not running
  Stack* stack = nullptr;
  void* asan_fake_stack = nullptr;
  arch::SanFiber san;

  // --- closure
  void (*thunk)(void*) = nullptr;
  void* closure = nullptr;      // inline_closure, or heap if it did not fit (see closure_align)

  // --- scheduling. `status` is bookkeeping for diagnostics, never read to
  // schedule: the run queues and park/ready order everything. `waiting` and
  // `runnable`-after-a-yield are stored (release) by the context switched to,
  // after this G's context was saved, so a diagnostics reader that loads one
  // of them (acquire) may read the saved context; `running` is stored before
  // the switch into the G.
  std::atomic<GStatus> status{GStatus::idle};
  bool is_thread = false;
  std::uint8_t stack_class = 0;
  std::uint8_t closure_align_log2 = 4;  // alignment of a heap closure (closure != inline_closure)
  bool stack_unguarded = false;  // `stack` has no guard page: its canary is checked at each switch
  // plain-thread waiter: the futex its park blocks on (here, it fills
  // padding). Goroutines never park on it: under GORO_DEBUG=migrate=1 it
  // holds the id + 1 of the P a goroutine last ran on (migrate_filter).
  std::atomic<std::uint32_t> thread_wake{0};
  // Global run queue / free list link (owner: that list's lock), or the link
  // of a closing channel's list of parked Gs to ready (owner: the closer,
  // from the dequeue under the channel's lock to ready_list).
  G* sched_next = nullptr;

  // --- identity and diagnostics (goroutine dumps, panics)
  std::uint64_t id = 0;
  detail::SourceSite where;               // spawn site
  const char* wait_reason = nullptr;      // set while parked: "chan receive", "sleep", ...
  std::int64_t wait_since_ns = 0;         // when it parked: its P's clock_ns, never later (mono_now_ns)
  // What the G is parked on, for dumps and leak checks: the channel core of a
  // send or receive, the SelectState of a select, the Mutex of a lock;
  // null when the primitive does not say. Set before park, read only while
  // the G is parked (diagnostics, world stopped).
  const void* wait_obj = nullptr;
  std::uint64_t parent_id = 0;            // id of the goroutine that spawned it (0: a plain thread)
  G* all_next = nullptr;                  // allgs link, immutable once published

  // --- TSan: the spawn edge (arch::san_edge_begin), consumed at start; no
  // room taken in other builds (a million descriptors: size matters)
  [[no_unique_address]] arch::SanEdgeField san_edge;

  static constexpr std::size_t kInlineClosure = 96;
  alignas(16) unsigned char inline_closure[kInlineClosure];

  // Room for the waiter of the one channel send or receive this G may be
  // parked in (src/chan/chan.cc; a select's waiters are on its stack, one
  // per case). Here rather than on the stack so that a close that wakes
  // many walks descriptors, which are dense, instead of touching one stack
  // page per waiter: 100,000 waiters took 44 ms to walk at a page each.
  // Runtime bookkeeping like the rest of the G: the leak proof's scan
  // skips it (src/diag/reach.cc).
  static constexpr std::size_t kChanWaiter = 64;
  alignas(16) unsigned char chan_waiter[kChanWaiter];
};
// A million of them: keep it at five cache lines (TSan builds add the edge).
static_assert(arch::kTsan || sizeof(G) == 320, "goroutine descriptor grew past 320 bytes");

}  // namespace goro::rt
