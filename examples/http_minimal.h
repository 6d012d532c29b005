// examples/http_minimal.h: the deliberately small HTTP/1.1 server logic that
// examples/http_hello (goro) and bench/net's Asio server share, so that a
// comparison of the two measures runtimes, not parsers (examples/go/http_raw
// is the same logic in Go). Request line + headers, Content-Length bodies
// skipped, pipelined requests answered in one write, "Connection: close" and
// HTTP/1.0 honoured; chunked request bodies are refused (501) and headers
// over 8 KiB get 431. The response carries the same headers as Go's net/http
// for w.Write("Hello, World!") (Date, Content-Length, Content-Type).
#pragma once

#include <strings.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <string>
#include <string_view>
#include <vector>

namespace http_minimal {

constexpr std::size_t kMaxHeader = 8192;
constexpr std::string_view kBody = "Hello, World!";

// "Sat, 28 Nov 2026 08:00:00 GMT", formatted once per second per thread. A
// caller does not switch goroutines inside this function, so the
// thread_local is stable while used.
inline std::string_view http_date() {
  thread_local std::time_t cached = 0;
  thread_local char buf[64];
  std::time_t now = std::time(nullptr);
  if (now != cached) {
    std::tm tm;
    gmtime_r(&now, &tm);
    std::strftime(buf, sizeof buf, "%a, %d %b %Y %H:%M:%S GMT", &tm);
    cached = now;
  }
  return buf;
}

inline bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && strncasecmp(a.data(), b.data(), a.size()) == 0;
}

inline std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

struct Request {
  std::size_t total = 0;  // header + body bytes
  bool keep_alive = true;
  int error = 0;          // status to fail with (400, 501), 0 if fine
};

// Parses the head in `head` (up to and excluding the blank line); body_at is
// where the body starts in the buffer.
inline Request parse(std::string_view head, std::size_t body_at) {
  Request r;
  std::size_t eol = head.find("\r\n");
  std::string_view line = head.substr(0, eol);
  std::size_t sp1 = line.find(' ');
  std::size_t sp2 = line.rfind(' ');
  if (sp1 == std::string_view::npos || sp2 == sp1) return {0, false, 400};
  std::string_view version = line.substr(sp2 + 1);
  if (version == "HTTP/1.1") {
    r.keep_alive = true;
  } else if (version == "HTTP/1.0") {
    r.keep_alive = false;
  } else {
    return {0, false, 400};
  }
  std::size_t content_length = 0;
  while (eol != std::string_view::npos) {
    std::size_t start = eol + 2;
    eol = head.find("\r\n", start);
    std::string_view h = head.substr(start, eol == std::string_view::npos ? std::string_view::npos : eol - start);
    std::size_t colon = h.find(':');
    if (colon == std::string_view::npos) continue;
    std::string_view name = h.substr(0, colon);
    std::string_view value = trim(h.substr(colon + 1));
    if (iequals(name, "Connection")) {
      if (iequals(value, "close")) r.keep_alive = false;
      if (iequals(value, "keep-alive")) r.keep_alive = true;
    } else if (iequals(name, "Content-Length")) {
      content_length = std::strtoull(std::string(value).c_str(), nullptr, 10);
    } else if (iequals(name, "Transfer-Encoding")) {
      return {0, false, 501};
    }
  }
  r.total = body_at + content_length;
  return r;
}

inline void append_response(std::string& out, int status, bool keep_alive) {
  const char* reason = status == 200 ? "OK" : status == 400 ? "Bad Request" : status == 431
                     ? "Request Header Fields Too Large" : "Not Implemented";
  std::string_view body = status == 200 ? kBody : std::string_view(reason);
  char head[256];
  int n = std::snprintf(head, sizeof head,
                        "HTTP/1.1 %d %s\r\nDate: %.*s\r\nContent-Length: %zu\r\n"
                        "Content-Type: text/plain; charset=utf-8\r\n%s\r\n",
                        status, reason, static_cast<int>(http_date().size()), http_date().data(), body.size(),
                        keep_alive ? "" : "Connection: close\r\n");
  out.append(head, static_cast<std::size_t>(n));
  out.append(body);
}

// Answers every complete request at the start of [data, data + len) into
// `out` and returns how many bytes they took. keep_alive turns false when
// the connection must close once `out` is written (an error, "Connection:
// close", HTTP/1.0).
inline std::size_t answer_requests(const char* data, std::size_t len, std::string& out, bool& keep_alive) {
  std::size_t pos = 0;
  keep_alive = true;
  while (keep_alive) {
    std::string_view rest(data + pos, len - pos);
    std::size_t end = rest.find("\r\n\r\n");
    if (end == std::string_view::npos) {
      if (rest.size() > kMaxHeader) {
        append_response(out, 431, false);
        keep_alive = false;
      }
      break;
    }
    Request r = parse(rest.substr(0, end), end + 4);
    if (r.error != 0) {
      append_response(out, r.error, false);
      keep_alive = false;
      break;
    }
    if (rest.size() < r.total) break;  // body not all here yet
    append_response(out, 200, r.keep_alive);
    keep_alive = r.keep_alive;
    pos += r.total;
  }
  return pos;
}

// answer_requests on in[0, len), then what is left (a partial request) moved
// to the front of `in`; returns its length.
inline std::size_t answer_and_compact(std::vector<char>& in, std::size_t len, std::string& out, bool& keep_alive) {
  std::size_t pos = answer_requests(in.data(), len, out, keep_alive);
  std::memmove(in.data(), in.data() + pos, len - pos);
  return len - pos;
}

}  // namespace http_minimal
