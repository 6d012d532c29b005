// src/netpoll/poller_epoll.cc: the epoll backend of poller.h.
//
// One epoll instance, descriptors registered once with EPOLLIN | EPOLLOUT |
// EPOLLRDHUP | EPOLLPRI | EPOLLET for their whole life (EPOLLPRI: TCP urgent
// data, which stops a read short at its mark). An eventfd registered with
// token 0 interrupts a blocked wait; `pending` coalesces interrupts so that
// a burst of wakeups costs one eventfd write, and is cleared by the waiter
// that drains the eventfd.
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <mutex>

#include "netpoll/poller.h"
#include "sched/fatal.h"
#include "sched/futex.h"

namespace goro::rt::poller {

namespace {

// Written once by init; read (acquire) by threads that reach wait/add/
// interrupt through paths (nwaiters, scheduler flags) that do not order
// them after init themselves.
std::atomic<int> epfd{-1};
std::atomic<int> evfd{-1};
std::atomic<bool> pending{false};
std::once_flag once;

void do_init() {
  int ep = epoll_create1(EPOLL_CLOEXEC);
  if (ep < 0) {
    char buf[128];
    std::snprintf(buf, sizeof buf, "netpoll: epoll_create1 failed: %s", std::strerror(errno));
    fatal(buf);
  }
  int ev_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (ev_fd < 0) {
    char buf[128];
    std::snprintf(buf, sizeof buf, "netpoll: eventfd failed: %s", std::strerror(errno));
    fatal(buf);
  }
  epoll_event ev{};
  ev.events = EPOLLIN;  // level-triggered: stays reported until drained
  ev.data.u64 = 0;
  if (epoll_ctl(ep, EPOLL_CTL_ADD, ev_fd, &ev) != 0) fatal("netpoll: cannot register the eventfd");
  evfd.store(ev_fd, std::memory_order_release);
  epfd.store(ep, std::memory_order_release);
}

}  // namespace

void init() { std::call_once(once, do_init); }

int add(int fd, std::uint64_t token) {
  epoll_event ev{};
  ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLPRI | EPOLLET;
  ev.data.u64 = token;
  return epoll_ctl(epfd.load(std::memory_order_acquire), EPOLL_CTL_ADD, fd, &ev) == 0 ? 0 : errno;
}

int remove(int fd) {
  epoll_event ev{};
  return epoll_ctl(epfd.load(std::memory_order_acquire), EPOLL_CTL_DEL, fd, &ev) == 0 ? 0 : errno;
}

int wait(std::int64_t deadline_ns, Event* out, int max) {
  constexpr int kMax = 128;
  epoll_event evs[kMax];
  if (max > kMax) max = kMax;
  timespec ts{};
  timespec* tsp = nullptr;
  if (deadline_ns != INT64_MAX) {
    std::int64_t rel = deadline_ns == 0 ? 0 : deadline_ns - mono_now_ns();
    if (rel < 0) rel = 0;
    ts.tv_sec = rel / 1000000000;
    ts.tv_nsec = rel % 1000000000;
    tsp = &ts;
  }
  // epoll_pwait2 takes a timespec: timers keep their precision when the
  // waiting thread is the poller (epoll_wait would round to milliseconds).
  int ep = epfd.load(std::memory_order_acquire);
  if (ep < 0) return 0;  // nothing was ever registered
  int n = epoll_pwait2(ep, evs, max, tsp, nullptr);
  if (n < 0) return 0;  // EINTR: the caller re-checks its state anyway
  int k = 0;
  for (int i = 0; i < n; ++i) {
    if (evs[i].data.u64 == 0) {
      std::uint64_t v;
      while (read(evfd.load(std::memory_order_relaxed), &v, sizeof v) > 0) {
      }
      pending.store(false, std::memory_order_release);
      continue;
    }
    std::uint32_t e = evs[i].events;
    out[k].token = evs[i].data.u64;
    out[k].readable = (e & (EPOLLIN | EPOLLRDHUP | EPOLLPRI | EPOLLHUP | EPOLLERR)) != 0;
    out[k].writable = (e & (EPOLLOUT | EPOLLHUP | EPOLLERR)) != 0;
    out[k].exceptional = (e & (EPOLLRDHUP | EPOLLPRI | EPOLLHUP | EPOLLERR)) != 0;
    ++k;
  }
  return k;
}

void interrupt() {
  int fd = evfd.load(std::memory_order_acquire);
  if (fd < 0) return;  // no poller yet: nobody to interrupt
  if (pending.exchange(true, std::memory_order_acq_rel)) return;
  std::uint64_t one = 1;
  // EAGAIN (counter saturated) still leaves it readable: nothing to do.
  [[maybe_unused]] ssize_t r = write(fd, &one, sizeof one);
}

}  // namespace goro::rt::poller
