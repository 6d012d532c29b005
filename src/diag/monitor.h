// src/diag/monitor.h: the runtime's monitor thread (Go's sysmon's
// diagnostic duties): SIGQUIT dumps, the whole-program deadlock check and
// GORO_DEBUG=schedtrace. It sleeps on a futex word when there is nothing to
// do, so an idle program stays at zero CPU.
#pragma once

#include <goro/export.h>
#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <vector>

namespace goro::rt::diag {

inline constexpr std::uint32_t kCheckDeadlock = 1;  // the last P went idle, or a plain thread parked
inline constexpr std::uint32_t kSigquit = 2;
inline constexpr std::uint32_t kCheckLockCycles = 4;  // a goroutine parked on a Mutex (GORO_DEBUG=leaks=1)
inline constexpr std::uint32_t kSysmon = 8;  // a P left the idle list while the monitor slept

// Starts the thread (and installs the SIGQUIT handler); once, at runtime start.
void monitor_start();
// Asks the monitor to do `what` soon. Async-signal-safe (an atomic or and a
// futex wake), callable with any lock held.
void monitor_poke(std::uint32_t what);
// How many times the monitor's thread has woken (each a context switch
// that some core pays): for tests of how often it runs.
std::uint64_t monitor_wakeups();

// Threads the runtime made register themselves: the deadlock check and the
// leak proof count every other thread of the process as able to act, unless
// it is parked in a goro primitive. Every runtime thread is started by
// start_runtime_thread (counted as starting until it registers) and calls
// runtime_thread_add first; `entry_frame` is the frame address of the
// thread's first runtime function: below it the thread's stack holds only
// the runtime's own frames (never a live user object), above it the thread
// start's frames and its thread-local storage. A thread that leaves its
// loop for good calls runtime_thread_exiting and then runs only runtime
// code; it stays listed until it is gone from /proc/self/task.
void start_runtime_thread(std::function<void()> fn);
void runtime_thread_add(const void* entry_frame);
void runtime_thread_exiting();
struct RuntimeThread {
  pid_t tid;
  std::uintptr_t entry_frame;
  bool exiting;
};
// The registered threads; `generation` (if given) is the registry's count of
// registrations at the same instant.
std::vector<RuntimeThread> runtime_threads(std::uint64_t* generation = nullptr);
// Whether a check that read the registry at `generation` and then found a
// thread it does not know may pass if it tries again: a runtime thread is
// starting (not yet registered) or ending (not yet gone), or one registered
// after the check read the registry. False means the unknown thread was
// never the runtime's: every runtime thread is counted as starting from
// before it exists until it registers.
bool runtime_threads_settling(std::uint64_t generation);
// A thread's scheduling state as /proc/self/task/<tid>/stat says ('R'
// running or runnable, 'S' asleep interruptibly, 'D' uninterruptibly, ...);
// '?' if it cannot be read.
char thread_state(pid_t tid);
// A thread's time on a CPU and waiting for one, in ns, since it started
// (/proc/self/task/<tid>/schedstat); false if the kernel does not say.
bool thread_cpu_times(pid_t tid, std::int64_t& run_ns, std::int64_t& wait_ns);
// Whether every thread of the process (/proc/self/task) is in `known`:
// only_known, unknown (a thread not in `known` was listed), or unsure (the
// listing cannot be trusted to be complete: threads exited meanwhile; ask
// again shortly).
enum class ThreadsSeen { only_known, unknown, unsure };
ThreadsSeen only_threads(std::vector<pid_t> known);
// A GORO_DEBUG option ("schedtrace", "migrate", ...): its number, 0 when
// absent. GORO_DEBUG is read once, at the first call. Exported for
// goro::nats (its own options: natsasyncmux).
GORO_EXPORT long debug_option(const char* key);

// Threads of the runtime's own besides workers and the blocking pool.
int monitor_threads();

}  // namespace goro::rt::diag
