// bench/workloads/common.h: what every C++ workload program shares: the
// output line, RSS, and the workload registry.
//
// Usage of a workload program: <program> <name> [n]
// It prints one line: name=<name> ns_per_op=<float> rss_kb=<int> [extra=...]
// or name=<name> pending=1 when the workload has no implementation yet.
#pragma once

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <map>
#include <string>

namespace bench {

using Clock = std::chrono::steady_clock;

inline long rss_kb() {
  long kb = 0;
  if (FILE* f = std::fopen("/proc/self/status", "r")) {
    char line[256];
    while (std::fgets(line, sizeof line, f)) {
      if (std::strncmp(line, "VmRSS:", 6) == 0) {
        kb = std::atol(line + 6);
        break;
      }
    }
    std::fclose(f);
  }
  return kb;
}

inline void report(const char* name, Clock::duration elapsed, long ops, const std::string& extra = "") {
  double ns = std::chrono::duration<double, std::nano>(elapsed).count();
  std::printf("name=%s ns_per_op=%.2f rss_kb=%ld ops=%ld%s\n", name, ns / double(ops), rss_kb(), ops, extra.c_str());
}

inline void check(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "workload check failed: %s\n", what);
    std::exit(1);
  }
}

struct Workload {
  long default_n;
  std::function<void(long n)> fn;
};

// Runs the workload named in argv; returns the process exit status.
inline int dispatch(int argc, char** argv, const std::map<std::string, Workload>& all,
                    const char* const* pending) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s <workload> [n]\n", argv[0]);
    return 2;
  }
  std::string name = argv[1];
  for (const char* const* p = pending; *p != nullptr; ++p) {
    if (name == *p) {
      std::printf("name=%s pending=1\n", name.c_str());
      return 0;
    }
  }
  auto it = all.find(name);
  if (it == all.end()) {
    std::fprintf(stderr, "unknown workload %s\n", name.c_str());
    return 2;
  }
  long n = argc > 2 ? std::atol(argv[2]) : 0;
  it->second.fn(n > 0 ? n : it->second.default_n);
  return 0;
}

}  // namespace bench
