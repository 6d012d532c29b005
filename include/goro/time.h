// goro/time.h: Go's time package, on the runtime's timers.
//
// after(d) (time.After): a channel that receives the current time once, d
// from now. The timer costs a heap entry, no thread. (Timer, Ticker and
// after_func land with the sync/time/context issue.)
#pragma once

#include <goro/chan.h>
#include <goro/export.h>
#include <goro/runtime.h>

namespace goro {

GORO_EXPORT Chan<Clock::time_point> after(Clock::duration d);

template <class Rep, class Period>
Chan<Clock::time_point> after(std::chrono::duration<Rep, Period> d) {
  return after(std::chrono::ceil<Clock::duration>(d));
}

}  // namespace goro
