// src/net/bufio.cc: goro::net::Reader (Go's bufio) and copy (io.Copy).
//
// The buffer is one std::string: unread bytes are [start_, size()); a fill
// first drops the consumed prefix (once it is over half the buffer, so the
// cost is amortized), then appends what one Conn::read returns. The
// max_size bound counts unread bytes, so a token longer than it fails with
// errc::too_long instead of growing the buffer.
#include <algorithm>
#include <cstring>
#include <system_error>

#include "goro/net.h"

namespace goro::net {

namespace {

constexpr std::size_t kReadChunk = 16 * 1024;

[[noreturn]] void throw_net(const std::error_code& ec, const char* what) { throw std::system_error(ec, what); }

}  // namespace

Reader::Reader(Conn c, std::size_t max_size) : c_(std::move(c)), max_(std::max<std::size_t>(max_size, 1)) {}

bool Reader::fill(std::error_code& ec) {
  if (start_ > 0 && (start_ == buf_.size() || start_ > buf_.size() / 2)) {
    buf_.erase(0, start_);
    start_ = 0;
  }
  std::size_t unread = buf_.size() - start_;
  std::size_t room = max_ > unread ? max_ - unread : 0;
  if (room == 0) {
    ec = make_error_code(errc::too_long);
    return false;
  }
  std::size_t old = buf_.size();
  std::size_t want = std::min(room, kReadChunk);
  buf_.resize(old + want);
  std::size_t n = c_.read(std::span<char>(buf_.data() + old, want), ec);
  buf_.resize(old + n);
  return n > 0;
}

std::string Reader::take(std::size_t n) {
  std::string out = buf_.substr(start_, n);
  start_ += n;
  return out;
}

std::string Reader::read_until(char delim, std::error_code& ec) {
  std::size_t scanned = 0;  // unread bytes already searched
  for (;;) {
    std::size_t unread = buf_.size() - start_;
    const char* base = buf_.data() + start_;
    if (const void* hit = std::memchr(base + scanned, delim, unread - scanned)) {
      ec.clear();
      return take(static_cast<std::size_t>(static_cast<const char*>(hit) - base) + 1);
    }
    scanned = unread;
    std::error_code rec;
    if (!fill(rec)) {
      if (rec == errc::too_long) {
        ec = rec;  // the unread bytes stay: read() can still drain them
        return {};
      }
      ec = rec;
      return take(buf_.size() - start_);  // what came before the end (or the error)
    }
  }
}

std::optional<std::string> Reader::read_until(char delim) {
  std::error_code ec;
  std::string s = read_until(delim, ec);
  if (ec == errc::eof) {
    if (s.empty()) return std::nullopt;
    return s;
  }
  if (ec) throw_net(ec, "goro::net::Reader::read_until");
  return s;
}

std::string Reader::read_line(std::error_code& ec) {
  std::string s = read_until('\n', ec);
  if (ec == errc::eof && !s.empty()) ec.clear();  // a last line without "\n" is a line
  if (ec) return {};
  if (!s.empty() && s.back() == '\n') s.pop_back();
  if (!s.empty() && s.back() == '\r') s.pop_back();
  return s;
}

std::optional<std::string> Reader::read_line() {
  std::error_code ec;
  std::string s = read_line(ec);
  if (ec == errc::eof) return std::nullopt;
  if (ec) throw_net(ec, "goro::net::Reader::read_line");
  return s;
}

std::size_t Reader::read(std::span<std::byte> out, std::error_code& ec) {
  if (out.empty()) {
    ec.clear();
    return 0;
  }
  if (buffered() == 0) return c_.read(out, ec);
  std::size_t n = std::min(out.size(), buffered());
  std::memcpy(out.data(), buf_.data() + start_, n);
  start_ += n;
  ec.clear();
  return n;
}

std::size_t Reader::read_full(std::span<std::byte> out, std::error_code& ec) {
  std::size_t got = 0;
  while (got < out.size()) {
    std::size_t n = read(out.subspan(got), ec);
    got += n;
    if (ec) {
      if (ec == errc::eof && got > 0) ec = make_error_code(errc::unexpected_eof);
      return got;
    }
  }
  ec.clear();
  return got;
}

void Reader::read_full(std::span<std::byte> out) {
  std::error_code ec;
  read_full(out, ec);
  if (ec) throw_net(ec, "goro::net::Reader::read_full");
}

namespace {

template <class ReadFn>
std::size_t copy_loop(Conn& dst, ReadFn&& read_some, std::error_code& ec) {
  std::byte buf[kReadChunk];
  std::size_t total = 0;
  for (;;) {
    std::size_t n = read_some(std::span<std::byte>(buf), ec);
    if (n > 0) {
      std::error_code wec;
      total += dst.write(std::span<const std::byte>(buf, n), wec);
      if (wec) {
        ec = wec;
        return total;
      }
    }
    if (ec == errc::eof) {
      ec.clear();
      return total;
    }
    if (ec) return total;
  }
}

}  // namespace

std::size_t copy(Conn dst, Conn src, std::error_code& ec) {
  return copy_loop(dst, [&](std::span<std::byte> b, std::error_code& e) { return src.read(b, e); }, ec);
}

std::size_t copy(Conn dst, Conn src) {
  std::error_code ec;
  std::size_t n = copy(std::move(dst), std::move(src), ec);
  if (ec) throw_net(ec, "goro::net::copy");
  return n;
}

std::size_t copy(Conn dst, Reader& src, std::error_code& ec) {
  return copy_loop(dst, [&](std::span<std::byte> b, std::error_code& e) { return src.read(b, e); }, ec);
}

}  // namespace goro::net
