// Must not compile: go() decay-copies its arguments, so a function taking a
// non-const reference cannot be called with them; the error must say to use
// std::ref, as std::thread's does (tests/CMakeLists.txt).
#include <goro/goro.h>

void bump(int& x) { ++x; }

void f() {
  int n = 0;
  goro::go(bump, n);
}
