// src/sched/lock.h: the runtime's internal lock is goro::detail::RawMutex
// (include/goro/detail/raw_mutex.h), shared with public types that embed it.
#pragma once

#include <goro/detail/raw_mutex.h>

namespace goro::rt {
using Lock = goro::detail::RawMutex;
}  // namespace goro::rt
