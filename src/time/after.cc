// src/time/after.cc: time.After on the runtime's timers. The timer and the
// channel handle it sends on live in one heap object that the timer's fire
// callback frees: fire sends without blocking (the channel has one slot and
// only this timer sends on it), so it is safe on the scheduler path.
#include "goro/time.h"

#include "sched/futex.h"
#include "sched/sched.h"

namespace goro {

namespace {
struct AfterTimer {
  rt::Timer timer;
  Chan<Clock::time_point> ch{1};
};
}  // namespace

Chan<Clock::time_point> after(Clock::duration d) {
  auto* a = new AfterTimer;
  Chan<Clock::time_point> ch = a->ch;
  std::int64_t ns = std::chrono::duration_cast<std::chrono::nanoseconds>(d).count();
  a->timer.when = rt::mono_now_ns() + (ns > 0 ? ns : 0);
  a->timer.arg = a;
  a->timer.fire = [](rt::Timer* t) {
    auto* self = static_cast<AfterTimer*>(t->arg);
    Clock::time_point now = Clock::now();
    self->ch.try_send(now);
    delete self;
  };
  rt::timer_add(&a->timer);
  return ch;
}

}  // namespace goro
