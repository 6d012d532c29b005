// goro/blocking.h: run a call that blocks its OS thread (file I/O,
// getaddrinfo, a third-party blocking API) without stalling other
// goroutines.
//
//   auto text = goro::blocking([&] { return read_whole_file(path); });
//
// Called from a goroutine, f runs on the goroutine's own thread, as Go runs
// a system call, marked as a blocking call: once it has been off the CPU
// for about 50 us, the runtime's monitor moves the goroutines queued behind
// it to another thread (ARCHITECTURE "Hand-off"), so nothing stalls; a call
// that returns sooner costs nothing more than a function call. When 128
// such calls already hold threads, f runs on a thread of a separate pool
// (up to 1024 threads; beyond that calls queue) while the goroutine parks.
// Called from a plain thread, f simply runs on that thread. The result, or
// the exception f throws, is returned to (rethrown in) the caller.
//
// A goroutine that calls a blocking function directly gets the same
// hand-off, a little later (the monitor must first see its thread asleep in
// the kernel twice, or computing for 10 ms); blocking() says so up front
// and keeps the goroutine counted as in a blocking call (dumps show
// "[blocking]"; no deadlock report is made while one runs).
#pragma once

#include <goro/export.h>

#include <exception>
#include <optional>
#include <type_traits>
#include <utility>

namespace goro {

namespace detail {
// Runs fn(arg) on a pool thread and parks the calling goroutine until it
// returns; calls it directly on a plain thread. fn must not throw.
GORO_EXPORT void blocking_run(void (*fn)(void*) noexcept, void* arg);
}  // namespace detail

template <class F>
std::invoke_result_t<F&> blocking(F&& f) {
  using R = std::invoke_result_t<F&>;
  static_assert(!std::is_reference_v<R>, "goro::blocking: f must return by value");
  struct Job {
    F* f;
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
