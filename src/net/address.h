// src/net/address.h: "host:port" parsing, name resolution and formatting
// for goro::net.
#pragma once

#include <sys/socket.h>

#include <string>
#include <string_view>
#include <system_error>
#include <vector>

namespace goro::net::detail {

struct Endpoint {
  sockaddr_storage addr{};
  socklen_t len = 0;
  int family() const { return addr.ss_family; }
  const sockaddr* sa() const { return reinterpret_cast<const sockaddr*>(&addr); }
};

// Resolves address to the endpoints to try, IPv4 first. `passive` (listen):
// an empty host means every interface ([::] accepting IPv4 too, then
// 0.0.0.0); otherwise (dial) it means this machine (127.0.0.1, ::1).
// Literal IPs are parsed directly; other names go through getaddrinfo on the
// blocking pool. Errors: std::errc::invalid_argument for a malformed
// address, goro::errc::host_not_found for a name that does not resolve.
std::error_code resolve(std::string_view address, bool passive, std::vector<Endpoint>& out);

// "1.2.3.4:80" or "[::1]:80".
std::string format(const sockaddr* sa);

}  // namespace goro::net::detail
