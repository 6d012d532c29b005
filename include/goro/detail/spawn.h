// goro/detail/spawn.h: how `go` turns a callable and its arguments into a
// goroutine without exposing the scheduler.
//
// The library hands out storage for the closure (inside the goroutine's
// descriptor when it fits, so a small spawn allocates nothing in steady
// state); the header constructs the decay-copied callable and arguments there
// and gives the runtime a thunk that invokes and then destroys them.
//
// `go` cannot take a defaulted source location after its argument pack, so
// the first parameter is a Spawnable: a non-deduced wrapper implicitly
// converted from the callable at the call site, whose converting constructor
// has a defaulted SourceSite. The wrapper only refers to the callable; it
// lives until the end of the full expression that calls `go`.
//
// SourceSite stands in for std::source_location, which Debian 12's clang 14
// cannot use with libstdc++ 12 (no __builtin_source_location): the
// __builtin_FILE/LINE/FUNCTION family, which g++ and clang both evaluate at
// the call site when used as default arguments, gives the same.
#pragma once

#include <goro/export.h>

#include <cstddef>
#include <functional>
#include <new>
#include <tuple>
#include <type_traits>
#include <utility>

namespace goro {

// Per-spawn options: the overload go(SpawnOptions, f, args...) uses them.
struct SpawnOptions {
  // Usable stack bytes for this goroutine; 0 means the default
  // (set_default_stack_size). Rounded up to whole pages.
  std::size_t stack_size = 0;
};

namespace detail {

// Where a goroutine was spawned: file, line and function of the `go` call.
struct SourceSite {
  const char* file = "";
  unsigned line_no = 0;
  const char* function = "";
  static constexpr SourceSite current(const char* file = __builtin_FILE(), unsigned line = __builtin_LINE(),
                                      const char* function = __builtin_FUNCTION()) noexcept {
    return SourceSite{file, line, function};
  }
  constexpr const char* file_name() const noexcept { return file; }
  constexpr unsigned line() const noexcept { return line_no; }
  constexpr const char* function_name() const noexcept { return function; }
};

struct GHandle;  // the runtime's goroutine descriptor, opaque here

// Reserves a goroutine descriptor and `size` bytes of closure storage aligned
// to `align`; *storage receives the storage address.
GORO_EXPORT GHandle* g_alloc(std::size_t size, std::size_t align, void** storage);
// Makes the goroutine runnable. `thunk(storage)` runs on the new goroutine and
// must destroy what it constructed in storage before returning.
GORO_EXPORT void g_start(GHandle* g, void (*thunk)(void*), const SpawnOptions* opts,
                         const SourceSite& where);

// Runs after a goroutine's function returns or throws, once its closure is
// destroyed (WaitGroup::go's done()). fn null: nothing.
struct Finally {
  void (*fn)(void*) = nullptr;
  void* arg = nullptr;
  void run() const { fn(arg); }
};
// A plain go(): nothing to run, and no room taken in the closure (which must
// stay small enough for the descriptor's inline storage).
struct NoFinally {
  void run() const {}
};

template <class Fin, class Fn, class... Args>
struct Closure {
  Fn fn;
  std::tuple<Args...> args;
  [[no_unique_address]] Fin fin;
  static void thunk(void* p) {
    auto* self = static_cast<Closure*>(p);
    struct Destroy {
      Closure* c;
      ~Destroy() {
        Fin f = c->fin;
        c->~Closure();
        f.run();
      }
    } destroy{self};
    std::apply([self](auto&... a) { std::invoke(std::move(self->fn), std::move(a)...); },
               self->args);
  }
};

template <class Fin, class Fn, class... Args>
void spawn_closure(const SpawnOptions* opts, Fin fin, const SourceSite& where, Fn&& fn, Args&&... args) {
  using C = Closure<Fin, std::decay_t<Fn>, std::decay_t<Args>...>;
  void* storage = nullptr;
  GHandle* g = g_alloc(sizeof(C), alignof(C), &storage);
  ::new (storage) C{std::forward<Fn>(fn), std::tuple<std::decay_t<Args>...>(std::forward<Args>(args)...), fin};
  g_start(g, &C::thunk, opts, where);
}

// go(f, args...) calls f with rvalues of decay-copied arguments, as
// std::thread does; a reference parameter cannot bind to them.
template <class F, class... Args>
inline constexpr bool kSpawnInvocable = std::is_invocable_v<std::decay_t<F>, std::decay_t<Args>...>;

template <class... Args>
class Spawnable {
 public:
  template <class F>
    requires(!std::is_same_v<std::remove_cvref_t<F>, SpawnOptions>)
  Spawnable(F&& f, SourceSite where = SourceSite::current())  // NOLINT: implicit by design
      : where_(where) {
    static_assert(kSpawnInvocable<F, Args...>,
                  "goro::go(f, args...): f cannot be called with these arguments. They are decay-copied "
                  "into the goroutine, as std::thread copies them: to pass a reference, wrap the "
                  "argument in std::ref or std::cref (and keep the object alive while the goroutine "
                  "uses it)");
    if constexpr (kSpawnInvocable<F, Args...>) {
      if constexpr (std::is_function_v<std::remove_reference_t<F>>) {
        fnptr_ = reinterpret_cast<void (*)()>(&f);
        launch_ = [](const Spawnable& s, const SpawnOptions* o, const Finally* fin, Args&&... a) {
          auto f = reinterpret_cast<std::decay_t<F>>(s.fnptr_);
          if (fin == nullptr) {
            spawn_closure(o, NoFinally{}, s.where_, f, std::forward<Args>(a)...);
          } else {
            spawn_closure(o, *fin, s.where_, f, std::forward<Args>(a)...);
          }
        };
      } else {
        obj_ = const_cast<void*>(static_cast<const volatile void*>(std::addressof(f)));
        launch_ = [](const Spawnable& s, const SpawnOptions* o, const Finally* fin, Args&&... a) {
          auto&& f = std::forward<F>(*static_cast<std::remove_reference_t<F>*>(s.obj_));
          if (fin == nullptr) {
            spawn_closure(o, NoFinally{}, s.where_, std::forward<F>(f), std::forward<Args>(a)...);
          } else {
            spawn_closure(o, *fin, s.where_, std::forward<F>(f), std::forward<Args>(a)...);
          }
        };
      }
    }
  }
  void launch(const SpawnOptions* opts, Args&&... args) const {
    launch_(*this, opts, nullptr, std::forward<Args>(args)...);
  }
  // Spawns, and runs fin once the goroutine's function has returned or
  // thrown and its closure is destroyed.
  void launch_then(Finally fin, Args&&... args) const {
    launch_(*this, nullptr, &fin, std::forward<Args>(args)...);
  }

 private:
  void* obj_ = nullptr;
  void (*fnptr_)() = nullptr;
  void (*launch_)(const Spawnable&, const SpawnOptions*, const Finally*, Args&&...) = nullptr;
  SourceSite where_;
};

// run(main): main becomes a goroutine whose spawn site is run's caller.
GORO_EXPORT void run_main(const SourceSite& where, void* ctx, void (*fn)(void*));

}  // namespace detail
}  // namespace goro
