// bench/vm/page_commit.c: how fast this machine commits fresh pages of
// anonymous memory, from one thread and from several at once, laid out as
// goro lays out stack tops (one 4 KiB page every 132 KiB: a 128 KiB stack
// and its guard). Three ways, as goro has used them: a first write (a page
// fault), MADV_POPULATE_WRITE of one page then the write, and
// process_madvise of 16 pages per call then the writes (goro's
// populate_tops). It prints, per way and thread count, the microseconds one
// thread spends per page and the pages per second of all threads together.
// If the second figure does not grow with the threads, fresh pages are a
// machine-wide bottleneck that a second P cannot relieve: then spawning
// goroutines that each need a new page is bound by the page count, not by
// the scheduler.
//
// usage: page_commit [--tiny] [pages_per_thread [max_threads]]
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

enum way { FAULT, POPULATE, BATCH16, NWAYS };
static const char* const kWayName[NWAYS] = {"first write (fault)", "madvise POPULATE_WRITE, 1 page",
                                            "process_madvise POPULATE_WRITE, 16 pages"};
static const size_t kStride = 132 * 1024;
static const size_t kPage = 4096;

struct job {
  enum way way;
  long pages;
  int pidfd;
  int failed;
};

static double now_s(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static void* run(void* arg) {
  struct job* j = arg;
  char* base = mmap(NULL, (size_t)j->pages * kStride, PROT_READ | PROT_WRITE,
                    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (base == MAP_FAILED) {
    j->failed = errno;
    return NULL;
  }
  madvise(base, (size_t)j->pages * kStride, MADV_NOHUGEPAGE);
  for (long i = 0; i < j->pages;) {
    long n = j->way == BATCH16 ? (j->pages - i < 16 ? j->pages - i : 16) : 1;
    if (j->way == POPULATE) {
      if (madvise(base + i * kStride + kStride - kPage, kPage, MADV_POPULATE_WRITE) != 0) j->failed = errno;
    } else if (j->way == BATCH16) {
      struct iovec iov[16];
      for (long k = 0; k < n; ++k) iov[k] = (struct iovec){base + (i + k) * kStride + kStride - kPage, kPage};
      if (syscall(SYS_process_madvise, j->pidfd, iov, (size_t)n, MADV_POPULATE_WRITE, 0) < 0) j->failed = errno;
    }
    for (long k = 0; k < n; ++k) base[(i + k) * kStride + kStride - 64] = 1;  // the top frame's first write
    i += n;
  }
  munmap(base, (size_t)j->pages * kStride);
  return NULL;
}

int main(int argc, char** argv) {
  int argi = 1;
  long pages = 20000;
  if (argi < argc && strcmp(argv[argi], "--tiny") == 0) {
    pages = 200;
    ++argi;
  }
  if (argi < argc) pages = atol(argv[argi++]);
  long maxt = argi < argc ? atol(argv[argi++]) : sysconf(_SC_NPROCESSORS_ONLN);
  if (pages <= 0 || maxt <= 0 || maxt > 64) {
    fprintf(stderr, "usage: page_commit [--tiny] [pages_per_thread [max_threads]]\n");
    return 64;
  }
  int pidfd = (int)syscall(SYS_pidfd_open, getpid(), 0);
  printf("%ld fresh pages per thread, one per %zu KiB\n", pages, kStride / 1024);
  for (int w = 0; w < NWAYS; ++w) {
    for (long nt = 1; nt <= maxt; nt = nt == maxt ? maxt + 1 : maxt) {  // 1, then max_threads
      pthread_t th[64];
      struct job jobs[64];
      double start = now_s();
      for (long t = 0; t < nt; ++t) {
        jobs[t] = (struct job){(enum way)w, pages, pidfd, 0};
        pthread_create(&th[t], NULL, run, &jobs[t]);
      }
      for (long t = 0; t < nt; ++t) pthread_join(th[t], NULL);
      double secs = now_s() - start;
      int failed = 0;
      for (long t = 0; t < nt; ++t) failed = failed ? failed : jobs[t].failed;
      if (failed != 0) {
        printf("%-42s threads=%ld: unavailable (%s)\n", kWayName[w], nt, strerror(failed));
        break;
      }
      printf("%-42s threads=%ld: %6.2f us per page per thread, %7.0f pages/s in all\n", kWayName[w], nt,
             secs * 1e6 / (double)pages, (double)(nt * pages) / secs);
    }
  }
  return 0;
}
