// goro/goro.h: the umbrella header. Go's concurrency model in C++20:
// goroutines (runtime.h), channels (chan.h), select (select.h), the sync
// package (sync.h, errgroup.h), time (time.h), context (context.h), error
// codes (errc.h), panics (panic.h).
#pragma once

#include <goro/chan.h>
#include <goro/context.h>
#include <goro/debug.h>
#include <goro/errc.h>
#include <goro/errgroup.h>
#include <goro/pipeline.h>
#include <goro/rate.h>
#include <goro/singleflight.h>
#include <goro/panic.h>
#include <goro/runtime.h>
#include <goro/select.h>
#include <goro/sync.h>
#include <goro/time.h>
#include <goro/net.h>
#include <goro/blocking.h>
