// goro/context.h: Go's context package.
//
// A Context carries a cancellation signal, an optional deadline and values
// down a tree of calls and goroutines. Context is a cheap copyable handle; a
// default-constructed Context is background(): never cancelled, no deadline,
// no values, done() is the nil channel.
//
//  - with_cancel(parent) -> {ctx, cancel}: ctx is done when cancel() is
//    called or the parent is done, whichever first.
//  - with_deadline(parent, tp) / with_timeout(parent, d): also done at tp
//    (err() == errc::deadline_exceeded). A child's deadline is never later
//    than its parent's.
//  - with_value(parent, key, value): value(key) finds it here or up the
//    chain (keys compare by identity), returning const T* or nullptr.
//  - done(): a channel closed when the context ends; use it in select.
//  - err(): empty while live, then errc::canceled or errc::deadline_exceeded;
//    the first reason stays.
// Cancelling a parent cancels every descendant; a child made from a done
// parent is done at once. CancelFunc is copyable, idempotent, and safe from
// any goroutine or thread; once called it detaches the context from its
// parent, so short-lived children do not accumulate. As in Go, a child that
// is never cancelled stays attached to its (cancellable) parent until the
// parent ends: call cancel when done.
#pragma once

#include <goro/chan.h>
#include <goro/errc.h>
#include <goro/export.h>
#include <goro/runtime.h>

#include <memory>
#include <optional>
#include <system_error>
#include <utility>
#include <variant>

namespace goro {

namespace detail {
struct CtxNode;  // src/context/context.cc
}

// A key for with_value. Keys compare by identity (their address), as Go
// recommends unexported key types: declare one `static const ContextKey<T>`.
template <class T>
class ContextKey {
 public:
  ContextKey() = default;
  ContextKey(const ContextKey&) = delete;
  ContextKey& operator=(const ContextKey&) = delete;
};

class CancelFunc;

class Context {
 public:
  Context() = default;  // background()

  // Closed when the context ends; the nil channel for background(). The
  // reference stays valid while this Context or a copy of it lives (copy
  // the Chan to keep it longer); taking it costs no reference count, so a
  // hundred thousand goroutines waiting on one context do not all write
  // the channel's count.
  GORO_EXPORT const Chan<std::monostate>& done() const;
  GORO_EXPORT std::error_code err() const;
  GORO_EXPORT std::optional<Clock::time_point> deadline() const;

  template <class T>
  const T* value(const ContextKey<T>& key) const {
    return static_cast<const T*>(find_value(&key));
  }

 private:
  friend struct detail::CtxNode;
  friend GORO_EXPORT std::pair<Context, CancelFunc> with_cancel(const Context& parent);
  friend GORO_EXPORT std::pair<Context, CancelFunc> with_deadline(const Context& parent, Clock::time_point tp);
  template <class T, class V>
  friend Context with_value(const Context& parent, const ContextKey<T>& key, V&& value);
  GORO_EXPORT static Context make_value(const Context& parent, const void* key, std::shared_ptr<const void> v);
  GORO_EXPORT const void* find_value(const void* key) const;

  explicit Context(std::shared_ptr<detail::CtxNode> n) : node_(std::move(n)) {}
  std::shared_ptr<detail::CtxNode> node_;  // null: background
};

class CancelFunc {
 public:
  CancelFunc() = default;
  GORO_EXPORT void operator()() const;

 private:
  friend GORO_EXPORT std::pair<Context, CancelFunc> with_cancel(const Context& parent);
  friend GORO_EXPORT std::pair<Context, CancelFunc> with_deadline(const Context& parent, Clock::time_point tp);
  explicit CancelFunc(std::shared_ptr<detail::CtxNode> n) : node_(std::move(n)) {}
  std::shared_ptr<detail::CtxNode> node_;
};

inline Context background() { return Context(); }
inline Context todo() { return Context(); }

GORO_EXPORT std::pair<Context, CancelFunc> with_cancel(const Context& parent);
GORO_EXPORT std::pair<Context, CancelFunc> with_deadline(const Context& parent, Clock::time_point tp);
template <class Rep, class Period>
std::pair<Context, CancelFunc> with_timeout(const Context& parent, std::chrono::duration<Rep, Period> d) {
  return with_deadline(parent, Clock::now() + std::chrono::ceil<Clock::duration>(d));
}

template <class T, class V>
Context with_value(const Context& parent, const ContextKey<T>& key, V&& value) {
  return Context::make_value(parent, &key, std::make_shared<const T>(std::forward<V>(value)));
}

}  // namespace goro
