// bench/stall/du: the 'du' shape (The Go Programming Language, du4): walk a
// tree with one goroutine per directory, at most 20 listings in flight
// (a counting semaphore), each file's size sent on a channel and summed by
// main. A listing is opendir/readdir plus an lstat of every entry (Go's
// ioutil.ReadDir); it blocks its thread, so it runs either through
// goro::blocking (inline on the system stack, handed off as soon as it
// sleeps) or directly (left to the hand-off).
//
//   du <blocking|direct> [root=/usr]
//
// Prints: mode=direct files=188000 bytes=... took_ms=... threads=... handoffs=...
// bench/stall/du.go is the same program in Go.
#include <goro/goro.h>

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

namespace {

struct Entry {
  std::string name;
  bool dir;
  std::int64_t size;
};

// One directory's entries with their sizes (lstat, as ioutil.ReadDir).
std::vector<Entry> list(const std::string& dir) {
  std::vector<Entry> out;
  DIR* d = opendir(dir.c_str());
  if (d == nullptr) return out;
  int fd = dirfd(d);
  while (dirent* e = readdir(d)) {
    if (std::strcmp(e->d_name, ".") == 0 || std::strcmp(e->d_name, "..") == 0) continue;
    struct stat st;
    if (fstatat(fd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0) continue;
    out.push_back({e->d_name, S_ISDIR(st.st_mode), static_cast<std::int64_t>(st.st_size)});
  }
  closedir(d);
  return out;
}

struct Walk {
  bool use_blocking;
  goro::Semaphore sema{20};
  goro::WaitGroup wg;
  goro::Chan<std::int64_t> sizes{256};

  void walk(std::string dir) {
    sema.acquire();
    std::vector<Entry> es = use_blocking ? goro::blocking([&] { return list(dir); }) : list(dir);
    sema.release();
    for (Entry& e : es) {
      if (e.dir) {
        wg.add(1);
        goro::go([this, sub = dir + "/" + e.name] {
          walk(sub);
          wg.done();
        });
      } else {
        sizes.send(e.size);
      }
    }
  }
};

}  // namespace

int main(int argc, char** argv) {
  const std::string mode = argc > 1 ? argv[1] : "direct";
  const std::string root = argc > 2 ? argv[2] : "/usr";
  if (mode != "blocking" && mode != "direct") {
    std::fprintf(stderr, "usage: du <blocking|direct> [root]\n");
    return 2;
  }
  return goro::run([&] {
    auto t0 = std::chrono::steady_clock::now();
    Walk w;
    w.use_blocking = mode == "blocking";
    w.wg.add(1);
    goro::go([&] {
      w.walk(root);
      w.wg.done();
    });
    goro::go([&] {
      w.wg.wait();
      w.sizes.close();
    });
    std::int64_t files = 0, bytes = 0;
    while (auto s = w.sizes.recv()) {
      ++files;
      bytes += *s;
    }
    double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    goro::RuntimeStats st = goro::runtime_stats();
    std::printf("mode=%s procs=%d files=%lld bytes=%lld took_ms=%.0f threads=%zu handoffs=%llu\n", mode.c_str(),
                goro::max_procs(), static_cast<long long>(files), static_cast<long long>(bytes), ms, st.threads,
                static_cast<unsigned long long>(st.handoffs));
    return 0;
  });
}
