// goro/panic.h: Go's panic, as a C++ exception.
//
// Programmer misuse (send on a closed channel, a negative WaitGroup counter,
// unlocking an unlocked Mutex, ...) throws goro::panic_error whose what() is
// Go's own message text. An exception that escapes a goroutine ends the
// process as an unrecovered Go panic does: "panic: <what()>", the goroutine's
// id and spawn site on stderr, exit status 2.
#pragma once

#include <stdexcept>
#include <string>

namespace goro {

class panic_error : public std::logic_error {
 public:
  explicit panic_error(const std::string& what) : std::logic_error(what) {}
  explicit panic_error(const char* what) : std::logic_error(what) {}
};

}  // namespace goro
