// src/sched/fatal.h: unrecoverable runtime errors.
#pragma once

#include <exception>

namespace goro::rt {

struct G;

// Prints "fatal error: <msg>" (naming the current goroutine if any) and ends
// the process with exit status 2. Async-signal-safe.
[[noreturn]] void fatal(const char* msg);

// An exception escaped goroutine g: prints "panic: <what>", the goroutine id
// and its spawn site, and exits with status 2 (Go's unrecovered panic).
[[noreturn]] void die_of_panic(G* g, std::exception_ptr e);

// Installs the SIGSEGV/SIGBUS handler that turns a guard-page hit into a
// "stack overflow" report. Idempotent.
void install_fault_handler();
// Gives the calling worker thread an alternate signal stack, so the handler
// can run when a goroutine's stack is exhausted.
void install_altstack();

}  // namespace goro::rt
