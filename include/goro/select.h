// goro/select.h: Go's select statement.
//
//   std::size_t i = goro::select(
//       goro::recv(in, [](std::optional<int> v) { ... }),   // case v, ok := <-in
//       goro::send(out, 42, [] { ... }),                    // case out <- 42
//       goro::default_case([] { ... }));                    // default
//
// select waits until one case can proceed, runs it, runs its handler, and
// returns the case's index in argument order. When several are ready it
// picks one uniformly at random; a blocking select registers on every
// channel in a random order, so no case is favoured. With default_case it
// never blocks. Nil channels are never ready. A receive case on a closed
// channel is ready and its handler gets std::nullopt; a send case on a closed
// channel panics "send on closed channel" when chosen. The same channel may
// appear in several cases, for sending and receiving alike. With no cases
// (or only nil channels) and no default, select blocks forever.
// send(c, v) builds the case's own T from v when the case is made (before
// select runs), as Go evaluates `c <- v` operands on entry: an rvalue v is
// moved into the case at once, whichever case runs.
//
// Leaving a loop from a case: a handler is a lambda, so `return` or `break`
// inside it cannot leave the enclosing function or loop. Use the index that
// select returns (as Go code uses a labelled break):
//
//   for (;;) {
//     std::size_t i = goro::select(
//         goro::recv(jobs, [&](int job) { process(job); }),
//         goro::recv(ctx.done()));
//     if (i == 1) return ctx.err();   // case <-ctx.Done(): return ctx.Err()
//   }
#pragma once

#include <goro/chan.h>
#include <goro/detail/chan_core.h>

#include <cstddef>
#include <functional>
#include <optional>
#include <tuple>
#include <type_traits>
#include <utility>

namespace goro {

namespace detail {
struct NoHandler {
  template <class... A>
  void operator()(A&&...) const {}
};

// The three handler forms of a receive case, tried in this order:
//   fn(std::optional<T>)  case v, ok := <-c   (nullopt once closed)
//   fn(T)                 case v := <-c       (T{} once closed, Go's zero value)
//   fn()                  case <-c
template <class T, class F>
inline constexpr bool kRecvTakesOptional = std::is_invocable_v<F&, std::optional<T>&&>;
template <class T, class F>
inline constexpr bool kRecvTakesValue = !kRecvTakesOptional<T, F> && std::is_invocable_v<F&, T&&>;
template <class T, class F>
inline constexpr bool kRecvTakesNothing =
    !kRecvTakesOptional<T, F> && !kRecvTakesValue<T, F> && std::is_invocable_v<F&>;

template <class T, class F>
struct RecvCase {
  static_assert(kRecvTakesOptional<T, F> || kRecvTakesValue<T, F> || kRecvTakesNothing<T, F>,
                "goro::recv(c, fn): fn must be callable as fn(std::optional<T>) (case v, ok := <-c), "
                "fn(T) (case v := <-c; T{} once closed) or fn() (case <-c)");
  static_assert(!kRecvTakesValue<T, F> || std::is_default_constructible_v<T>,
                "goro::recv(c, fn) with fn(T): T must be default-constructible (it receives T{} once the "
                "channel is closed); take std::optional<T> instead");
  ChanCore* chan;
  F fn;
  std::optional<T> slot;
  void fill(SelectCase& sc) { sc = {chan, &slot, false, false}; }
  void run(const SelectCase&) {
    if constexpr (kRecvTakesOptional<T, F>) {
      std::invoke(fn, std::move(slot));
    } else if constexpr (kRecvTakesValue<T, F>) {
      if (slot) {
        std::invoke(fn, std::move(*slot));
      } else {
        std::invoke(fn, T{});
      }
    } else {
      std::invoke(fn);
    }
  }
};

template <class T, class F>
struct SendCase {
  ChanCore* chan;
  T value;
  F fn;
  void fill(SelectCase& sc) { sc = {chan, &value, true, false}; }
  void run(const SelectCase&) { std::invoke(fn); }
};

template <class F>
struct DefaultCase {
  F fn;
};

template <class C>
struct is_default : std::false_type {};
template <class F>
struct is_default<DefaultCase<F>> : std::true_type {};
}  // namespace detail

// case v, ok := <-c: fn(std::optional<T>) with the value, or nullopt if
// closed. Also fn(T) (case v := <-c: T{} once closed) and fn() (case <-c);
// recv(c) alone drops the value.
template <class T, class F = detail::NoHandler>
detail::RecvCase<T, std::decay_t<F>> recv(const Chan<T>& c, F&& fn = {}) {
  return {detail::core_of(c), std::forward<F>(fn), std::nullopt};
}

// The same case on a receive-only view (<-chan T).
template <class T, class F = detail::NoHandler>
detail::RecvCase<T, std::decay_t<F>> recv(const RecvChan<T>& c, F&& fn = {}) {
  return {detail::core_of(c), std::forward<F>(fn), std::nullopt};
}

// case c <- v: fn() after the value was sent.
template <class T, class V, class F = detail::NoHandler>
detail::SendCase<T, std::decay_t<F>> send(const Chan<T>& c, V&& value, F&& fn = {}) {
  return {detail::core_of(c), T(std::forward<V>(value)), std::forward<F>(fn)};
}

// The same case on a send-only view (chan<- T).
template <class T, class V, class F = detail::NoHandler>
detail::SendCase<T, std::decay_t<F>> send(const SendChan<T>& c, V&& value, F&& fn = {}) {
  return {detail::core_of(c), T(std::forward<V>(value)), std::forward<F>(fn)};
}

// default:
template <class F = detail::NoHandler>
detail::DefaultCase<std::decay_t<F>> default_case(F&& fn = {}) {
  return {std::forward<F>(fn)};
}

template <class... Cases>
std::size_t select(Cases... cases) {
  constexpr int kDefaults = (0 + ... + int(detail::is_default<Cases>::value));
  static_assert(kDefaults <= 1, "select: at most one default_case");
  constexpr int kN = sizeof...(Cases);
  std::tuple<Cases&...> cs(cases...);
  // Channel cases in argument order; arg[i] maps a channel case to its argument index.
  detail::SelectCase sc[kN > 0 ? kN : 1];
  int arg[kN > 0 ? kN : 1];
  int n = 0;
  int default_arg = -1;
  [&]<std::size_t... I>(std::index_sequence<I...>) {
    (([&] {
       auto& c = std::get<I>(cs);
       if constexpr (detail::is_default<std::decay_t<decltype(c)>>::value) {
         default_arg = int(I);
       } else {
         c.fill(sc[n]);
         arg[n++] = int(I);
       }
     }()),
     ...);
  }(std::make_index_sequence<kN>{});
  int k = detail::select_impl(sc, n, kDefaults > 0);
  int chosen = k < 0 ? default_arg : arg[k];
  [&]<std::size_t... I>(std::index_sequence<I...>) {
    (([&] {
       if (int(I) != chosen) return;
       auto& c = std::get<I>(cs);
       if constexpr (detail::is_default<std::decay_t<decltype(c)>>::value) {
         std::invoke(c.fn);
       } else {
         c.run(sc[k]);
       }
     }()),
     ...);
  }(std::make_index_sequence<kN>{});
  return static_cast<std::size_t>(chosen);
}

}  // namespace goro
