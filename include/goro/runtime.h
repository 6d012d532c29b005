// goro/runtime.h: goroutines and the scheduler (Go's `go`, runtime.Gosched,
// time.Sleep, GOMAXPROCS, runtime.NumGoroutine).
//
// A goroutine is a stackful task run by an M:N work-stealing scheduler: one
// worker thread per P (max_procs() of them), each with a local run queue, a
// shared global queue, and stealing between them. Scheduling is cooperative:
// a goroutine runs until it blocks in a goro primitive, yields, or returns
// (there is no asynchronous preemption; see docs/ARCHITECTURE.md). A
// goroutine that blocks its OS thread (a read of a pipe or a file,
// std::this_thread::sleep_for, a std::mutex, a blocking library) or computes
// for long keeps its thread, but not the others' work: the runtime's monitor
// moves the goroutines queued behind it to another thread (at once for a
// thread asleep in the kernel, after 10 ms of computing; ARCHITECTURE
// "Hand-off"). Each such goroutine costs a thread while it blocks (at most
// 128 at once); goro::blocking marks a call known to block and runs it on a
// thread-sized stack (goro/blocking.h).
//
// Hazards a goroutine must know about (also in docs/ARCHITECTURE.md):
//  - A goroutine can resume on a different OS thread after any blocking goro
//    call. `thread_local` variables seen before and after such a call may be
//    different objects; use them only between blocking calls.
//  - Holding a std::mutex (or any OS-thread lock) across a blocking goro call
//    blocks the thread of every goroutine that then waits for it (each costs
//    a hand-off); use goro::Mutex.
//
// Every function here may be called from a goroutine or from a plain thread.
#pragma once

#include <goro/detail/spawn.h>
#include <goro/export.h>
#include <goro/panic.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <type_traits>

namespace goro {

using Clock = std::chrono::steady_clock;

// go(f, args...): runs f(args...) as a new goroutine. Arguments are
// decay-copied or moved, as std::thread does. Never blocks. The spawn site is
// recorded and printed if the goroutine panics. Starts the runtime on first
// use from any thread.
template <class... Args>
void go(std::type_identity_t<detail::Spawnable<Args...>> f, Args&&... args) {
  f.launch(nullptr, std::forward<Args>(args)...);
}

// go(options, f, args...): as above with per-spawn options (stack size).
template <class... Args>
void go(const SpawnOptions& options, std::type_identity_t<detail::Spawnable<Args...>> f,
        Args&&... args) {
  f.launch(&options, std::forward<Args>(args)...);
}

// run(main): runs main as a goroutine and blocks the caller until it returns;
// returns main's int result, or 0 for a void main. Goroutines still blocked
// when main returns are abandoned, as in Go. An exception escaping main is a
// panic (exit status 2). May be called more than once, and from a goroutine.
template <class F>
int run(F&& main, detail::SourceSite where = detail::SourceSite::current()) {
  using R = std::invoke_result_t<F&>;
  static_assert(std::is_void_v<R> || std::is_convertible_v<R, int>,
                "run(main): main must return void or int");
  struct Ctx {
    F* fn;
    int result;
  } ctx{&main, 0};
  detail::run_main(where, &ctx, [](void* p) {
    auto* c = static_cast<Ctx*>(p);
    if constexpr (std::is_void_v<R>) {
      (*c->fn)();
    } else {
      c->result = static_cast<int>((*c->fn)());
    }
  });
  return ctx.result;
}

// yield(): lets other goroutines run (runtime.Gosched). The caller goes to the
// back of its worker's run queue. On a plain thread it yields the OS thread.
GORO_EXPORT void yield();

// sleep_for / sleep_until (time.Sleep): park the goroutine on the runtime's
// timers; its worker thread runs other goroutines meanwhile. On a plain thread
// they block that thread. A non-positive duration returns at once.
GORO_EXPORT void sleep_until(Clock::time_point deadline);
template <class Rep, class Period>
void sleep_for(std::chrono::duration<Rep, Period> d) {
  if (d <= d.zero()) return;
  Clock::time_point now = Clock::now();
  Clock::duration rel = std::chrono::ceil<Clock::duration>(d);
  // Saturate instead of overflowing: sleep_for(Clock::duration::max()) sleeps
  // forever, as Go's Sleep of the largest Duration does.
  sleep_until(rel >= Clock::time_point::max() - now ? Clock::time_point::max() : now + rel);
}
template <class C, class D>
void sleep_until(std::chrono::time_point<C, D> tp) {
  sleep_for(tp - C::now());
}

// GOMAXPROCS: the number of worker threads running goroutines at once.
// Default: the CPUs available to the process, or the GOMAXPROCS environment
// variable at start. set_max_procs(n) with n < 1 panics; it may be called at
// any time and takes effect at each worker's next scheduling point.
GORO_EXPORT int max_procs();
GORO_EXPORT void set_max_procs(int n);

// Goroutines that exist now (started and not yet returned), like
// runtime.NumGoroutine. Exact when nothing spawns or exits concurrently.
GORO_EXPORT std::size_t num_goroutines();

// Id of the calling goroutine (1, 2, ...), or 0 on a plain thread.
GORO_EXPORT std::uint64_t goroutine_id();

// Stack size for goroutines spawned without SpawnOptions::stack_size.
// Default 128 KiB (or GORO_STACK_SIZE in bytes from the environment at start).
// Stacks are committed lazily: a goroutine costs the pages it touches.
GORO_EXPORT std::size_t default_stack_size();
GORO_EXPORT void set_default_stack_size(std::size_t bytes);

}  // namespace goro
