// goro/goro.h: the umbrella header. Go's concurrency model in C++20:
// goroutines (runtime.h), the sync package (sync.h), panics (panic.h).
#pragma once

#include <goro/panic.h>
#include <goro/runtime.h>
#include <goro/sync.h>
