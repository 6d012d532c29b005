// goro/detail/spawn.h: how `go` turns a callable and its arguments into a
// goroutine without exposing the scheduler.
//
// The library hands out storage for the closure (inside the goroutine's
// descriptor when it fits, so a small spawn allocates nothing in steady
// state); the header constructs the decay-copied callable and arguments there
// and gives the runtime a thunk that invokes and then destroys them.
//
// `go` cannot take a defaulted std::source_location after its argument pack,
// so the first parameter is a Spawnable: a non-deduced wrapper implicitly
// converted from the callable at the call site, whose converting constructor
// has the defaulted source_location. The wrapper only refers to the callable;
// it lives until the end of the full expression that calls `go`.
#pragma once

#include <goro/export.h>

#include <cstddef>
#include <functional>
#include <new>
#include <source_location>
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

struct GHandle;  // the runtime's goroutine descriptor, opaque here

// Reserves a goroutine descriptor and `size` bytes of closure storage aligned
// to `align`; *storage receives the storage address.
GORO_EXPORT GHandle* g_alloc(std::size_t size, std::size_t align, void** storage);
// Makes the goroutine runnable. `thunk(storage)` runs on the new goroutine and
// must destroy what it constructed in storage before returning.
GORO_EXPORT void g_start(GHandle* g, void (*thunk)(void*), const SpawnOptions* opts,
                         const std::source_location& where);

template <class Fn, class... Args>
struct Closure {
  Fn fn;
  std::tuple<Args...> args;
  static void thunk(void* p) {
    auto* self = static_cast<Closure*>(p);
    struct Destroy {
      Closure* c;
      ~Destroy() { c->~Closure(); }
    } destroy{self};
    std::apply([self](auto&... a) { std::invoke(std::move(self->fn), std::move(a)...); },
               self->args);
  }
};

template <class Fn, class... Args>
void spawn_closure(const SpawnOptions* opts, const std::source_location& where, Fn&& fn,
                   Args&&... args) {
  using C = Closure<std::decay_t<Fn>, std::decay_t<Args>...>;
  void* storage = nullptr;
  GHandle* g = g_alloc(sizeof(C), alignof(C), &storage);
  ::new (storage) C{std::forward<Fn>(fn), std::tuple<std::decay_t<Args>...>(std::forward<Args>(args)...)};
  g_start(g, &C::thunk, opts, where);
}

template <class... Args>
class Spawnable {
 public:
  template <class F>
    requires std::is_invocable_v<std::decay_t<F>, std::decay_t<Args>...>
  Spawnable(F&& f, std::source_location where = std::source_location::current())  // NOLINT: implicit by design
      : where_(where) {
    if constexpr (std::is_function_v<std::remove_reference_t<F>>) {
      fnptr_ = reinterpret_cast<void (*)()>(&f);
      launch_ = [](const Spawnable& s, const SpawnOptions* o, Args&&... a) {
        spawn_closure(o, s.where_, reinterpret_cast<std::decay_t<F>>(s.fnptr_), std::forward<Args>(a)...);
      };
    } else {
      obj_ = const_cast<void*>(static_cast<const volatile void*>(std::addressof(f)));
      launch_ = [](const Spawnable& s, const SpawnOptions* o, Args&&... a) {
        spawn_closure(o, s.where_, std::forward<F>(*static_cast<std::remove_reference_t<F>*>(s.obj_)),
                      std::forward<Args>(a)...);
      };
    }
  }
  void launch(const SpawnOptions* opts, Args&&... args) const {
    launch_(*this, opts, std::forward<Args>(args)...);
  }

 private:
  void* obj_ = nullptr;
  void (*fnptr_)() = nullptr;
  void (*launch_)(const Spawnable&, const SpawnOptions*, Args&&...) = nullptr;
  std::source_location where_;
};

GORO_EXPORT void run_main(void* ctx, void (*fn)(void*));

}  // namespace detail
}  // namespace goro
