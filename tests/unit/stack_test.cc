// tests/unit/stack_test.cc: goroutine stacks: guard pages, pooling,
// and memory returned to the OS after a burst.
#include <sys/mman.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <atomic>
#include <cstdio>
#include <chrono>
#include <cstring>
#include <thread>
#include <vector>

#include "common.h"
#include "stack/stack.h"

using namespace std::chrono_literals;

namespace goro::test {
namespace {

std::size_t rss_bytes() {
  long pages = 0, resident = 0;
  if (FILE* f = std::fopen("/proc/self/statm", "r")) {
    if (std::fscanf(f, "%ld %ld", &pages, &resident) != 2) resident = 0;
    std::fclose(f);
  }
  return static_cast<std::size_t>(resident) * static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
}

__attribute__((noinline)) void touch_stack(std::size_t bytes) {
  char* buf = static_cast<char*>(__builtin_alloca(bytes));
  std::memset(buf, 1, bytes);
  asm volatile("" ::"r"(buf) : "memory");
}

TEST(Stacks, EveryStackHasAGuardOrACanary) {
  run([] {});
  rt::StackStats st = rt::stack_stats();
  EXPECT_GT(st.stacks, 0u);
  EXPECT_EQ(st.guarded_madvise + st.guarded_mprotect + st.unguarded, st.stacks);
  EXPECT_GT(st.guarded_madvise + st.guarded_mprotect, 0u);
}

// Every stack of a fresh slab, not only the first: the page below each
// stack that says it is guarded cannot be read (process_vm_readv on this
// process reports EFAULT, no signal), and an unguarded one carries the
// canary. Guards are installed in batches (process_madvise); a batch that
// put them at the wrong addresses, or skipped some, fails here.
TEST(Stacks, EveryStackOfASlabIsGuardedWhereItSaysSo) {
  const std::size_t ps = rt::page_size();
  const std::uint8_t cls = rt::stack_class_for(std::size_t{2} << 20);  // a class no other test uses: fresh slabs
  std::vector<rt::Stack*> got;
  for (int i = 0; i < 200; ++i) got.push_back(rt::stack_alloc_global(cls));
  int guarded = 0;
  for (rt::Stack* st : got) {
    char byte = 0;
    iovec local{&byte, 1};
    iovec remote{st->lo - ps, 1};
    errno = 0;
    ssize_t r = process_vm_readv(getpid(), &local, 1, &remote, 1, 0);
    if (st->guarded) {
      ++guarded;
      EXPECT_EQ(r, -1) << "guard page of the stack at " << static_cast<void*>(st->lo) << " is readable";
      EXPECT_EQ(errno, EFAULT);
    } else {
      std::uint64_t word = 0;
      std::memcpy(&word, st->lo, sizeof word);
      EXPECT_EQ(word, rt::kStackCanary);
    }
    // The usable part is readable and writable.
    remote = iovec{st->hi - 1, 1};
    EXPECT_EQ(process_vm_readv(getpid(), &local, 1, &remote, 1, 0), 1);
  }
  EXPECT_GT(guarded, 0);
  for (rt::Stack* st : got) rt::stack_free_global(st);
}

bool resident(const void* page) {
  unsigned char v = 0;
  return mincore(const_cast<void*>(page), rt::page_size(), &v) == 0 && (v & 1) != 0;
}

// Takes from the global pool: distinct stacks of the class asked for, the
// top page of each fresh one committed before any goroutine runs on it (the
// first take commits the next ones' ahead) and nothing below it (the
// goroutine commits what it reaches); given back and taken again, the same
// stacks come back first (they are dirty now).
TEST(Stacks, TakesCommitTheTopPageOfFreshStacksOnly) {
  const std::size_t ps = rt::page_size();
  // A class no other test uses (a fresh slab), and small enough that a
  // 2 MiB page table holds several stacks: new_slab's write that creates
  // each table commits the top of one stack in four, not of all of them.
  const std::uint8_t cls = rt::stack_class_for(std::size_t{512} << 10);
  rt::Stack* got[8] = {};
  for (rt::Stack*& st : got) st = rt::stack_alloc_global(cls);
  for (int i = 0; i < 8; ++i) {
    ASSERT_NE(got[i], nullptr);
    EXPECT_EQ(got[i]->size_class, cls);
    EXPECT_GE(got[i]->size(), std::size_t{512} << 10);
    for (int j = 0; j < i; ++j) EXPECT_NE(got[i], got[j]);
  }
  // Whether this kernel commits pages on request: probe a page of our own.
  void* probe = mmap(nullptr, ps, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  ASSERT_NE(probe, MAP_FAILED);
  const bool can_populate = madvise(probe, ps, MADV_POPULATE_WRITE) == 0;
  munmap(probe, ps);
  for (rt::Stack* st : got) {
    EXPECT_FALSE(resident(st->hi - 2 * ps)) << "a page below the top of a fresh stack was committed";
    if (can_populate && !kTsanBuild) {
      EXPECT_TRUE(resident(st->hi - ps)) << "the top page of a fresh stack is not committed";
    }
  }
  for (rt::Stack* st : got) {
    st->dirty = true;  // as stack_put marks a stack a goroutine ran on
    rt::stack_free_global(st);
  }
  rt::Stack* again[8] = {};
  for (rt::Stack*& st : again) st = rt::stack_alloc_global(cls);
  for (rt::Stack* st : again) EXPECT_NE(std::find(std::begin(got), std::end(got), st), std::end(got));
  for (rt::Stack* st : again) rt::stack_free_global(st);
}

TEST(Stacks, ClassesRoundUpToPowersOfTwo) {
  EXPECT_EQ(rt::stack_class_for(1), 0);
  EXPECT_EQ(rt::stack_class_for(16 * 1024), 0);
  EXPECT_EQ(rt::stack_class_for(16 * 1024 + 1), 1);
  EXPECT_EQ(rt::stack_class_for(128 * 1024), 3);
  EXPECT_EQ(rt::stack_class_for(128 * 1024 + 1), 4);
  EXPECT_EQ(rt::stack_class_for(std::size_t{1} << 30), 16);  // the largest class, 1 GiB
  EXPECT_EQ(rt::stack_class_for((std::size_t{1} << 30) + 1), 16);  // larger asks get the largest
  EXPECT_EQ(rt::stack_class_for(SIZE_MAX), 16);
}

TEST(Stacks, MemoryFallsBackAfterABurst) {
  const std::size_t n = 2000;  // not scaled: the drop must stand out of the noise
  const std::size_t touched = 64 * 1024;
  std::size_t peak = 0;
  run([&] {
    ParkedCrowd crowd(n, [&] { touch_stack(touched); });
    peak = rss_bytes();
    crowd.release();
  });
  // run() returns when main does; the crowd's last goroutines may still be
  // on their way out, and a worker whose stack cache fills flushes half of
  // it to the pool after a trim. Trim until no flush comes in between.
  rt::StackStats st;
  for (int i = 0; i < 500; ++i) {
    rt::stack_trim(true);
    st = rt::stack_stats();
    if (st.pooled_dirty <= rt::kKeepDirty) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_LE(st.pooled_dirty, rt::kKeepDirty);
  std::size_t after = rss_bytes();
  // All but kKeepDirty pooled stacks (and the per-P caches) gave their pages
  // back; at least half of each touched range is asserted.
  std::size_t kept = rt::kKeepDirty + 4 * 32 + 64;
  std::size_t expected_drop = n > kept ? (n - kept) * (touched / 2) : 0;
  EXPECT_LE(after + expected_drop, peak) << "peak " << peak << " after " << after;
}

// An idle worker trims only when every other P is idle too; a program that
// keeps one P busy for good gets a burst's memory back from the monitor,
// once no stack has been taken from the pool for rt::kTrimSettleNs.
TEST(Stacks, TheMonitorTrimsWhileAPStaysBusy) {
  const int saved = max_procs();
  set_max_procs(2);
  std::size_t dirty = SIZE_MAX;
  run([&] {
    std::atomic<bool> spinning{false}, stop{false};
    WaitGroup done;
    done.add(1);
    go([&] {
      spinning.store(true);
      while (!stop.load(std::memory_order_relaxed)) {
      }
      done.done();
    });
    // Polled, not waited for: a wake-up from the spinner would go to its P,
    // which never switches.
    while (!spinning.load()) sleep_for(1ms);
    {
      ParkedCrowd crowd(2000, [] { touch_stack(16 * 1024); });
      crowd.release();
    }
    const auto deadline = std::chrono::steady_clock::now() + 30s;
    do {
      sleep_for(10ms);
      dirty = rt::stack_stats().pooled_dirty;
    } while (dirty > rt::kKeepDirty && std::chrono::steady_clock::now() < deadline);
    stop.store(true);
    done.wait();
  });
  set_max_procs(saved);
  EXPECT_LE(dirty, rt::kKeepDirty);
}

}  // namespace
}  // namespace goro::test
