// goro/chan.h: Go's channels.
//
// Chan<T> is a handle with reference semantics, like std::shared_ptr: copies
// refer to the same channel, and the channel lives while a handle does. Its
// operations are const and thread-safe; they may be called from goroutines
// and from plain threads in any mix. A blocking operation parks the calling
// goroutine (its worker runs others) or blocks the calling plain thread.
//
// Semantics are Go's:
//  - Chan<T>() is the nil channel: send and receive block forever; close
//    panics "close of nil channel"; in a select it is never ready.
//  - Chan<T>(0) is unbuffered: a send completes when a receiver takes the
//    value. Chan<T>(n) buffers n values.
//  - Blocked senders and receivers are served in FIFO order; a value sent to
//    a parked receiver goes straight to it.
//  - send on a closed channel panics "send on closed channel"; closing twice
//    panics "close of closed channel". close wakes every blocked receiver
//    (they get std::nullopt) and every blocked sender (they panic).
//  - recv returns std::nullopt once the channel is closed and drained.
// T may be move-only and need not be default-constructible.
#pragma once

#include <goro/detail/chan_core.h>
#include <goro/panic.h>

#include <compare>
#include <cstddef>
#include <functional>
#include <iterator>
#include <optional>
#include <utility>

namespace goro {

template <class T>
class Chan;

template <class T>
class SendChan;
template <class T>
class RecvChan;

namespace detail {
template <class T>
ChanCore* core_of(const Chan<T>& c) noexcept;
template <class T>
ChanCore* core_of(const SendChan<T>& c) noexcept;
template <class T>
ChanCore* core_of(const RecvChan<T>& c) noexcept;
}  // namespace detail

template <class T>
class Chan {
  static_assert(!std::is_reference_v<T> && !std::is_const_v<T>, "Chan<T>: T must be a plain object type");

 public:
  using value_type = T;

  // The nil channel.
  Chan() noexcept = default;
  // make(chan T, cap).
  explicit Chan(std::size_t capacity) : core_(detail::chan_new(capacity, &detail::kElemOps<T>)) {}

  Chan(const Chan& o) noexcept : core_(o.core_) {
    if (core_ != nullptr) detail::chan_retain(core_);
  }
  Chan(Chan&& o) noexcept : core_(std::exchange(o.core_, nullptr)) {}
  Chan& operator=(Chan o) noexcept {
    std::swap(core_, o.core_);
    return *this;
  }
  ~Chan() {
    if (core_ != nullptr) detail::chan_release(core_);
  }

  // c <- v. Blocks until a receiver takes v (unbuffered) or it is buffered.
  void send(T v) const { detail::chan_send(core_, &v, true); }

  // v, ok := <-c. Blocks; std::nullopt once closed and drained.
  std::optional<T> recv() const {
    std::optional<T> out;
    detail::chan_recv(core_, &out, true);
    return out;
  }

  // select { case c <- v: default: }. Never blocks; moves from v only on
  // success. Panics on a closed channel, as send does.
  bool try_send(T& v) const { return detail::chan_send(core_, &v, false); }

  // select { case v := <-c: default: }. Never blocks; std::nullopt if no
  // value is ready (empty or closed: use select to tell them apart).
  std::optional<T> try_recv() const {
    std::optional<T> out;
    detail::chan_recv(core_, &out, false);
    return out;
  }

  // close(c).
  void close() const { detail::chan_close(core_); }

  std::size_t size() const noexcept { return detail::chan_size(core_); }      // len(c)
  std::size_t capacity() const noexcept { return detail::chan_cap(core_); }  // cap(c)

  explicit operator bool() const noexcept { return core_ != nullptr; }  // c != nil
  // c1 == c2: the same channel. <=> orders channels by identity (no meaning
  // beyond that), so a Chan can key a std::map; std::hash<Chan<T>> below
  // serves std::unordered_map (Go: channels as map keys).
  friend bool operator==(const Chan& a, const Chan& b) noexcept { return a.core_ == b.core_; }
  friend std::strong_ordering operator<=>(const Chan& a, const Chan& b) noexcept {
    return std::compare_three_way{}(a.core_, b.core_);
  }

  // for (T v : c): receives until closed and drained (for v := range c).
  // As Go evaluates the range expression once, the iterator holds its own
  // handle: reassigning or destroying the Chan variable inside the loop
  // changes nothing for the loop.
  class iterator {
   public:
    using iterator_category = std::input_iterator_tag;
    using value_type = T;
    using difference_type = std::ptrdiff_t;
    iterator() = default;
    explicit iterator(const Chan& c) : c_(c) { ++*this; }
    T& operator*() { return *cur_; }
    iterator& operator++() {
      cur_ = c_.recv();
      if (!cur_) c_ = Chan();
      return *this;
    }
    friend bool operator==(const iterator& a, const iterator& b) { return a.c_ == b.c_; }

   private:
    Chan c_;  // nil once the channel is closed and drained (== end())
    std::optional<T> cur_;
  };
  iterator begin() const { return iterator(*this); }
  iterator end() const { return iterator(); }

 private:
  friend detail::ChanCore* detail::core_of<T>(const Chan<T>&) noexcept;
  detail::ChanCore* core_ = nullptr;
};

template <class T>
Chan<T> make_chan(std::size_t capacity = 0) {
  return Chan<T>(capacity);
}

// SendChan<T> (Go's chan<- T) and RecvChan<T> (<-chan T): views of a channel
// with only one side, so `func worker(jobs <-chan int, results chan<- int)`
// keeps its meaning: a function taking RecvChan<int> cannot send on it or
// close it. Both are handles (copies share the channel), converted
// implicitly from Chan<T>, compared and hashed like it, and accepted by the
// matching select cases (recv for RecvChan, send for SendChan). A
// default-constructed view is nil.
template <class T>
class SendChan {
 public:
  using value_type = T;
  SendChan() noexcept = default;
  SendChan(Chan<T> c) noexcept : c_(std::move(c)) {}  // NOLINT: implicit, as Go converts chan T to chan<- T

  void send(T v) const { c_.send(std::move(v)); }
  bool try_send(T& v) const { return c_.try_send(v); }
  void close() const { c_.close(); }
  std::size_t size() const noexcept { return c_.size(); }
  std::size_t capacity() const noexcept { return c_.capacity(); }
  explicit operator bool() const noexcept { return static_cast<bool>(c_); }
  friend bool operator==(const SendChan& a, const SendChan& b) noexcept { return a.c_ == b.c_; }
  friend std::strong_ordering operator<=>(const SendChan& a, const SendChan& b) noexcept { return a.c_ <=> b.c_; }

 private:
  friend detail::ChanCore* detail::core_of<T>(const SendChan<T>&) noexcept;
  Chan<T> c_;
};

template <class T>
class RecvChan {
 public:
  using value_type = T;
  using iterator = typename Chan<T>::iterator;
  RecvChan() noexcept = default;
  RecvChan(Chan<T> c) noexcept : c_(std::move(c)) {}  // NOLINT: implicit, as Go converts chan T to <-chan T

  std::optional<T> recv() const { return c_.recv(); }
  std::optional<T> try_recv() const { return c_.try_recv(); }
  iterator begin() const { return c_.begin(); }  // for (T v : c): receives until closed and drained
  iterator end() const { return c_.end(); }
  std::size_t size() const noexcept { return c_.size(); }
  std::size_t capacity() const noexcept { return c_.capacity(); }
  explicit operator bool() const noexcept { return static_cast<bool>(c_); }
  friend bool operator==(const RecvChan& a, const RecvChan& b) noexcept { return a.c_ == b.c_; }
  friend std::strong_ordering operator<=>(const RecvChan& a, const RecvChan& b) noexcept { return a.c_ <=> b.c_; }

 private:
  friend detail::ChanCore* detail::core_of<T>(const RecvChan<T>&) noexcept;
  Chan<T> c_;
};

namespace detail {
template <class T>
ChanCore* core_of(const Chan<T>& c) noexcept {
  return c.core_;
}
template <class T>
ChanCore* core_of(const SendChan<T>& c) noexcept {
  return core_of(c.c_);
}
template <class T>
ChanCore* core_of(const RecvChan<T>& c) noexcept {
  return core_of(c.c_);
}
}  // namespace detail

}  // namespace goro

// Channels (and their views) as keys of unordered containers: by identity.
template <class T>
struct std::hash<goro::Chan<T>> {
  std::size_t operator()(const goro::Chan<T>& c) const noexcept {
    return std::hash<const void*>{}(goro::detail::core_of(c));
  }
};
template <class T>
struct std::hash<goro::SendChan<T>> {
  std::size_t operator()(const goro::SendChan<T>& c) const noexcept {
    return std::hash<const void*>{}(goro::detail::core_of(c));
  }
};
template <class T>
struct std::hash<goro::RecvChan<T>> {
  std::size_t operator()(const goro::RecvChan<T>& c) const noexcept {
    return std::hash<const void*>{}(goro::detail::core_of(c));
  }
};
