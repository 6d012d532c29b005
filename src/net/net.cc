// src/net/net.cc: goro::net over the netpoller (src/netpoll).
//
// A Socket is an open non-blocking descriptor, its PollDesc, and a reference
// count that makes close() safe against calls blocked on the same socket:
//  - refs = kClosing bit | kReleased bit | number of references. The owning Conn/Listener
//    holds one; every call holds one while it runs (acquire/release).
//  - close() sets kClosing (later acquires fail with errc::closed), wakes
//    blocked callers (pd_evict: they return errc::closed), drops the owner's
//    reference, and waits on `released`. Whoever drops the count to zero
//    (kClosing alone) sets kReleased, unregisters and closes the
//    descriptor, then releases the closer. So the fd number is never closed,
//    and never reused by the kernel, while a call on this socket still runs.
// Reads are serialized by rmu, writes by wmu: a PollDesc has one waiter slot
// per direction, and concurrent reads on one stream interleave meaninglessly
// anyway (Go serializes them too).
#include "goro/net.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <mutex>
#include <string>
#include <type_traits>
#include <vector>

#include "arch/sanitizer.h"
#include "goro/chan.h"
#include "goro/select.h"
#include "goro/sync.h"
#include "net/address.h"
#include "netpoll/netpoll.h"
#include "sched/sched.h"

namespace goro::net {

namespace detail {

struct Socket {
  static constexpr std::uint32_t kClosing = 1u << 31;
  static constexpr std::uint32_t kReleased = 1u << 30;  // the fd is closed

  int fd = -1;
  rt::PollDesc* pd = nullptr;
  // Conn/Listener handles sharing this socket; the last one closes it (if
  // not yet closed) and frees it.
  std::atomic<std::size_t> handles{1};
  std::atomic<std::uint32_t> refs{1};
  goro::Mutex rmu, wmu;
  goro::WaitGroup released;
  // Under rmu: the last read was short and proved the receive queue empty
  // (rt::pd_short_read_drains), so the next one waits for readiness first.
  bool rdrained = false;
};

}  // namespace detail

namespace {

using detail::Socket;

std::error_code sys_error(int e) { return {e, std::system_category()}; }
std::error_code closed_error() { return make_error_code(errc::closed); }
std::error_code poll_error(int e) { return make_error_code(static_cast<errc>(e)); }

// Wraps a fresh non-blocking fd; closes it on failure.
Socket* make_socket(int fd, std::error_code& ec) {
  int err = 0;
  rt::PollDesc* pd = rt::pd_open(fd, &err);
  if (pd == nullptr) {
    ::close(fd);
    ec = sys_error(err);
    return nullptr;
  }
  auto* s = new Socket;
  s->fd = fd;
  s->pd = pd;
  s->released.add(1);
  return s;
}

void release(Socket* s) {
  if (s->refs.fetch_sub(1, std::memory_order_acq_rel) - 1 != Socket::kClosing) return;
  // Count zero after close. A failed acquire (see below) can bring the
  // count back to zero again later: the kReleased bit makes the release
  // happen once.
  std::uint32_t expected = Socket::kClosing;
  if (s->refs.compare_exchange_strong(expected, Socket::kClosing | Socket::kReleased,
                                      std::memory_order_acq_rel)) {
    rt::pd_close(s->pd);
    ::close(s->fd);
    s->released.done();  // s may be freed by the closer from here on
  }
}

bool acquire(Socket* s) {
  if (s == nullptr) return false;
  if (s->refs.fetch_add(1, std::memory_order_acquire) & Socket::kClosing) {
    release(s);
    return false;
  }
  return true;
}

// Holds a reference for the duration of one call.
class Ref {
 public:
  explicit Ref(Socket* s) : s_(acquire(s) ? s : nullptr) {}
  ~Ref() {
    if (s_ != nullptr) release(s_);
  }
  Ref(const Ref&) = delete;
  Ref& operator=(const Ref&) = delete;
  Socket* get() const { return s_; }

 private:
  Socket* s_;
};

void close_socket(Socket* s, std::error_code& ec) {
  if (s == nullptr || (s->refs.fetch_or(Socket::kClosing, std::memory_order_acq_rel) & Socket::kClosing)) {
    ec = closed_error();
    return;
  }
  rt::pd_evict(s->pd);
  release(s);
  s->released.wait();
  ec.clear();
}

void retain_handle(Socket* s) {
  if (s != nullptr) s->handles.fetch_add(1, std::memory_order_relaxed);
}

// Drops one handle; the last one closes and frees the socket. acq_rel: the
// last handle's owner sees everything the others did with the socket.
void destroy(Socket* s) {
  if (s == nullptr || s->handles.fetch_sub(1, std::memory_order_acq_rel) != 1) return;
  std::error_code ignored;
  close_socket(s, ignored);
  s->released.wait();  // a close() by another goroutine may still be finishing
  delete s;
}

std::int64_t to_mono_ns(Clock::time_point t) {
  if (t == Clock::time_point::max()) return 0;
  // steady_clock is CLOCK_MONOTONIC on Linux, the runtime's timer clock.
  std::int64_t ns = std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
  return ns > 0 ? ns : 1;  // any non-positive time has passed
}

void set_deadline_impl(Socket* s, char mode, Clock::time_point t, std::error_code& ec) {
  Ref r(s);
  if (r.get() == nullptr) {
    ec = closed_error();
    return;
  }
  rt::pd_set_deadline(s->pd, mode, to_mono_ns(t));
  ec.clear();
}

// Waits for direction mode after EAGAIN; false (ec set) if the wait failed.
bool wait_io(Socket* s, char mode, std::error_code& ec) {
  if (int e = rt::pd_wait(s->pd, mode)) {
    ec = poll_error(e);
    return false;
  }
  return true;
}

void set_nodelay(int fd) {
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);  // Go's default for TCP
}

std::string sock_name(Socket* s, bool peer) {
  Ref r(s);
  if (r.get() == nullptr) return {};
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  auto* sa = reinterpret_cast<sockaddr*>(&ss);
  int rc = peer ? getpeername(s->fd, sa, &len) : getsockname(s->fd, sa, &len);
  return rc == 0 ? detail::format(sa) : std::string();
}

[[noreturn]] void throw_error(const std::error_code& ec, const char* what) { throw std::system_error(ec, what); }

// The throwing overloads: run the error_code& form, throw what it reports
// (the message, `what` + `arg`, is built only then: write is a hot path).
template <class F>
auto or_throw(const char* what, std::string_view arg, F&& f) {
  std::error_code ec;
  auto fail = [&] { throw_error(ec, (what + std::string(arg)).c_str()); };
  if constexpr (std::is_void_v<decltype(f(ec))>) {
    f(ec);
    if (ec) fail();
  } else {
    auto r = f(ec);
    if (ec) fail();
    return r;
  }
}

template <class F>
auto or_throw(const char* what, F&& f) {
  return or_throw(what, {}, std::forward<F>(f));
}

// Starts connecting to ep. Returns null (ec set) if no socket could be made;
// otherwise the socket, with ec set if the connect failed at once and
// *pending set if it is in progress (finish with finish_connect).
Socket* start_connect(const detail::Endpoint& ep, std::error_code& ec, bool* pending) {
  int fd = ::socket(ep.family(), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    ec = sys_error(errno);
    return nullptr;
  }
  Socket* s = make_socket(fd, ec);
  if (s == nullptr) return nullptr;
  int rc;
  do {
    rc = ::connect(fd, ep.sa(), ep.len);
  } while (rc < 0 && errno == EINTR);
  *pending = rc < 0 && errno == EINPROGRESS;
  if (rc < 0 && !*pending) {
    ec = sys_error(errno);
  } else {
    ec.clear();
  }
  return s;
}

// Waits for an in-progress connect to finish or fail (deadline included).
void finish_connect(Socket* s, std::error_code& ec) {
  for (;;) {
    if (!wait_io(s, 'w', ec)) return;
    int err = 0;
    socklen_t len = sizeof err;
    if (getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0) err = errno;
    if (err == EINPROGRESS || err == EALREADY || err == EINTR) continue;
    if (err != 0) {
      ec = sys_error(err);
      return;
    }
    // Writable without an error can be a spurious report: connected only if
    // there is a peer.
    sockaddr_storage peer;
    socklen_t plen = sizeof peer;
    if (getpeername(s->fd, reinterpret_cast<sockaddr*>(&peer), &plen) != 0) continue;
    ec.clear();
    return;
  }
}

}  // namespace

// ---------------------------------------------------------------- Conn
Conn::Conn(const Conn& o) noexcept : s_(o.s_) { retain_handle(s_); }

Conn::~Conn() { destroy(s_); }

// TSan (arch/sanitizer.h): as Go's internal/poll does with its ioSync
// variable, every write releases one process-wide address and every read
// acquires it, so data a goroutine prepared before writing to a socket is
// ordered before what a goroutine does after reading from one (the kernel's
// ordering, which TSan cannot see).
// Outside TSan builds both are empty and io_sync unused (clang warned
// about names used only in discarded `if constexpr` branches).
namespace {
[[maybe_unused]] char io_sync;

void io_sync_release() {
  if constexpr (arch::kTsan) {
    arch::SanRuntimeScope san;
    arch::san_release(&io_sync);
  }
}

void io_sync_acquire() {
  if constexpr (arch::kTsan) {
    arch::SanRuntimeScope san;
    arch::san_acquire(&io_sync);
  }
}
}  // namespace

std::size_t Conn::read(std::span<std::byte> buf, std::error_code& ec) {
  Ref r(s_);
  Socket* s = r.get();
  if (s == nullptr) {
    ec = closed_error();
    return 0;
  }
  std::lock_guard<goro::Mutex> lk(s->rmu);
  for (;;) {
    if (int e = rt::pd_check(s->pd, 'r')) {
      ec = poll_error(e);
      return 0;
    }
    if (buf.empty()) {
      ec.clear();
      return 0;
    }
    if (s->rdrained) {  // the recv would fail with EAGAIN: wait first
      if (!wait_io(s, 'r', ec)) return 0;
      s->rdrained = false;
    }
    ssize_t n = ::recv(s->fd, buf.data(), buf.size(), 0);
    if (n > 0) {
      io_sync_acquire();
      s->rdrained = static_cast<std::size_t>(n) < buf.size() && rt::pd_short_read_drains(s->pd);
      ec.clear();
      return static_cast<std::size_t>(n);
    }
    if (n == 0) {
      ec = make_error_code(errc::eof);
      return 0;
    }
    if (errno == EINTR) continue;
    if (errno != EAGAIN) {
      ec = sys_error(errno);
      return 0;
    }
    if (!wait_io(s, 'r', ec)) return 0;
  }
}

std::size_t Conn::read(std::span<std::byte> buf) {
  std::error_code ec;
  std::size_t n = read(buf, ec);
  if (ec && ec != errc::eof) throw_error(ec, "goro::net::Conn::read");
  return n;
}

std::size_t Conn::write(std::span<const std::byte> buf, std::error_code& ec) {
  Ref r(s_);
  Socket* s = r.get();
  if (s == nullptr) {
    ec = closed_error();
    return 0;
  }
  std::lock_guard<goro::Mutex> lk(s->wmu);
  io_sync_release();
  std::size_t done = 0;
  for (;;) {
    if (int e = rt::pd_check(s->pd, 'w')) {
      ec = poll_error(e);
      return done;
    }
    if (done == buf.size()) {
      ec.clear();
      return done;
    }
    ssize_t n = ::send(s->fd, buf.data() + done, buf.size() - done, MSG_NOSIGNAL);
    if (n >= 0) {
      done += static_cast<std::size_t>(n);
      continue;
    }
    if (errno == EINTR) continue;
    if (errno != EAGAIN) {
      ec = sys_error(errno);
      return done;
    }
    if (!wait_io(s, 'w', ec)) return done;
  }
}

std::size_t Conn::write(std::span<const std::byte> buf) {
  return or_throw("goro::net::Conn::write", [&](std::error_code& ec) { return write(buf, ec); });
}

void Conn::close(std::error_code& ec) { close_socket(s_, ec); }
void Conn::close() {
  or_throw("goro::net::Conn::close", [&](std::error_code& ec) { close(ec); });
}

void Conn::close_write(std::error_code& ec) {
  Ref r(s_);
  if (r.get() == nullptr) {
    ec = closed_error();
    return;
  }
  if (::shutdown(s_->fd, SHUT_WR) != 0) {
    ec = sys_error(errno);
    return;
  }
  ec.clear();
}
void Conn::close_write() {
  or_throw("goro::net::Conn::close_write", [&](std::error_code& ec) { close_write(ec); });
}

void Conn::set_deadline(Clock::time_point t, std::error_code& ec) { set_deadline_impl(s_, 'b', t, ec); }
void Conn::set_read_deadline(Clock::time_point t, std::error_code& ec) { set_deadline_impl(s_, 'r', t, ec); }
void Conn::set_write_deadline(Clock::time_point t, std::error_code& ec) { set_deadline_impl(s_, 'w', t, ec); }
void Conn::set_deadline(Clock::time_point t) {
  or_throw("goro::net::Conn::set_deadline", [&](std::error_code& ec) { set_deadline(t, ec); });
}
void Conn::set_read_deadline(Clock::time_point t) {
  or_throw("goro::net::Conn::set_read_deadline", [&](std::error_code& ec) { set_read_deadline(t, ec); });
}
void Conn::set_write_deadline(Clock::time_point t) {
  or_throw("goro::net::Conn::set_write_deadline", [&](std::error_code& ec) { set_write_deadline(t, ec); });
}

std::string Conn::local_address() const { return sock_name(s_, false); }
std::string Conn::remote_address() const { return sock_name(s_, true); }
int Conn::native_handle() const noexcept { return s_ != nullptr ? s_->fd : -1; }

// ---------------------------------------------------------------- Listener
Listener::Listener(const Listener& o) noexcept : s_(o.s_) { retain_handle(s_); }

Listener::~Listener() { destroy(s_); }

Conn Listener::accept(std::error_code& ec) {
  Ref r(s_);
  Socket* s = r.get();
  if (s == nullptr) {
    ec = closed_error();
    return Conn();
  }
  std::lock_guard<goro::Mutex> lk(s->rmu);
  for (;;) {
    if (int e = rt::pd_check(s->pd, 'r')) {
      ec = poll_error(e);
      return Conn();
    }
    int fd = ::accept4(s->fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd >= 0) {
      set_nodelay(fd);
      Socket* c = make_socket(fd, ec);
      if (c == nullptr) return Conn();
      ec.clear();
      return Conn(c);
    }
    // A connection reset while queued is not the listener's failure.
    if (errno == EINTR || errno == ECONNABORTED) continue;
    if (errno != EAGAIN) {
      ec = sys_error(errno);  // EMFILE, ENFILE, ENOBUFS...: the caller may retry later
      return Conn();
    }
    if (!wait_io(s, 'r', ec)) return Conn();
  }
}

Conn Listener::accept() {
  return or_throw("goro::net::Listener::accept", [&](std::error_code& ec) { return accept(ec); });
}

std::string Listener::address() const { return sock_name(s_, false); }

void Listener::close(std::error_code& ec) { close_socket(s_, ec); }
void Listener::close() {
  or_throw("goro::net::Listener::close", [&](std::error_code& ec) { close(ec); });
}

int Listener::native_handle() const noexcept { return s_ != nullptr ? s_->fd : -1; }

// ---------------------------------------------------------------- RawConn
RawConn::RawConn(const RawConn& o) noexcept : s_(o.s_) { retain_handle(s_); }

RawConn::~RawConn() { destroy(s_); }

void RawConn::wait_loop(char mode, bool (*fn)(void*, int), void* f, std::error_code& ec) {
  Ref r(s_);
  if (r.get() == nullptr) {
    ec = closed_error();
    return;
  }
  // One waiter per direction (a PollDesc has one slot each), as Conn's.
  std::lock_guard<goro::Mutex> lk(mode == 'r' ? s_->rmu : s_->wmu);
  for (;;) {
    if (int e = rt::pd_check(s_->pd, mode)) {
      ec = poll_error(e);
      return;
    }
    if (fn(f, s_->fd)) {
      ec.clear();
      return;
    }
    if (!wait_io(s_, mode, ec)) return;
  }
}

void RawConn::set_deadline(Clock::time_point t, std::error_code& ec) { set_deadline_impl(s_, 'b', t, ec); }
void RawConn::set_read_deadline(Clock::time_point t, std::error_code& ec) { set_deadline_impl(s_, 'r', t, ec); }
void RawConn::set_write_deadline(Clock::time_point t, std::error_code& ec) { set_deadline_impl(s_, 'w', t, ec); }
void RawConn::close(std::error_code& ec) { close_socket(s_, ec); }
void RawConn::close() {
  or_throw("goro::net::RawConn::close", [&](std::error_code& ec) { close(ec); });
}
int RawConn::native_handle() const noexcept { return s_ != nullptr ? s_->fd : -1; }

RawConn raw_conn(int fd, std::error_code& ec) {
  rt::ensure_started();
  int dup = ::fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (dup < 0) {
    ec = sys_error(errno);
    return RawConn();
  }
  int fl = ::fcntl(dup, F_GETFL);
  if (fl < 0 || ::fcntl(dup, F_SETFL, fl | O_NONBLOCK) != 0) {
    ec = sys_error(errno);
    ::close(dup);
    return RawConn();
  }
  Socket* s = make_socket(dup, ec);  // closes dup on failure
  if (s == nullptr) return RawConn();
  ec.clear();
  return RawConn(s);
}

RawConn raw_conn(int fd) {
  RawConn c;
  or_throw("goro::net::raw_conn", [&](std::error_code& ec) { c = raw_conn(fd, ec); });
  return c;
}

// ---------------------------------------------------------------- listen, dial
Listener listen(std::string_view address, std::error_code& ec) {
  rt::ensure_started();
  std::vector<detail::Endpoint> eps;
  if ((ec = detail::resolve(address, true, eps))) return Listener();
  for (const detail::Endpoint& ep : eps) {
    int fd = ::socket(ep.family(), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
      ec = sys_error(errno);
      continue;
    }
    int one = 1, zero = 0;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (ep.family() == AF_INET6) {
      // Listening on [::] also accepts IPv4 (dual stack), as Go does for ":port".
      const auto* s6 = reinterpret_cast<const sockaddr_in6*>(ep.sa());
      if (IN6_IS_ADDR_UNSPECIFIED(&s6->sin6_addr)) setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero);
    }
    // The kernel caps the backlog at net.core.somaxconn.
    if (::bind(fd, ep.sa(), ep.len) != 0 || ::listen(fd, 65535) != 0) {
      ec = sys_error(errno);
      ::close(fd);
      continue;
    }
    Socket* s = make_socket(fd, ec);
    if (s == nullptr) continue;
    ec.clear();
    return Listener(s);
  }
  return Listener();
}

Listener listen(std::string_view address) {
  return or_throw("goro::net::listen ", address, [&](std::error_code& ec) { return listen(address, ec); });
}

Conn dial(const Context& ctx, std::string_view address, std::error_code& ec) {
  rt::ensure_started();
  if ((ec = ctx.err())) return Conn();
  std::vector<detail::Endpoint> eps;
  if ((ec = detail::resolve(address, false, eps))) return Conn();
  Chan<std::monostate> done = ctx.done();
  for (const detail::Endpoint& ep : eps) {
    bool pending = false;
    Socket* s = start_connect(ep, ec, &pending);
    if (s == nullptr) continue;
    if (pending && !done) {
      finish_connect(s, ec);
    } else if (pending) {
      // A watcher goroutine turns the end of ctx into an expired write
      // deadline, which wakes the connect wait. It is stopped and joined
      // before the socket can close, so it never touches a recycled PollDesc.
      auto stop = make_chan<std::monostate>();
      WaitGroup watcher;
      watcher.add(1);
      rt::PollDesc* pd = s->pd;
      go([done, stop, pd, &watcher] {
        select(recv(done, [pd](std::optional<std::monostate>) { rt::pd_set_deadline(pd, 'w', 1); }),
               recv(stop, [](std::optional<std::monostate>) {}));
        watcher.done();
      });
      finish_connect(s, ec);
      stop.close();
      watcher.wait();
      rt::pd_set_deadline(pd, 'w', 0);
    }
    if (!ec) {
      set_nodelay(s->fd);
      return Conn(s);
    }
    destroy(s);
    if (std::error_code cerr = ctx.err()) {
      ec = cerr;
      return Conn();
    }
  }
  return Conn();
}

Conn dial(const Context& ctx, std::string_view address) {
  return or_throw("goro::net::dial ", address, [&](std::error_code& ec) { return dial(ctx, address, ec); });
}

Conn dial(std::string_view address, std::error_code& ec) { return dial(Context(), address, ec); }
Conn dial(std::string_view address) { return dial(Context(), address); }

}  // namespace goro::net
