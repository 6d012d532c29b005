// src/netpoll/poller.h: the OS readiness backend behind the netpoller, the
// only platform code of network I/O. One instance per process. epoll
// (poller_epoll.cc) is the one backend today; io_uring would be a second
// implementation of these five functions.
//
// A registered descriptor is reported edge-triggered: an event says "the fd
// may have become readable/writable since the last report", never "still
// is". Callers therefore try the syscall first and wait only after EAGAIN,
// or after a read that proved the fd drained (netpoll.h, pd_short_read_drains).
#pragma once

#include <cstdint>

namespace goro::rt::poller {

// Readiness of one registered descriptor, as reported by wait().
struct Event {
  std::uint64_t token;  // as given to add()
  bool readable;        // data, EOF, a pending connection, or an error
  bool writable;        // buffer space, connect done, or an error
  bool exceptional;     // hang-up, error or urgent data: no further event will announce them
};

// Creates the backend; aborts with a message if the OS refuses (no fds left
// at start is not recoverable for the runtime). Idempotent, thread-safe.
void init();

// Registers fd for both directions, edge-triggered. token != 0. Returns 0
// or an errno value.
int add(int fd, std::uint64_t token);

// Unregisters fd (before it is closed). Returns 0 or an errno value.
int remove(int fd);

// Waits for events until deadline_ns (CLOCK_MONOTONIC; 0 = do not block,
// INT64_MAX = no deadline) or until interrupt(). Fills at most max events
// and returns how many. Several threads may call it at once.
int wait(std::int64_t deadline_ns, Event* out, int max);

// Makes a wait() in progress (or the next one) return promptly. Coalesced:
// many calls before the waiter wakes cost one wakeup.
void interrupt();

}  // namespace goro::rt::poller
