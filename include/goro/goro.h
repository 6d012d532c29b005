// goro/goro.h: the umbrella header. Go's concurrency model in C++20:
// goroutines (runtime.h), channels (chan.h), select (select.h), the sync
// package (sync.h), time (time.h), panics (panic.h).
#pragma once

#include <goro/chan.h>
#include <goro/panic.h>
#include <goro/runtime.h>
#include <goro/select.h>
#include <goro/sync.h>
#include <goro/time.h>
