// Bounded parallelism (the 'du' shape of "Go Concurrency Patterns"): walk
// a directory tree with one goroutine per directory, each listing made
// through goro::blocking (directory reads block their thread), and a
// Semaphore bounding how many run at once. Go: a goroutine per directory
// and a buffered channel or semaphore.Weighted of N tokens.
// The mistake it prevents: unbounded parallel file-system calls (thousands
// of threads, EMFILE). The bound here is 4; the walk checks it was kept.
#include <goro/goro.h>

#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "leakcheck.h"

namespace fs = std::filesystem;

struct Walk {
  goro::Semaphore slots{4};
  std::atomic<int> running{0}, most{0};
  std::atomic<long> files{0}, bytes{0};
  goro::WaitGroup wg;

  // Lists one directory (under a slot), counts its files, and walks each
  // subdirectory in a goroutine of its own.
  void dir(std::string path) {
    std::vector<std::string> subdirs;
    slots.acquire();
    int now = running.fetch_add(1) + 1;
    for (int m = most.load(); now > m && !most.compare_exchange_weak(m, now);) {}
    goro::blocking([&] {
      DIR* d = opendir(path.c_str());
      if (d == nullptr) return;
      while (dirent* e = readdir(d)) {
        std::string name = e->d_name;
        if (name == "." || name == "..") continue;
        std::string full = path + "/" + name;
        struct stat st {};
        if (lstat(full.c_str(), &st) != 0) continue;
        if (S_ISDIR(st.st_mode)) {
          subdirs.push_back(full);
        } else {
          files.fetch_add(1);
          bytes.fetch_add(st.st_size);
        }
      }
      closedir(d);
    });
    running.fetch_sub(1);
    slots.release();
    for (std::string& s : subdirs) {
      wg.add(1);
      goro::go([this, s] {
        dir(s);
        wg.done();
      });
    }
  }
};

int main() {
  // A tree to walk: 3 levels of 4 directories, each holding 3 files of
  // 100 bytes (84 directories under the root, 255 files).
  char tmpl[] = "/tmp/goro_du_XXXXXX";
  if (mkdtemp(tmpl) == nullptr) return 1;
  const std::string root = tmpl;
  std::vector<std::string> level{root};
  for (int depth = 0; depth < 3; ++depth) {
    std::vector<std::string> next;
    for (const std::string& d : level) {
      for (int i = 0; i < 4; ++i) {
        std::string sub = d + "/d" + std::to_string(i);
        fs::create_directory(sub);
        next.push_back(sub);
      }
    }
    level = next;
  }
  for (const auto& e : fs::recursive_directory_iterator(root)) {
    if (!e.is_directory()) continue;
    for (int f = 0; f < 3; ++f) std::ofstream(e.path() / ("f" + std::to_string(f))) << std::string(100, 'x');
  }
  for (int f = 0; f < 3; ++f) std::ofstream(root + "/f" + std::to_string(f)) << std::string(100, 'x');

  Walk w;
  goro::run([&] {
    w.wg.add(1);
    goro::go([&] {
      w.dir(root);
      w.wg.done();
    });
    w.wg.wait();
  });
  std::printf("%ld files, %ld bytes\n", w.files.load(), w.bytes.load());
  std::printf("listings at once: at most %s\n", w.most.load() <= 4 ? "4" : "more than 4 (bug)");
  fs::remove_all(root);
  return report_leaks();
}
