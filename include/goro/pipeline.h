// goro/pipeline.h: channel combinators, the building blocks of Go's
// pipeline patterns ("Go Concurrency Patterns: Pipelines and
// cancellation", and the or-done / tee / bridge idioms of Go's folklore).
//
// Each function starts the goroutine(s) it needs and returns at once with
// an output channel (unbuffered, as Go's idiomatic versions make it). Every
// receive and every send those goroutines make also waits on ctx.done(), so
// a consumer that stops early and cancels the context leaves no goroutine
// behind: each one returns at its next step, and the outputs close.
//
//  - generate(ctx, range): sends each element of the range (a copy of it is
//    kept by the goroutine), then closes.
//  - or_done(ctx, in): forwards `in` until it closes or ctx ends; lets a
//    `for (T v : or_done(ctx, c))` loop stop on cancellation.
//  - merge(ctx, {in...}): fan-in: every value of every input, in the order
//    they arrive; closes when all inputs have closed (or ctx ends).
//  - tee(ctx, in): two outputs that each receive every value of `in`; a
//    value goes to both before the next is read, so the slower reader paces
//    both. Both close when `in` closes (or ctx ends).
//  - bridge(ctx, chans): a channel of channels read as one stream, each
//    inner channel drained in turn; closes when `chans` closes.
//  - take(ctx, in, n): the first n values of `in` (fewer if it closes).
// Inputs may be Chan<T> or RecvChan<T>; outputs are RecvChan<T>. A value
// in flight when ctx ends is dropped.
#pragma once

#include <goro/chan.h>
#include <goro/context.h>
#include <goro/runtime.h>
#include <goro/select.h>
#include <goro/sync.h>

#include <cstddef>
#include <iterator>
#include <memory>
#include <optional>
#include <ranges>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

namespace goro {

namespace detail {

template <class C>
concept RecvChannel = requires(const C& c) {
  typename C::value_type;
  { c.recv() } -> std::same_as<std::optional<typename C::value_type>>;
};

// v, ok := <-in, or nothing once ctx is done.
template <class T>
std::optional<T> recv_or_done(const Context& ctx, const RecvChan<T>& in) {
  std::optional<T> out;
  select(recv(ctx.done(), [] {}), recv(in, [&](std::optional<T> v) { out = std::move(v); }));
  return out;
}

// out <- v, or false once ctx is done.
template <class T, class V>
bool send_or_done(const Context& ctx, const SendChan<T>& out, V&& v) {
  return select(send(out, std::forward<V>(v)), recv(ctx.done(), [] {})) == 0;
}

}  // namespace detail

template <class R>
  requires std::ranges::input_range<R>
RecvChan<std::ranges::range_value_t<R>> generate(const Context& ctx, R&& range) {
  using T = std::ranges::range_value_t<R>;
  Chan<T> out(0);
  go([ctx, out, r = std::decay_t<R>(std::forward<R>(range))]() mutable {
    for (auto&& v : r) {
      if (!detail::send_or_done(ctx, SendChan<T>(out), T(v))) break;
    }
    out.close();
  });
  return out;
}

template <detail::RecvChannel C>
RecvChan<typename C::value_type> or_done(const Context& ctx, const C& in) {
  using T = typename C::value_type;
  Chan<T> out(0);
  go([ctx, out, in = RecvChan<T>(in)] {
    while (std::optional<T> v = detail::recv_or_done(ctx, in)) {
      if (!detail::send_or_done(ctx, SendChan<T>(out), std::move(*v))) break;
    }
    out.close();
  });
  return out;
}

template <detail::RecvChannel C>
RecvChan<typename C::value_type> merge(const Context& ctx, const std::vector<C>& ins) {
  using T = typename C::value_type;
  Chan<T> out(0);
  auto live = std::make_shared<WaitGroup>();
  for (const C& c : ins) {
    live->add(1);
    go([ctx, out, live, in = RecvChan<T>(c)] {
      while (std::optional<T> v = detail::recv_or_done(ctx, in)) {
        if (!detail::send_or_done(ctx, SendChan<T>(out), std::move(*v))) break;
      }
      live->done();
    });
  }
  go([out, live] {  // closes once every input's goroutine has returned
    live->wait();
    out.close();
  });
  return out;
}

template <class C, class... Cs>
  requires detail::RecvChannel<C> && (std::same_as<C, Cs> && ...)
RecvChan<typename C::value_type> merge(const Context& ctx, const C& first, const Cs&... rest) {
  return merge(ctx, std::vector<C>{first, rest...});
}

template <detail::RecvChannel C>
std::pair<RecvChan<typename C::value_type>, RecvChan<typename C::value_type>> tee(const Context& ctx, const C& in) {
  using T = typename C::value_type;
  Chan<T> out1(0), out2(0);
  go([ctx, out1, out2, in = RecvChan<T>(in)] {
    while (std::optional<T> v = detail::recv_or_done(ctx, in)) {
      // Both outputs get the value, in whichever order their readers come.
      Chan<T> a = out1, b = out2;
      bool done = false;
      for (int i = 0; i < 2 && !done; ++i) {
        select(send(a, *v, [&] { a = Chan<T>(); }), send(b, *v, [&] { b = Chan<T>(); }),
               recv(ctx.done(), [&] { done = true; }));
      }
      if (done) break;
    }
    out1.close();
    out2.close();
  });
  return {out1, out2};
}

template <detail::RecvChannel CC>
  requires detail::RecvChannel<typename CC::value_type>
RecvChan<typename CC::value_type::value_type> bridge(const Context& ctx, const CC& chans) {
  using Inner = typename CC::value_type;
  using T = typename Inner::value_type;
  Chan<T> out(0);
  go([ctx, out, chans = RecvChan<Inner>(chans)] {
    bool stop = false;
    while (!stop) {
      std::optional<Inner> inner = detail::recv_or_done(ctx, chans);
      if (!inner) break;
      RecvChan<T> c(*inner);
      while (std::optional<T> v = detail::recv_or_done(ctx, c)) {
        if (!detail::send_or_done(ctx, SendChan<T>(out), std::move(*v))) {
          stop = true;
          break;
        }
      }
      if (ctx.err()) break;
    }
    out.close();
  });
  return out;
}

template <detail::RecvChannel C>
RecvChan<typename C::value_type> take(const Context& ctx, const C& in, std::size_t n) {
  using T = typename C::value_type;
  Chan<T> out(0);
  go([ctx, out, n, in = RecvChan<T>(in)] {
    for (std::size_t i = 0; i < n; ++i) {
      std::optional<T> v = detail::recv_or_done(ctx, in);
      if (!v || !detail::send_or_done(ctx, SendChan<T>(out), std::move(*v))) break;
    }
    out.close();
  });
  return out;
}

}  // namespace goro
