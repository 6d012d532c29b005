// Must not compile: a receive handler taking neither std::optional<T>, T nor
// nothing. The error must name the three forms (tests/CMakeLists.txt).
#include <goro/goro.h>

#include <string>

void f(goro::Chan<int> c) {
  goro::select(goro::recv(c, [](const std::string&) {}));
}
