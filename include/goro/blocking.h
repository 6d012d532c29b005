// goro/blocking.h: run a call that blocks its OS thread (file I/O,
// getaddrinfo, a third-party blocking API) without stalling other
// goroutines.
//
//   auto text = goro::blocking([&] { return read_whole_file(path); });
//
// Called from a goroutine, f runs on a thread of a separate pool while the
// goroutine parks; its worker thread goes on running other goroutines. The
// pool grows on demand (one thread per concurrent blocking call, up to 1024;
// beyond that calls queue) and idle pool threads exit after 10 s. Called
// from a plain thread, f simply runs on that thread. The result, or the
// exception f throws, is returned to (rethrown in) the caller.
//
// A goroutine that calls a blocking function directly blocks its worker
// thread; the runtime's monitor then moves the goroutines queued on that
// worker to another thread once it has seen the thread asleep in the kernel
// (twice, 50 us apart; ARCHITECTURE "Hand-off"), so nothing stalls, but
// each such call costs a hand-off and runs on the goroutine's own (small)
// stack. blocking() is the explicit way: no hand-off, the pool thread's
// full-size stack (deep libraries such as getaddrinfo or libdw need it),
// and the goroutine shows as "[blocking]" in dumps. For short calls the
// pool's wake-up costs more than a hand-off (bench/stall/du: 0.94-0.99 s
// through blocking(), 0.58-0.62 s direct).
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
