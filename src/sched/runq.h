// src/sched/runq.h: a P's local run queue, a bounded ring in the style of
// Go's runq.
//
// Invariants:
//  - Only the owning P pushes (writes `tail_` and the slot it covers).
//  - Any thread may take from the head: the owner pops one, a thief grabs
//    half; both claim entries by CAS on `head_`.
//  - Entries in [head_, tail_) are valid. A slot is read before the CAS that
//    claims it, so slot reads are relaxed atomics (a thief may read a slot the
//    owner is concurrently overwriting; its CAS then fails and it discards).
// Memory order: push stores tail_ with release, pairing with the acquire load
// of tail_ in pop/grab, so a claimed slot's G (and all writes made before it
// was pushed) is visible to the claimer. CAS on head_ is acq_rel so that the
// owner does not overwrite a slot before a thief that claimed it read it.
#pragma once

#include <atomic>
#include <cstdint>

#include "sched/g.h"

namespace goro::rt {

class RunQueue {
 public:
  static constexpr std::uint32_t kSize = 256;

  // Owner only. Returns false if full (the caller spills to the global queue).
  bool push(G* g) {
    std::uint32_t h = head_.load(std::memory_order_acquire);
    std::uint32_t t = tail_.load(std::memory_order_relaxed);
    if (t - h >= kSize) return false;
    slots_[t % kSize].store(g, std::memory_order_relaxed);
    tail_.store(t + 1, std::memory_order_release);
    return true;
  }

  // Owner only: moves half of a full queue into `out` (count returned), so
  // the caller can put them on the global queue in one batch.
  std::uint32_t take_half(G** out) {
    for (;;) {
      std::uint32_t h = head_.load(std::memory_order_acquire);
      std::uint32_t t = tail_.load(std::memory_order_relaxed);
      std::uint32_t n = (t - h) / 2;
      if (n == 0) return 0;
      for (std::uint32_t i = 0; i < n; ++i) out[i] = slots_[(h + i) % kSize].load(std::memory_order_relaxed);
      if (head_.compare_exchange_weak(h, h + n, std::memory_order_acq_rel)) return n;
    }
  }

  // Any thread. The owner uses it for its own next G, in every switch path:
  // one attempt inline, the retries (a thief took the head meanwhile) out of
  // line, which keeps the inline part free of loop-carried addresses.
  G* pop() {
    std::uint32_t h = head_.load(std::memory_order_acquire);
    if (h == tail_.load(std::memory_order_acquire)) return nullptr;
    G* g = slots_[h % kSize].load(std::memory_order_relaxed);
    if (head_.compare_exchange_strong(h, h + 1, std::memory_order_acq_rel)) [[likely]] {
      if (g == nullptr) __builtin_unreachable();  // a claimed slot holds a G: lets callers skip the test
      return g;
    }
    return pop_retry();
  }

  // Thief: grabs half of this queue (rounded up) into `out`, at most kSize/2.
  std::uint32_t grab(G** out) {
    for (;;) {
      std::uint32_t h = head_.load(std::memory_order_acquire);
      std::uint32_t t = tail_.load(std::memory_order_acquire);
      std::uint32_t n = t - h;
      n -= n / 2;
      if (n == 0) return 0;
      if (n > kSize / 2) continue;  // inconsistent snapshot (h read before a wrap); retry
      for (std::uint32_t i = 0; i < n; ++i) out[i] = slots_[(h + i) % kSize].load(std::memory_order_relaxed);
      if (head_.compare_exchange_weak(h, h + n, std::memory_order_acq_rel)) return n;
    }
  }

  bool empty() const {
    return head_.load(std::memory_order_acquire) == tail_.load(std::memory_order_acquire);
  }
  std::uint32_t size() const {
    return tail_.load(std::memory_order_acquire) - head_.load(std::memory_order_acquire);
  }

 private:
  __attribute__((noinline)) G* pop_retry() {
    for (;;) {
      std::uint32_t h = head_.load(std::memory_order_acquire);
      std::uint32_t t = tail_.load(std::memory_order_acquire);
      if (h == t) return nullptr;
      G* g = slots_[h % kSize].load(std::memory_order_relaxed);
      if (head_.compare_exchange_weak(h, h + 1, std::memory_order_acq_rel)) return g;
    }
  }

  // The slots first: at offset 0 from the queue, a slot's address is one
  // scaled-index operand in the inlined push and pop (after the indices the
  // compiler added the slots' offset to the index in a separate instruction).
  std::atomic<G*> slots_[kSize]{};
  alignas(64) std::atomic<std::uint32_t> head_{0};
  alignas(64) std::atomic<std::uint32_t> tail_{0};
};

}  // namespace goro::rt
