// goro/blocking.h: run a call that blocks its OS thread (file I/O,
// getaddrinfo, a third-party blocking API) without stalling other
// goroutines.
//
//   auto text = goro::blocking([&] { return read_whole_file(path); });
//
// Called from a goroutine, f runs on the goroutine's own thread, as Go runs
// a system call, on a stack of a thread's size (8 MiB, the worker's "system
// stack": deep libraries such as getaddrinfo or libdw do not fit in a
// goroutine's stack), marked as a blocking call: as soon as the runtime's
// monitor sees the thread off the CPU, it moves the goroutines queued behind
// it to another thread (ARCHITECTURE "Hand-off"), so nothing stalls; a call
// that returns sooner costs little more than a function call. Inside f the
// thread acts as a plain thread: a goro primitive f uses (a channel, a
// Mutex) blocks the thread, not the goroutine. When 128 such calls already
// hold threads, f runs on a thread of a separate pool (up to 1024 threads;
// beyond that calls queue) while the goroutine parks. Called from a plain
// thread, f simply runs on that thread. The result, or the exception f
// throws, is returned to (rethrown in) the caller. The goroutine shows as
// "[blocking]" in dumps, and no deadlock is reported while a call runs.
//
// A goroutine that calls a blocking function directly gets the same
// hand-off, a little later (the monitor must first see its thread asleep in
// the kernel twice, 50 us apart, or computing for 10 ms), and the call runs
// on the goroutine's own (small) stack. For calls known to block, blocking()
// is the way: sooner hand-off, large stack, visible in dumps.
#pragma once

#include <goro/export.h>

#include <exception>
#include <optional>
#include <type_traits>
#include <utility>

namespace goro {

namespace detail {
// From a goroutine: runs fn(arg) on the thread's system stack (or, with no
// hand-off to be had, on a pool thread while the goroutine parks). On a
// plain thread: calls it directly. fn must not throw.
GORO_EXPORT void blocking_run(void (*fn)(void*) noexcept, void* arg);
}  // namespace detail

template <class F>
std::invoke_result_t<F&> blocking(F&& f) {
  using R = std::invoke_result_t<F&>;
  static_assert(!std::is_reference_v<R>, "goro::blocking: f must return by value");
  struct Job {
    std::remove_reference_t<F>* f;  // f may be an lvalue: F is then a reference
    std::conditional_t<std::is_void_v<R>, bool, std::optional<R>> result{};
    std::exception_ptr error;
  } job{&f, {}, {}};
  detail::blocking_run(
      [](void* a) noexcept {
        auto* j = static_cast<Job*>(a);
        try {
          if constexpr (std::is_void_v<R>) {
            (*j->f)();
          } else {
            j->result.emplace((*j->f)());
          }
        } catch (...) {
          j->error = std::current_exception();
        }
      },
      &job);
  if (job.error) std::rethrow_exception(job.error);
  if constexpr (!std::is_void_v<R>) return std::move(*job.result);
}

}  // namespace goro
