// tests/nats/util.h: small helpers of the NATS tests.
#pragma once

#include <charconv>
#include <cstdint>
#include <stdexcept>
#include <string_view>

namespace goro_test {

// A decimal number. Not std::stoi: it saves and restores errno, a
// thread-local that every goroutine on one worker shares, and TSan reports
// two goroutines' errno accesses on one thread as a race.
inline std::int64_t to_int(std::string_view s) {
  std::int64_t v = 0;
  auto r = std::from_chars(s.data(), s.data() + s.size(), v);
  if (r.ec != std::errc{} || r.ptr != s.data() + s.size()) throw std::invalid_argument("not a number");
  return v;
}

}  // namespace goro_test
