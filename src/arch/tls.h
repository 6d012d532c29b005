// src/arch/tls.h: reading a runtime thread_local in a way that stays right
// when a goroutine resumes on another thread.
//
// A goroutine may park on one thread and resume on another, but the
// compiler believes a function runs on one thread from start to end: it may
// compute a thread_local's address (the thread pointer plus an offset) once
// and reuse it after a call that switched threads, reading the old thread's
// variable. GORO_TLS_LOAD(name, out) loads the pointer-sized thread_local
// whose assembler name is `name` with the thread pointer read afresh, in a
// volatile asm with a memory clobber, so no load moves across a call (a
// switch) and none is merged with another. The variable must use the
// initial-exec model (tls_model("initial-exec")): one offset for every
// thread, fixed at load time, read from the GOT (or an immediate, once the
// linker relaxes it in an executable).
//
// Where no such sequence is written (GORO_HAVE_TLS_LOAD undefined), callers
// use an out-of-line function the optimizer cannot see into instead.
#pragma once

#if defined(__x86_64__)
#define GORO_HAVE_TLS_LOAD 1
// x86-64: %fs holds the thread pointer; the variable lives at %fs:offset.
#define GORO_TLS_LOAD(name, out) \
  asm volatile("movq " name "@gottpoff(%%rip), %0\n\tmovq %%fs:(%0), %0" : "=r"(out) : : "memory")
#endif
