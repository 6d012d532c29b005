// tests/common.h: shared test helpers.
//  - ProcsTest: the parameterised fixture that runs a test at several
//    GOMAXPROCS values (1, 2, and more than the machine's 2 cores).
//  - scaled(n): the one knob that shrinks iteration counts under sanitizers.
#pragma once

#include <goro/goro.h>
#include <gtest/gtest.h>

#include <cstddef>

namespace goro::test {

#if defined(GORO_SANITIZER_BUILD)
inline constexpr std::size_t kScaleDiv = 10;
#else
inline constexpr std::size_t kScaleDiv = 1;
#endif

constexpr std::size_t scaled(std::size_t n) { return n / kScaleDiv > 0 ? n / kScaleDiv : 1; }

class ProcsTest : public ::testing::TestWithParam<int> {
 protected:
  void SetUp() override {
    saved_ = goro::max_procs();
    goro::set_max_procs(GetParam());
  }
  void TearDown() override { goro::set_max_procs(saved_); }

 private:
  int saved_ = 1;
};

inline std::string procs_name(const ::testing::TestParamInfo<int>& info) {
  return "procs" + std::to_string(info.param);
}

#define GORO_INSTANTIATE_PROCS(Fixture) \
  INSTANTIATE_TEST_SUITE_P(Procs, Fixture, ::testing::Values(1, 2, 4), ::goro::test::procs_name)

}  // namespace goro::test
