// goro/debug.h: seeing inside a running program: goroutine dumps (Go's
// runtime.Stack(buf, true) and SIGQUIT traceback), a snapshot of every
// goroutine, and runtime statistics (runtime/metrics).
//
// Each may be called at any time from a goroutine or a plain thread. A dump
// stops the world only while it copies the goroutines' descriptors and the
// live part of parked goroutines' stacks; unwinding and naming the frames
// happen afterwards, while everything runs again (from a goroutine, through
// goro::blocking: on a thread-sized stack, and the goroutines queued behind
// it move to another thread if it takes long).
//
// Environment (read at runtime start):
//   GORO_SIGQUIT=0      leave SIGQUIT alone (default: a dump to stderr and
//                       exit status 2, as Go, unless the program installed
//                       its own handler first)
//   GORO_DEBUG=schedtrace=<ms>   one scheduler summary line per period on
//                       stderr (Go's schedtrace)
//   GORO_DEBUG=leaks=1  goro::Mutex records its holder (only the holder may
//                       unlock it) and a cycle of goroutines waiting for each
//                       other's Mutex is reported on stderr with their stacks;
//                       so are goroutines proved blocked forever on channels
//                       (blocked_forever(), checked every second)
//   GORO_DEBUG=migrate=1  parked goroutines resume on another thread whenever
//                       possible (finds thread_local misuse in tests)
#pragma once

#include <goro/export.h>
#include <goro/runtime.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace goro {

// One goroutine, as goroutines() saw it.
struct GoroutineInfo {
  std::uint64_t id = 0;
  std::string state;          // "running", "runnable", or the wait reason ("chan receive", ...)
  std::string wait_reason;    // empty unless waiting
  Clock::duration waiting_for{};  // how long it has been waiting (may read up to ~11 ms long)
  std::string spawn_site;     // "file:line" of the go() call
  std::string spawn_function; // the function that called go()
  std::uint64_t parent_id = 0;  // the goroutine that spawned it; 0 for one spawned by a plain thread
};

struct RuntimeStats {
  std::size_t goroutines = 0;   // live (spawned and not returned)
  std::size_t running = 0;
  std::size_t runnable = 0;
  std::size_t waiting = 0;
  int procs = 0;                // max_procs()
  std::size_t threads = 0;      // OS threads the runtime started that exist now (workers, pool, monitor)
  std::uint64_t spawned_total = 0;
  std::size_t stack_bytes_reserved = 0;   // address space of all stack slabs
  std::size_t stack_bytes_committed = 0;  // of which resident in RAM now (mincore)
  std::size_t timers = 0;       // armed timers (sleeps, Timers, Tickers, deadlines)
  std::size_t io_waiters = 0;   // goroutines and threads parked in the netpoller
  std::size_t blocking_threads = 0;  // goro::blocking pool threads
  std::size_t blocking_running = 0;  // of which running a job
  std::uint64_t handoffs = 0;   // times a stuck worker's queued work moved to another thread (in all)
};

// Every goroutine in Go's traceback text: one block per goroutine, the
// caller's first, then by id; blocks separated by a blank line:
//   goroutine 7 [chan receive, 3 minutes]:
//   main::worker(goro::Chan<int>)
//   	/src/main.cc:12 +0x45
//   created by main::serve()
//   	/src/main.cc:30
// A parked or runnable goroutine's frames come from its saved stack; a
// running one on another thread shows "goroutine running on other thread;
// stack unavailable". Frames are named from the binary's symbol table
// (file:line where debug info exists); an unknown frame is "?".
GORO_EXPORT std::string goroutine_dump();

// The same content as JSON, for tools: {"goroutines":[{"id", "state",
// "wait_reason", "waiting_ms", "parent_id", "created_by": {"function",
// "file", "line"}, "wait_object": {"kind", "address", "len", "cap"},
// "frames": [{"function", "file", "line", "module", "pc"}]}, ...]}.
GORO_EXPORT std::string goroutine_dump_json();

// A snapshot of every live goroutine (no stacks: cheap).
GORO_EXPORT std::vector<GoroutineInfo> goroutines();

// Counters, cheap enough to read every second.
GORO_EXPORT RuntimeStats runtime_stats();

// Go's goleak, for tests: the goroutines that exist now and are not in
// `baseline` (a goroutines() taken before) nor the caller, after giving them
// up to `grace` to finish. Empty: nothing leaked.
//   auto before = goro::goroutines();
//   ... code under test ...
//   EXPECT_TRUE(goro::find_leaks(before).empty());
// Each entry says where the goroutine was spawned and what it waits for.
GORO_EXPORT std::vector<GoroutineInfo> find_leaks(const std::vector<GoroutineInfo>& baseline,
                                                  Clock::duration grace = std::chrono::seconds(1));

// The goroutines proved blocked forever: parked on a nil channel or an empty
// select, or on channels that no code able to run can reach any more (no
// handle or pointer to them outside the stacks and closures of goroutines
// that are themselves blocked forever). The proof stops the world and scans
// the process's writable memory for anything that may point at them; a
// goroutine listed here is never woken. It errs only towards listing too
// few: empty when no proof can be made now (a thread goro does not know is
// running, a goro::blocking call is in flight, a goroutine computes without
// a scheduling point, an AddressSanitizer or ThreadSanitizer build).
// GORO_DEBUG=leaks=1 reports them on stderr, once each, checking every second.
GORO_EXPORT std::vector<GoroutineInfo> blocked_forever();

}  // namespace goro
