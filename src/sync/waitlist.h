// src/sync/waitlist.h: the FIFO of parked waiters that the sync primitives
// share. Nodes live on the waiting goroutines' (or threads') stacks; the
// public classes hold the list's head and tail as opaque pointers. Callers
// hold the primitive's own lock around every list operation, and read what
// they need from a node before ready(), after which the node may vanish.
#pragma once

#include <cstdint>

#include "sched/sched.h"

namespace goro::rt {

struct WaitNode {
  G* g = nullptr;
  WaitNode* next = nullptr;
  std::int64_t n = 0;          // units wanted (Semaphore), unused elsewhere
  std::int64_t since_ns = 0;   // when it first queued (Mutex starvation)
  bool granted = false;        // the waker handed it what it waited for
};

class WaitList {
 public:
  WaitList(void*& head, void*& tail) : head_(head), tail_(tail) {}

  bool empty() const { return head_ == nullptr; }
  WaitNode* front() const { return static_cast<WaitNode*>(head_); }
  void push_back(WaitNode* w) {
    w->next = nullptr;
    if (tail_ != nullptr) static_cast<WaitNode*>(tail_)->next = w; else head_ = w;
    tail_ = w;
  }
  WaitNode* pop_front() {
    auto* w = static_cast<WaitNode*>(head_);
    if (w == nullptr) return nullptr;
    head_ = w->next;
    if (head_ == nullptr) tail_ = nullptr;
    w->next = nullptr;
    return w;
  }
  // Detaches the whole list and returns its first node.
  WaitNode* take_all() {
    auto* w = static_cast<WaitNode*>(head_);
    head_ = tail_ = nullptr;
    return w;
  }

 private:
  void*& head_;
  void*& tail_;
};

// Readies every node of a detached chain (see WaitList::take_all).
inline void ready_chain(WaitNode* w) {
  while (w != nullptr) {
    WaitNode* next = w->next;  // read first: the node dies once its G runs
    ready(w->g);
    w = next;
  }
}

}  // namespace goro::rt
