// goro/nats.h: a client of a NATS server (library target goro::nats), shaped
// like goro: a subscription's messages arrive on a goro channel, so a remote
// subject is one more case in a select, beside local channels, timers and
// ctx.done().
//
//   auto nc = goro::nats::connect("nats://127.0.0.1:4222");
//   auto sub = nc.subscribe("jobs", {.queue = "workers"});
//   goro::select(
//       goro::recv(sub.messages(), [&](std::optional<goro::nats::Msg> m) { ... }),
//       goro::recv(local, [&](std::optional<int> v) { ... }),
//       goro::recv(goro::after(1s)));
//
// It wraps the official C client (cnats, Debian's libnats-dev), which does
// the protocol, reconnection, cluster discovery, TLS and JetStream. The rule
// that keeps a goro program responsive: no cnats call that can block its
// thread runs on a goro worker as a plain call. The connection's socket is
// served by goroutines over goro's netpoller (cnats's event-loop API), so
// publishing only appends to a buffer; calls that may wait (subscribe, ack,
// JetStream admin) run inside goro::blocking's inline path (a function
// call's cost when they do not block; the worker's queue moves to another
// thread when they do); calls that wait for the server (request, JetStream
// publish, flush) park the goroutine on a channel. Messages reach bounded
// goro channels through goroutines (docs/SCALE_OUT.md).
//
// Handles (Conn, Subscription, Msg, JetStream) are cheap to copy; copies
// refer to one object. Every call works from a goroutine or a plain thread.
// Errors are std::error_codes of nats::category() (or goro::errc for a
// context's end); each call has a throwing form and one taking an
// std::error_code&.
#pragma once

#include <goro/chan.h>
#include <goro/context.h>
#include <goro/export.h>
#include <goro/select.h>

#include <atomic>
#include <chrono>
#include <concepts>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <variant>
#include <vector>

namespace goro::nats {

enum class errc {
  no_responders = 1,      // a request's subject has no subscriber (nats.ErrNoResponders)
  timeout = 2,            // the server did not answer in time (nats.ErrTimeout)
  connection_closed = 3,  // the connection was closed (nats.ErrConnectionClosed)
  no_server = 4,          // no server could be reached (nats.ErrNoServers)
  slow_consumer = 5,      // a subscription fell behind: messages were dropped (nats.ErrSlowConsumer)
  invalid_subject = 6,    // an empty or malformed subject (nats.ErrBadSubject)
  max_payload = 7,        // the message exceeds the server's max_payload (nats.ErrMaxPayload)
  jetstream = 8,          // the JetStream API answered with an error (see the text where given)
  not_found = 9,          // no such stream or consumer (nats.ErrStreamNotFound, ErrConsumerNotFound)
  io = 10,                // a socket error below the client
  invalid_argument = 11,  // a bad option or argument
  other = 12,             // any other cnats status
};

GORO_EXPORT const std::error_category& category() noexcept;
inline std::error_code make_error_code(errc e) noexcept { return {static_cast<int>(e), category()}; }

class Msg;

namespace detail {
struct ConnState;
struct MsgState;
struct SubState;
struct JsState;

// Where a subscription's messages go: called by one goroutine (or, for a
// pull subscription, one thread) at a time, in order. deliver blocks while
// the channel is full, until done is closed (unsubscribe, close); close is
// called once, after the last deliver.
struct Sink {
  virtual ~Sink() = default;
  virtual void deliver(Msg m, const Chan<std::monostate>& done) = 0;
  virtual void close() = 0;
};
}  // namespace detail

// A message. Its bytes live as long as a handle does.
class GORO_EXPORT Msg {
 public:
  Msg() = default;
  std::string_view subject() const;
  std::string_view reply() const;
  std::string_view data() const;
  // A header's first value ("" when absent).
  std::string_view header(std::string_view key) const;
  // Publishes data to reply() (Go's Msg.Respond).
  void respond(std::string_view data) const;
  void respond(std::string_view data, std::error_code& ec) const noexcept;

  // JetStream messages (from JetStream::pull_subscribe): acknowledge, ask
  // for redelivery, extend the ack deadline, or give up on the message.
  void ack() const;
  void ack(std::error_code& ec) const noexcept;
  void nak(std::error_code& ec) const noexcept;
  void in_progress(std::error_code& ec) const noexcept;
  void term(std::error_code& ec) const noexcept;
  // The stream's sequence number and how many times the server delivered it
  // (1 the first time); 0 for a core NATS message.
  std::uint64_t stream_seq() const;
  std::uint64_t num_delivered() const;

  explicit operator bool() const noexcept { return s_ != nullptr; }

 private:
  friend struct detail::MsgState;
  friend struct detail::SubState;
  friend struct detail::ConnState;
  friend struct detail::JsState;
  friend class Conn;
  std::shared_ptr<detail::MsgState> s_;
};

struct SubOptions {
  std::string queue{};         // a queue group: each message goes to one member
  std::size_t capacity = 1024; // the channel's buffer
  // What may wait beyond the channel before messages are dropped and the
  // subscription is reported as a slow consumer (Subscription::error()).
  int pending_msgs = 65536;
  int pending_bytes = 64 << 20;
};

class GORO_EXPORT Subscription {
 public:
  Subscription() = default;
  // Closed once unsubscribed or the connection is closed (after the
  // messages already delivered to it).
  Chan<Msg> messages() const;
  // Stops delivery; the channel closes once the message being handed over,
  // if any, is in it. Idempotent.
  void unsubscribe() const;
  // Messages dropped because the consumer fell behind.
  std::uint64_t dropped() const;
  // errc::slow_consumer once messages were dropped, otherwise none.
  std::error_code error() const;
  explicit operator bool() const noexcept { return s_ != nullptr; }

 private:
  friend class Conn;
  friend class JetStream;
  std::shared_ptr<detail::SubState> s_;
};

// Connection options beyond the URLs.
struct Options {
  std::string name;                                  // shown by the server's monitoring
  int max_reconnect = -1;                            // attempts per server; -1: forever
  std::chrono::milliseconds reconnect_wait{250};     // between attempts on one server
  std::chrono::milliseconds connect_timeout{2000};
  int reconnect_buffer = 8 << 20;                    // bytes of publishes kept while disconnected
  bool retry_on_failed_connect = false;              // connect returns at once and keeps trying
};

class JetStream;

class GORO_EXPORT Conn {
 public:
  Conn() = default;
  void publish(std::string_view subject, std::string_view data) const;
  void publish(std::string_view subject, std::string_view data, std::error_code& ec) const noexcept;
  // Publishes with a reply subject (Go's PublishRequest).
  void publish_request(std::string_view subject, std::string_view reply, std::string_view data,
                       std::error_code& ec) const noexcept;
  Subscription subscribe(std::string_view subject, SubOptions opts = {}) const;
  Subscription subscribe(std::string_view subject, SubOptions opts, std::error_code& ec) const noexcept;
  // Parks until the reply, the context's end (goro::errc::deadline_exceeded
  // or canceled) or errc::no_responders.
  Msg request(std::string_view subject, std::string_view data, const Context& ctx) const;
  Msg request(std::string_view subject, std::string_view data, const Context& ctx,
              std::error_code& ec) const noexcept;
  // Parks until the server has processed everything published so far.
  void flush() const;
  void flush(std::error_code& ec) const noexcept;
  void flush(const Context& ctx, std::error_code& ec) const noexcept;
  // Flushes pending publishes (up to 5 s), then closes: every subscription's
  // channel closes. Idempotent; the last handle's destruction closes too.
  void close() const;
  // A fresh unique subject for replies.
  std::string new_inbox() const;
  bool connected() const;
  std::string connected_url() const;
  // Times the connection came back after a loss.
  std::uint64_t reconnects() const;
  JetStream jetstream() const;
  explicit operator bool() const noexcept { return s_ != nullptr; }

 private:
  friend GORO_EXPORT Conn connect(std::string_view urls, const Options& opts, std::error_code& ec) noexcept;
  friend class JetStream;

 public:
  // The machinery under subscribe() and the typed subscribe<T>(): messages
  // go to sink (called by one goroutine at a time, in order).
  Subscription subscribe_into(std::string_view subject, const SubOptions& opts, std::unique_ptr<detail::Sink> sink,
                              std::error_code& ec) const noexcept;

 private:
  std::shared_ptr<detail::ConnState> s_;
};

// urls: "nats://host:port", or several comma-separated servers of a cluster.
GORO_EXPORT Conn connect(std::string_view urls, const Options& opts, std::error_code& ec) noexcept;
GORO_EXPORT Conn connect(std::string_view urls, const Options& opts);
inline Conn connect(std::string_view urls, std::error_code& ec) noexcept { return connect(urls, Options{}, ec); }
inline Conn connect(std::string_view urls) { return connect(urls, Options{}); }

// ---------------------------------------------------------------- JetStream
struct StreamConfig {
  std::string name;
  std::vector<std::string> subjects;
  int replicas = 1;
  bool memory = false;  // memory storage instead of files
};

struct PubAck {
  std::string stream;
  std::uint64_t seq = 0;
  bool duplicate = false;
};

struct PullOptions {
  std::string filter_subject;                  // "" : every subject of the stream
  std::size_t capacity = 256;                  // the channel's buffer
  int batch = 64;                              // messages asked for at a time
  std::chrono::milliseconds ack_wait{30000};   // redelivered if not acked by then
  int max_deliver = -1;                        // -1: no limit
};

// At-least-once delivery: streams store what is published to their
// subjects; a durable pull consumer hands each stored message to one member
// and redelivers it if that member does not acknowledge it within ack_wait
// (it died, or it is too slow).
class GORO_EXPORT JetStream {
 public:
  JetStream() = default;
  // Creates the stream, or leaves an existing one of that name as it is.
  void add_stream(const StreamConfig& cfg) const;
  void add_stream(const StreamConfig& cfg, std::error_code& ec) const noexcept;
  void delete_stream(std::string_view name, std::error_code& ec) const noexcept;
  // Parks until the stream has stored the message (its PubAck), the
  // context's end, or an error. A message published again with the same
  // msg_id within the stream's duplicate window is stored once.
  PubAck publish(std::string_view subject, std::string_view data, const Context& ctx = {},
                 std::string_view msg_id = {}) const;
  PubAck publish(std::string_view subject, std::string_view data, const Context& ctx, std::string_view msg_id,
                 std::error_code& ec) const noexcept;
  // Joins the durable pull consumer `durable` of stream, creating it if it
  // does not exist: its members share the stream's messages. A thread of
  // the subscription's own fetches batches and feeds the channel; messages
  // must be acked. Unsubscribing leaves the consumer (and what it has not
  // delivered) on the server for the other members and later ones.
  Subscription pull_subscribe(std::string_view stream, std::string_view durable, PullOptions opts = {}) const;
  Subscription pull_subscribe(std::string_view stream, std::string_view durable, PullOptions opts,
                              std::error_code& ec) const noexcept;

 private:
  friend class Conn;
  std::shared_ptr<detail::JsState> s_;
};

// Receives from sub until its channel closes or ctx ends, calling handler(m)
// for each message and acknowledging it after the handler returns (an
// exception from the handler leaves it unacknowledged: the server
// redelivers it). Returns the context's error, or none once the channel closed.
template <class F>
std::error_code consume(const Subscription& sub, const Context& ctx, F&& handler) {
  auto ch = sub.messages();
  for (;;) {
    std::optional<Msg> m;
    bool ended = false;
    goro::select(goro::recv(ch, [&](std::optional<Msg> v) { m = std::move(v); }),
                 goro::recv(ctx.done(), [&](auto) { ended = true; }));
    if (ended) return ctx.err();
    if (!m) return {};
    handler(*m);
    std::error_code ec;
    m->ack(ec);
  }
}

// ---------------------------------------------------------------- typed messages
// codec<T> turns a T into bytes and back; specialize it (or pass a Codec
// type) for your types. Provided: std::string and arithmetic types (their
// bytes in this machine's order).
template <class T, class = void>
struct codec;

template <>
struct codec<std::string> {
  static std::string encode(const std::string& v) { return v; }
  static std::string decode(std::string_view b) { return std::string(b); }
};

template <class T>
struct codec<T, std::enable_if_t<std::is_arithmetic_v<T>>> {
  static std::string encode(const T& v) { return std::string(reinterpret_cast<const char*>(&v), sizeof v); }
  static T decode(std::string_view b) {
    T v{};
    if (b.size() != sizeof v) throw std::invalid_argument("goro::nats::codec: wrong size for an arithmetic value");
    __builtin_memcpy(&v, b.data(), sizeof v);
    return v;
  }
};

template <class C, class T>
concept Codec = requires(const T& v, std::string_view b) {
  { C::encode(v) } -> std::convertible_to<std::string>;
  { C::decode(b) } -> std::convertible_to<T>;
};

template <class T, class C = codec<T>>
  requires Codec<C, T>
void publish(const Conn& nc, std::string_view subject, const T& v) {
  nc.publish(subject, C::encode(v));
}

// A subscription whose messages arrive decoded, as a Chan<T>. A message that
// fails to decode is dropped and counted (decode_errors()).
template <class T>
class TypedSubscription {
 public:
  TypedSubscription() = default;
  TypedSubscription(Subscription sub, Chan<T> ch, std::shared_ptr<std::atomic<std::uint64_t>> errors)
      : sub_(std::move(sub)), ch_(std::move(ch)), decode_errors_(std::move(errors)) {}
  Chan<T> messages() const { return ch_; }
  void unsubscribe() const { sub_.unsubscribe(); }
  std::uint64_t dropped() const { return sub_.dropped(); }
  std::uint64_t decode_errors() const { return decode_errors_->load(std::memory_order_relaxed); }
  std::error_code error() const { return sub_.error(); }

 private:
  Subscription sub_;
  Chan<T> ch_;
  std::shared_ptr<std::atomic<std::uint64_t>> decode_errors_;
};

template <class T, class C = codec<T>>
  requires Codec<C, T>
TypedSubscription<T> subscribe(const Conn& nc, std::string_view subject, SubOptions opts = {}) {
  struct TypedSink final : detail::Sink {
    Chan<T> ch;
    std::shared_ptr<std::atomic<std::uint64_t>> errors;
    void deliver(Msg m, const Chan<std::monostate>& done) override {
      std::optional<T> v;
      try {
        v.emplace(C::decode(m.data()));
      } catch (...) {
        errors->fetch_add(1, std::memory_order_relaxed);
        return;
      }
      if (ch.try_send(*v)) return;
      goro::select(goro::send(ch, std::move(*v)), goro::recv(done));
    }
    void close() override { ch.close(); }
  };
  Chan<T> ch(opts.capacity);
  auto errors = std::make_shared<std::atomic<std::uint64_t>>(0);
  auto sink = std::make_unique<TypedSink>();
  sink->ch = ch;
  sink->errors = errors;
  std::error_code ec;
  Subscription sub = nc.subscribe_into(subject, opts, std::move(sink), ec);
  if (ec) throw std::system_error(ec, "goro::nats::subscribe");
  return TypedSubscription<T>(std::move(sub), std::move(ch), std::move(errors));
}

}  // namespace goro::nats

template <>
struct std::is_error_code_enum<goro::nats::errc> : std::true_type {};
