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
// literals are resolved with getaddrinfo through goro::blocking
// (goro/blocking.h), so resolution holds up only the calling goroutine.
//
// Conn and Listener are reference handles, like Chan and like Go's net.Conn
// values: copies share one socket, so a reader goroutine and a writer
// goroutine can each hold one. The socket closes at close() (through any
// copy) or when its last handle goes. One goroutine may read while another
// writes; concurrent reads (or writes) on one socket are serialized.
// close() may be called from any goroutine or thread while others are
// blocked on the same socket: they return errc::closed, and the descriptor
// is released only after they have left (close() waits for that), so a
// descriptor number is never reused under a running call.
//
// From a plain thread (not a goroutine) every call works too; blocking calls
// block that thread.
#pragma once

#include <goro/context.h>
#include <goro/errc.h>
#include <goro/export.h>
#include <goro/runtime.h>

#include <cstddef>
#include <optional>
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
  Conn(const Conn& o) noexcept;  // shares the socket
  Conn(Conn&& o) noexcept : s_(std::exchange(o.s_, nullptr)) {}
  Conn& operator=(Conn o) noexcept {
    std::swap(s_, o.s_);
    return *this;
  }
  ~Conn();  // the last handle closes the socket if still open

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
  // Handles of the same socket.
  friend bool operator==(const Conn& a, const Conn& b) noexcept { return a.s_ == b.s_; }

 private:
  friend class Listener;
  friend GORO_EXPORT Conn dial(const Context&, std::string_view, std::error_code&);
  explicit Conn(detail::Socket* s) noexcept : s_(s) {}
  detail::Socket* s_ = nullptr;
};

class GORO_EXPORT Listener {
 public:
  Listener() noexcept = default;
  Listener(const Listener& o) noexcept;  // shares the socket
  Listener(Listener&& o) noexcept : s_(std::exchange(o.s_, nullptr)) {}
  Listener& operator=(Listener o) noexcept {
    std::swap(s_, o.s_);
    return *this;
  }
  ~Listener();  // the last handle closes the socket if still open

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
  friend bool operator==(const Listener& a, const Listener& b) noexcept { return a.s_ == b.s_; }

 private:
  friend GORO_EXPORT Listener listen(std::string_view, std::error_code&);
  explicit Listener(detail::Socket* s) noexcept : s_(s) {}
  detail::Socket* s_ = nullptr;
};

// ---------------------------------------------------------------- RawConn
// A descriptor that another library owns (a client library's socket, a
// pipe, an eventfd), watched by goro's netpoller so that a goroutine parks
// until it is ready instead of blocking its thread: Go's syscall.RawConn.
// raw_conn(fd) registers a duplicate of fd (and makes the file
// non-blocking, for both: the flag belongs to the open file); the caller's
// fd stays the caller's to close. The duplicate closes at close() or with
// the last handle; handles are shared like Conn's.
//
//   goro::net::RawConn rc = goro::net::raw_conn(lib_fd);
//   rc.read([&](int fd) { return lib_process_input(fd) != WOULD_BLOCK; });
//
// read(f) calls f(fd) until it returns true; whenever f returns false (it
// met EAGAIN) the goroutine parks until fd is readable, then f runs again.
// write(f) is the same for writability. Concurrent reads (or writes) are
// serialized, one call after the other. Readiness is edge-triggered: f must
// return false only after it has seen EAGAIN (or knows no data is left).
// Both fail with errc::closed after close() and with
// errc::deadline_exceeded after a deadline passes; setting a deadline in
// the past is how another thread interrupts a waiting read without waiting
// for it (close() waits for calls in progress to leave, as Conn's does).
class GORO_EXPORT RawConn {
 public:
  RawConn() noexcept = default;
  RawConn(const RawConn& o) noexcept;
  RawConn(RawConn&& o) noexcept : s_(std::exchange(o.s_, nullptr)) {}
  RawConn& operator=(RawConn o) noexcept {
    std::swap(s_, o.s_);
    return *this;
  }
  ~RawConn();

  template <class F>
  void read(F&& f, std::error_code& ec) {
    wait_loop('r', &call<std::remove_reference_t<F>>, &f, ec);
  }
  template <class F>
  void write(F&& f, std::error_code& ec) {
    wait_loop('w', &call<std::remove_reference_t<F>>, &f, ec);
  }

  void set_deadline(Clock::time_point t, std::error_code& ec);
  void set_read_deadline(Clock::time_point t, std::error_code& ec);
  void set_write_deadline(Clock::time_point t, std::error_code& ec);
  void close(std::error_code& ec);
  void close();

  // The registered duplicate, -1 if none.
  int native_handle() const noexcept;
  explicit operator bool() const noexcept { return s_ != nullptr; }

 private:
  friend GORO_EXPORT RawConn raw_conn(int fd, std::error_code& ec);
  template <class F>
  static bool call(void* f, int fd) {
    return static_cast<bool>((*static_cast<F*>(f))(fd));
  }
  void wait_loop(char mode, bool (*fn)(void*, int), void* f, std::error_code& ec);
  explicit RawConn(detail::Socket* s) noexcept : s_(s) {}
  detail::Socket* s_ = nullptr;
};

GORO_EXPORT RawConn raw_conn(int fd, std::error_code& ec);
GORO_EXPORT RawConn raw_conn(int fd);

// ---------------------------------------------------------------- bufio, io
// Reader: buffered reading over a Conn (Go's bufio.Reader and
// bufio.Scanner). It holds a handle to the Conn; use one Reader per stream
// (what it has buffered is not seen by other readers of the Conn). Every
// read is bounded by max_size, so a peer cannot make it buffer without
// limit: a line or delimited token longer than that fails with
// errc::too_long (Go's bufio.ErrTooLong), and the reader stays usable past
// it only for read(). Errors follow goro::net: ec forms never throw; the
// throwing forms return std::nullopt at a clean end of stream.
class GORO_EXPORT Reader {
 public:
  static constexpr std::size_t kDefaultMaxSize = 64 * 1024;  // bufio.MaxScanTokenSize

  explicit Reader(Conn c, std::size_t max_size = kDefaultMaxSize);

  // The next line without its "\n" (nor a "\r" just before it), as
  // bufio.Scanner's lines. A last line without "\n" is returned as a line;
  // after it, ec == errc::eof.
  std::string read_line(std::error_code& ec);
  std::optional<std::string> read_line();

  // Up to and including the next `delim` (bufio.Reader.ReadString). At end
  // of stream before `delim`: what was read, with ec == errc::eof.
  std::string read_until(char delim, std::error_code& ec);
  std::optional<std::string> read_until(char delim);

  // Exactly buf.size() bytes (io.ReadFull): errc::eof if the stream ended
  // before the first byte, errc::unexpected_eof if it ended after some.
  // Returns the bytes read.
  std::size_t read_full(std::span<std::byte> buf, std::error_code& ec);
  std::size_t read_full(std::span<char> buf, std::error_code& ec) { return read_full(std::as_writable_bytes(buf), ec); }
  void read_full(std::span<std::byte> buf);  // throws, end of stream included
  void read_full(std::span<char> buf) { read_full(std::as_writable_bytes(buf)); }

  // Buffered bytes first, then at most one read of the Conn (Conn::read's
  // contract: at least one byte, or 0 with errc::eof).
  std::size_t read(std::span<std::byte> buf, std::error_code& ec);
  std::size_t read(std::span<char> buf, std::error_code& ec) { return read(std::as_writable_bytes(buf), ec); }

  // Bytes received and not yet returned.
  std::size_t buffered() const noexcept { return buf_.size() - start_; }
  const Conn& conn() const noexcept { return c_; }

 private:
  // Reads more into the buffer; false (ec set) on error or end of stream.
  bool fill(std::error_code& ec);
  std::string take(std::size_t n);  // the next n buffered bytes

  Conn c_;
  std::size_t max_;
  std::string buf_;
  std::size_t start_ = 0;  // buf_[start_, size) is unread
};

// io.Copy: writes everything read from src to dst until src's end of
// stream, which is not an error; returns the bytes copied. Stops at the
// first read or write error (ec set).
GORO_EXPORT std::size_t copy(Conn dst, Conn src, std::error_code& ec);
GORO_EXPORT std::size_t copy(Conn dst, Conn src);
// The same from a Reader, its buffered bytes first.
GORO_EXPORT std::size_t copy(Conn dst, Reader& src, std::error_code& ec);

GORO_EXPORT Listener listen(std::string_view address, std::error_code& ec);
GORO_EXPORT Listener listen(std::string_view address);

// Connects to address, trying each resolved address in turn. The Context
// form gives up when ctx ends (with ctx.err()).
GORO_EXPORT Conn dial(std::string_view address, std::error_code& ec);
GORO_EXPORT Conn dial(std::string_view address);
GORO_EXPORT Conn dial(const Context& ctx, std::string_view address, std::error_code& ec);
GORO_EXPORT Conn dial(const Context& ctx, std::string_view address);

}  // namespace goro::net
