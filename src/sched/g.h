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
  void* closure = nullptr;      // inline_closure, or heap if it did not fit
  bool closure_on_heap = false;
  std::size_t closure_align = 16;  // of the heap closure

  // --- scheduling. `status` is bookkeeping for diagnostics: written
  // (relaxed) by whoever changes the G's state, never read to synchronize;
  // the run queues and park/ready order everything else.
  std::atomic<GStatus> status{GStatus::idle};
  bool is_thread = false;
  std::uint8_t stack_class = 0;
  // plain-thread waiter: the futex its park blocks on (here, it fills padding)
  std::atomic<std::uint32_t> thread_wake{0};
  G* sched_next = nullptr;  // global run queue / free list link (owner: that list's lock)

  // --- identity and diagnostics (goroutine dumps, panics)
  std::uint64_t id = 0;
  detail::SourceSite where;               // spawn site
  const char* wait_reason = nullptr;      // set while parked: "chan receive", "sleep", ...
  std::int64_t wait_since_ns = 0;         // coarse monotonic time of the park
  G* all_next = nullptr;                  // allgs link, immutable once published

  // --- TSan: the spawn edge (arch::san_edge_begin), consumed at start; no
  // room taken in other builds (a million descriptors: size matters)
  [[no_unique_address]] arch::SanEdgeField san_edge;

  static constexpr std::size_t kInlineClosure = 96;
  alignas(16) unsigned char inline_closure[kInlineClosure];
};

}  // namespace goro::rt
