// goro/errc.h: goro's error codes, registered with std::is_error_code_enum so
// that `ec == goro::errc::eof` works. System errors keep
// std::system_category().
#pragma once

#include <goro/export.h>

#include <system_error>

namespace goro {

enum class errc {
  canceled = 1,           // context.Canceled
  deadline_exceeded = 2,  // context.DeadlineExceeded, and I/O deadlines
  eof = 3,                // io.EOF
  closed = 4,             // net.ErrClosed: use of a closed Listener or Conn
  host_not_found = 5,     // net.DNSError IsNotFound: a name that does not resolve
  too_long = 6,           // bufio.ErrTooLong: a line or token exceeds the reader's bound
  unexpected_eof = 7,     // io.ErrUnexpectedEOF: the stream ended inside a read_full
  exceeds_burst = 8,      // rate: a wait for more events than the limiter's burst
  would_exceed_deadline = 9,  // rate: a wait that could not end before the context's deadline
};

GORO_EXPORT const std::error_category& goro_category() noexcept;

inline std::error_code make_error_code(errc e) noexcept { return {static_cast<int>(e), goro_category()}; }

}  // namespace goro

template <>
struct std::is_error_code_enum<goro::errc> : std::true_type {};
