// src/net/address.cc: see address.h.
#include "net/address.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstring>

#include "goro/blocking.h"
#include "goro/errc.h"

namespace goro::net::detail {

namespace {

std::error_code split(std::string_view address, std::string& host, std::uint16_t& port) {
  std::size_t colon = address.rfind(':');
  if (colon == std::string_view::npos) return std::make_error_code(std::errc::invalid_argument);
  std::string_view h = address.substr(0, colon);
  std::string_view p = address.substr(colon + 1);
  if (!h.empty() && h.front() == '[') {
    if (h.size() < 2 || h.back() != ']') return std::make_error_code(std::errc::invalid_argument);
    h = h.substr(1, h.size() - 2);
  } else if (h.find(':') != std::string_view::npos) {
    return std::make_error_code(std::errc::invalid_argument);  // IPv6 needs brackets
  }
  unsigned v = 0;
  auto [end, err] = std::from_chars(p.data(), p.data() + p.size(), v);
  if (p.empty() || err != std::errc() || end != p.data() + p.size() || v > 65535)
    return std::make_error_code(std::errc::invalid_argument);
  host.assign(h);
  port = static_cast<std::uint16_t>(v);
  return {};
}

Endpoint v4(const in_addr& a, std::uint16_t port) {
  Endpoint e;
  auto* s = reinterpret_cast<sockaddr_in*>(&e.addr);
  s->sin_family = AF_INET;
  s->sin_port = htons(port);
  s->sin_addr = a;
  e.len = sizeof(sockaddr_in);
  return e;
}

Endpoint v6(const in6_addr& a, std::uint16_t port) {
  Endpoint e;
  auto* s = reinterpret_cast<sockaddr_in6*>(&e.addr);
  s->sin6_family = AF_INET6;
  s->sin6_port = htons(port);
  s->sin6_addr = a;
  e.len = sizeof(sockaddr_in6);
  return e;
}

}  // namespace

std::error_code resolve(std::string_view address, bool passive, std::vector<Endpoint>& out) {
  out.clear();
  std::string host;
  std::uint16_t port = 0;
  if (auto ec = split(address, host, port)) return ec;
  in_addr a4{};
  in6_addr a6{};
  if (host.empty()) {
    if (passive) {
      out.push_back(v6(in6addr_any, port));
      a4.s_addr = htonl(INADDR_ANY);
      out.push_back(v4(a4, port));
    } else {
      a4.s_addr = htonl(INADDR_LOOPBACK);
      out.push_back(v4(a4, port));
      out.push_back(v6(in6addr_loopback, port));
    }
    return {};
  }
  if (inet_pton(AF_INET, host.c_str(), &a4) == 1) {
    out.push_back(v4(a4, port));
    return {};
  }
  if (inet_pton(AF_INET6, host.c_str(), &a6) == 1) {
    out.push_back(v6(a6, port));
    return {};
  }
  // A name: getaddrinfo blocks (files, DNS), so it runs on the blocking pool.
  int rc = 0;
  int sys_errno = 0;
  std::vector<Endpoint> found = goro::blocking([&] {
    std::vector<Endpoint> r;
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = passive ? AI_PASSIVE : 0;
    addrinfo* res = nullptr;
    rc = getaddrinfo(host.c_str(), nullptr, &hints, &res);
    sys_errno = errno;  // meaningful for EAI_SYSTEM; errno is per thread
    if (rc != 0) return r;
    for (addrinfo* ai = res; ai != nullptr; ai = ai->ai_next) {
      if (ai->ai_family == AF_INET) {
        r.push_back(v4(reinterpret_cast<sockaddr_in*>(ai->ai_addr)->sin_addr, port));
      } else if (ai->ai_family == AF_INET6) {
        r.push_back(v6(reinterpret_cast<sockaddr_in6*>(ai->ai_addr)->sin6_addr, port));
      }
    }
    freeaddrinfo(res);
    return r;
  });
  // Duplicates (one per socket type) and order: IPv4 first, as Go prefers.
  for (const Endpoint& e : found) {
    bool dup = std::any_of(out.begin(), out.end(), [&](const Endpoint& o) {
      return o.len == e.len && std::memcmp(&o.addr, &e.addr, e.len) == 0;
    });
    if (!dup) out.push_back(e);
  }
  std::stable_partition(out.begin(), out.end(), [](const Endpoint& e) { return e.family() == AF_INET; });
  if (out.empty()) {
    if (rc == EAI_SYSTEM) return {sys_errno, std::system_category()};
    return goro::errc::host_not_found;
  }
  return {};
}

std::string format(const sockaddr* sa) {
  char buf[INET6_ADDRSTRLEN + 16];
  if (sa->sa_family == AF_INET) {
    auto* s = reinterpret_cast<const sockaddr_in*>(sa);
    char ip[INET_ADDRSTRLEN];
    inet_ntop(AF_INET, &s->sin_addr, ip, sizeof ip);
    std::snprintf(buf, sizeof buf, "%s:%u", ip, ntohs(s->sin_port));
    return buf;
  }
  if (sa->sa_family == AF_INET6) {
    auto* s = reinterpret_cast<const sockaddr_in6*>(sa);
    char ip[INET6_ADDRSTRLEN];
    inet_ntop(AF_INET6, &s->sin6_addr, ip, sizeof ip);
    // An IPv4 peer on a dual-stack socket reads as ::ffff:a.b.c.d; show it
    // as Go does, as the IPv4 address.
    if (IN6_IS_ADDR_V4MAPPED(&s->sin6_addr)) {
      in_addr a;
      std::memcpy(&a, &s->sin6_addr.s6_addr[12], 4);
      inet_ntop(AF_INET, &a, ip, sizeof ip);
      std::snprintf(buf, sizeof buf, "%s:%u", ip, ntohs(s->sin6_port));
      return buf;
    }
    std::snprintf(buf, sizeof buf, "[%s]:%u", ip, ntohs(s->sin6_port));
    return buf;
  }
  return {};
}

}  // namespace goro::net::detail
