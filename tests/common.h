// tests/common.h: shared test helpers.
//  - ProcsTest: the parameterised fixture that runs a test at GOMAXPROCS
//    1, 2 and 4, whatever the machine's CPU count (on the 2-core CI machine,
//    4 is more Ps than cores; nothing assumes a core count).
//  - scaled(n): the one knob that shrinks iteration counts under sanitizers.
//  - panic_message(f): what f panics with.
//  - ParkedCrowd: many goroutines parked at once, then released.
#pragma once

#include <goro/goro.h>
#include <gtest/gtest.h>

#include <atomic>
#include <cstddef>
#include <functional>
#include <cstdint>
#include <string>

namespace goro::test {

#if defined(__SANITIZE_THREAD__)
#define GORO_TEST_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define GORO_TEST_TSAN 1
#endif
#endif

#if defined(GORO_TEST_TSAN)
// ThreadSanitizer runs goroutine-heavy code 20-50x slower (a fiber and its
// shadow memory per goroutine); it needs fewer iterations to see a race.
inline constexpr std::size_t kScaleDiv = 40;
inline constexpr bool kTsanBuild = true;
#elif defined(GORO_SANITIZER_BUILD)
inline constexpr std::size_t kScaleDiv = 10;
inline constexpr bool kTsanBuild = false;
#else
inline constexpr std::size_t kScaleDiv = 1;
inline constexpr bool kTsanBuild = false;
#endif

constexpr std::size_t scaled(std::size_t n) { return n / kScaleDiv > 0 ? n / kScaleDiv : 1; }

// ThreadSanitizer counts every goroutine (a TSan fiber) against its limit of
// 8128 live threads; tests that keep many goroutines alive at once stay
// below it through this knob.
#if defined(GORO_TEST_TSAN)
inline constexpr std::size_t kMaxLive = 4000;
#else
inline constexpr std::size_t kMaxLive = SIZE_MAX;
#endif
constexpr std::size_t scaled_live(std::size_t n) { return scaled(n) < kMaxLive ? scaled(n) : kMaxLive; }

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

// What f panics with (goro::panic_error's text), or "no panic".
template <class F>
std::string panic_message(F&& f) {
  try {
    f();
  } catch (const panic_error& e) {
    return e.what();
  }
  return "no panic";
}

// Raises `m` to at least `v` (a high-water mark shared by goroutines).
inline void atomic_max(std::atomic<int>& m, int v) {
  int cur = m.load();
  while (v > cur && !m.compare_exchange_weak(cur, v)) {
  }
}

// n goroutines parked at once: each runs `first` (if any), then blocks until
// release(). The constructor returns when all are parked; release() wakes
// them and waits until each has finished. Call from a goroutine or thread.
class ParkedCrowd {
 public:
  explicit ParkedCrowd(std::size_t n, std::function<void()> first = nullptr) {
    gate_.add(1);
    for (std::size_t i = 0; i < n; ++i) {
      started_.add(1);
      finished_.add(1);
      go([this, first] {
        if (first) first();
        started_.done();
        gate_.wait();
        finished_.done();
      });
    }
    started_.wait();
  }
  void release() {
    gate_.done();
    finished_.wait();
  }

 private:
  WaitGroup started_, gate_, finished_;
};

#define GORO_INSTANTIATE_PROCS(Fixture) \
  INSTANTIATE_TEST_SUITE_P(Procs, Fixture, ::testing::Values(1, 2, 4), ::goro::test::procs_name)

}  // namespace goro::test
