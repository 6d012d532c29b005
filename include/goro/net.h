// goro/net.h: TCP networking that parks goroutines, not threads (Go's net).
//
//   goro::net::Listener ln = goro::net::listen("127.0.0.1:0");
//   goro::go([&] {
//     for (;;) {
//       goro::net::Conn c = ln.accept();
//       goro::go([c = std::move(c)]() mutable { ... c.read(buf) ... c.write(buf) ... });
//     }
//   });
//   goro::net::Conn c = goro::net::dial(ln.address());
//
// Every call that can fail has an overload taking `std::error_code& ec`
// (sets it, never throws; cleared on success) and one that throws
// std::system_error. System errors keep std::system_category(); goro's own
// are goro::errc: eof (end of stream, from read), closed (the Conn or
// Listener was closed, also when closed by another goroutine while this call
// was blocked), deadline_exceeded (a deadline passed), canceled (dial's
// context was cancelled).
//
// Addresses are "host:port": "127.0.0.1:80", "[::1]:80", "localhost:80",
// ":80" (listen: every interface, IPv6 and IPv4; dial: this machine). Port 0
// in listen picks a free port; address() tells which; ports are numeric (no
// service names). Names other than
// literals are resolved with getaddrinfo on the blocking pool
// (goro/blocking.h), so resolution parks only the calling goroutine.
//
// Conn and Listener own their socket: movable, not copyable. One goroutine
// may read while another writes; concurrent reads (or writes) on one Conn are
// serialized. close() may be called from any goroutine or thread while
// others are blocked on the same object: they return errc::closed, and the
// descriptor is released only after they have left (close() waits for that),
// so a descriptor number is never reused under a running call.
//
// From a plain thread (not a goroutine) every call works too; blocking calls
// block that thread.
#pragma once

#include <goro/context.h>
#include <goro/errc.h>
#include <goro/export.h>
#include <goro/runtime.h>

#include <cstddef>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>

namespace goro::net {

namespace detail {
struct Socket;
}

class GORO_EXPORT Conn {
 public:
  Conn() noexcept = default;
  Conn(Conn&& o) noexcept : s_(std::exchange(o.s_, nullptr)) {}
  Conn& operator=(Conn&& o) noexcept;
  Conn(const Conn&) = delete;
  Conn& operator=(const Conn&) = delete;
  ~Conn();  // closes the socket if still open

  // Reads at least one byte (blocking until some arrive), or returns 0 with
  // ec == errc::eof at end of stream. An empty buffer returns 0 at once.
  std::size_t read(std::span<std::byte> buf, std::error_code& ec);
  // Throws only for errors: returns 0 at end of stream.
  std::size_t read(std::span<std::byte> buf);
  std::size_t read(std::span<char> buf, std::error_code& ec) { return read(std::as_writable_bytes(buf), ec); }
  std::size_t read(std::span<char> buf) { return read(std::as_writable_bytes(buf)); }

  // Writes all of buf unless an error (or deadline) stops it; returns the
  // bytes written. Never raises SIGPIPE: a closed peer is an error code.
  std::size_t write(std::span<const std::byte> buf, std::error_code& ec);
  std::size_t write(std::span<const std::byte> buf);
  std::size_t write(std::string_view s, std::error_code& ec) { return write(std::as_bytes(std::span(s)), ec); }
  std::size_t write(std::string_view s) { return write(std::as_bytes(std::span(s))); }

  // Closes the socket; blocked calls on it return errc::closed. Closing
  // again reports errc::closed.
  void close(std::error_code& ec);
  void close();
  // Shuts down the sending side: the peer reads end of stream.
  void close_write(std::error_code& ec);
  void close_write();

  // Absolute deadlines for blocked and future calls; Clock::time_point::max()
  // removes one. A deadline moved while a call is blocked takes effect.
  void set_deadline(Clock::time_point t, std::error_code& ec);
  void set_deadline(Clock::time_point t);
  void set_read_deadline(Clock::time_point t, std::error_code& ec);
  void set_read_deadline(Clock::time_point t);
  void set_write_deadline(Clock::time_point t, std::error_code& ec);
  void set_write_deadline(Clock::time_point t);

  // "ip:port" ("[ip6]:port"); empty if closed.
  std::string local_address() const;
  std::string remote_address() const;

  // The socket descriptor (for setsockopt and the like), -1 if none. Do not
  // close it or make it blocking.
  int native_handle() const noexcept;
  explicit operator bool() const noexcept { return s_ != nullptr; }

 private:
  friend class Listener;
  friend GORO_EXPORT Conn dial(const Context&, std::string_view, std::error_code&);
  explicit Conn(detail::Socket* s) noexcept : s_(s) {}
  detail::Socket* s_ = nullptr;
};

class GORO_EXPORT Listener {
 public:
  Listener() noexcept = default;
  Listener(Listener&& o) noexcept : s_(std::exchange(o.s_, nullptr)) {}
  Listener& operator=(Listener&& o) noexcept;
  Listener(const Listener&) = delete;
  Listener& operator=(const Listener&) = delete;
  ~Listener();

  // Waits for a connection. Fails with errc::closed once closed, or with a
  // system error such as EMFILE (too many open files), after which the
  // listener is still usable.
  Conn accept(std::error_code& ec);
  Conn accept();
  // The bound "host:port" (the real port when listening on port 0).
  std::string address() const;
  void close(std::error_code& ec);
  void close();

  int native_handle() const noexcept;
  explicit operator bool() const noexcept { return s_ != nullptr; }

 private:
  friend GORO_EXPORT Listener listen(std::string_view, std::error_code&);
  explicit Listener(detail::Socket* s) noexcept : s_(s) {}
  detail::Socket* s_ = nullptr;
};

GORO_EXPORT Listener listen(std::string_view address, std::error_code& ec);
GORO_EXPORT Listener listen(std::string_view address);

// Connects to address, trying each resolved address in turn. The Context
// form gives up when ctx ends (with ctx.err()).
GORO_EXPORT Conn dial(std::string_view address, std::error_code& ec);
GORO_EXPORT Conn dial(std::string_view address);
GORO_EXPORT Conn dial(const Context& ctx, std::string_view address, std::error_code& ec);
GORO_EXPORT Conn dial(const Context& ctx, std::string_view address);

}  // namespace goro::net
