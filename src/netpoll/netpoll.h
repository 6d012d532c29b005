// src/netpoll/netpoll.h: the netpoller. Goroutines wait for socket readiness
// here; the scheduler polls for it in its idle path (sched.cc).
//
// A PollDesc belongs to one open non-blocking descriptor. For each direction
// (r = read/accept, w = write/connect) it has a word that is
//   0        nobody waits and no readiness is pending,
//   kReady   readiness arrived while nobody waited (consumed by the next wait),
//   kWait    a waiter is committing to park (between its CAS and park),
//   a G*     that goroutine (or plain thread's pseudo-G) is parked on it.
// A waiter goes 0 -> kWait, checks for close/deadline, parks, and in the
// park's unlock hook (its context saved) goes kWait -> G*. A waker swaps the
// word; if it took a G it readies it; if it took kWait the waiter's commit
// CAS fails and the waiter readies itself. Close and deadline expiry set
// their flag (seq_cst) before swapping, the waiter sets kWait (seq_cst)
// before reading the flags: one of them sees the other.
//
// Short reads. A stream read that returns less than it asked for emptied the
// socket's receive queue, so the next read may wait for an event before it
// tries the syscall, instead of paying for an EAGAIN (tokio and libuv do the
// same over epoll): bytes that arrive after that read raise a new edge,
// which leaves kReady or wakes the waiter. Two things end a read short with
// no new edge to follow: a FIN or an error that came with the last bytes
// (the one event that announced both is spent), and TCP urgent data (a read
// stops at its mark with bytes queued behind it). An event that reports
// either sets `rexcept` for the descriptor's life (netpoll stores it before
// it takes the waiter off rg, so whoever that event woke, or whoever takes
// its kReady, sees it); from then on a short read proves nothing
// (pd_short_read_drains) and reads try the syscall first.
//
// Lifetime: PollDescs are recycled, never freed, so a readiness event or a
// deadline timer that arrives after its socket closed touches valid memory.
// Events carry a 6-bit generation so most stale ones are dropped; one that
// slips through only makes a waiter retry its syscall (EAGAIN -> wait again).
#pragma once

#include <atomic>
#include <cstdint>

#include "sched/g.h"
#include "sched/lock.h"
#include "sched/sched.h"

namespace goro::rt {

struct alignas(64) PollDesc {
  std::atomic<std::uintptr_t> rg{0}, wg{0};
  std::atomic<std::uint32_t> gen{0};     // bumped at each reuse (low 6 bits go in event tokens)
  std::atomic<bool> closing{false};      // set by pd_evict; waits return errc::closed
  std::atomic<bool> rexcept{false};      // a hang-up, error or urgent data was reported (Short reads)
  std::atomic<std::int64_t> rd{0}, wd{0};  // deadline ns; 0 none, -1 passed
  Lock lock;                             // serializes deadline changes and timer expiry
  Timer rtimer, wtimer;
  PollDesc* next_free = nullptr;
  int fd = -1;
};

// Registers fd (non-blocking) with the poller. Returns null and sets *err to
// an errno value on failure.
PollDesc* pd_open(int fd, int* err);
// Unregisters and recycles pd. Precondition: no operation is using it. The
// caller closes the fd afterwards.
void pd_close(PollDesc* pd);
// Marks pd closing and wakes both directions' waiters (they get errc::closed).
void pd_evict(PollDesc* pd);
// 0, or the goro::errc value (closed, deadline_exceeded) the operation in
// direction mode ('r' or 'w') must fail with.
int pd_check(PollDesc* pd, char mode);
// Parks until the fd may be ready in direction mode, or close, or deadline.
// Returns 0 (retry the syscall) or a goro::errc value.
int pd_wait(PollDesc* pd, char mode);
// Whether a short stream read on pd's descriptor proves its receive queue
// empty, so that the next read may wait first (see Short reads above).
inline bool pd_short_read_drains(PollDesc* pd) { return !pd->rexcept.load(std::memory_order_acquire); }
// Sets the deadline of direction mode ('r', 'w', or 'b' for both): when_ns 0
// means none; a time not after now expires it at once (waking a waiter).
void pd_set_deadline(PollDesc* pd, char mode, std::int64_t when_ns);

// --- for the scheduler
// Goroutines and threads parked in pd_wait right now.
int netpoll_waiters();
// Collects goroutines whose descriptors became ready, waiting until
// deadline_ns at most (0: do not block; INT64_MAX: until interrupted).
// Plain threads are woken directly; goroutines are stored in out (at most
// kNetpollBatch) with status runnable, for the caller to queue. Returns how many.
constexpr int kNetpollBatch = 256;
int netpoll(std::int64_t deadline_ns, G** out);

}  // namespace goro::rt
