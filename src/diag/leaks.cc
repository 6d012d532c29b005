// src/diag/leaks.cc: lock cycles (GORO_DEBUG=leaks=1) and find_leaks().
//
// Lock cycles. Under GORO_DEBUG=leaks=1 every goro::Mutex records its holder
// (the goroutine or thread that locked it, or that it was handed to) and only
// the holder may unlock it (a panic otherwise). A goroutine parked in
// Mutex::lock has one wait-for edge: to the holder of that mutex. With the
// world stopped, if following these edges from goroutine G returns to G,
// every goroutine on the cycle is parked waiting for a mutex held by the next
// one; each holder can release its mutex only by running, and none can run
// before it gets the mutex it waits for; nobody else may unlock them. So the
// cycle is permanent: a report is never false. (Edges are read only while
// every P is stopped, so they are one consistent picture; a holder recorded a
// moment late or cleared a moment early only removes an edge: a miss.)
#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <mutex>
#include <set>
#include <string>
#include <unordered_map>
#include <unistd.h>
#include <vector>

#include "arch/sanitizer.h"
#include "diag/diag.h"
#include "goro/debug.h"
#include "sched/futex.h"
#include "sched/sched.h"

namespace goro::rt::diag {

namespace {
// The cycles among s's goroutines, each as indexes into s.gs.
std::vector<std::vector<std::size_t>> find_cycles(const Snapshot& s) {
  std::unordered_map<const void*, std::size_t> index;
  for (std::size_t i = 0; i < s.gs.size(); ++i) index[s.gs[i].self] = i;
  auto next = [&](std::size_t i) -> long {
    const GSnap& g = s.gs[i];
    if (g.status != GStatus::waiting || g.lock_owner == nullptr) return -1;
    auto it = index.find(g.lock_owner);
    return it == index.end() ? -1 : static_cast<long>(it->second);
  };
  std::vector<int> color(s.gs.size(), 0);  // 0 new, 1 on the current path, 2 done
  std::vector<std::vector<std::size_t>> cycles;
  for (std::size_t start = 0; start < s.gs.size(); ++start) {
    std::vector<std::size_t> path;
    long i = static_cast<long>(start);
    while (i >= 0 && color[static_cast<std::size_t>(i)] == 0) {
      color[static_cast<std::size_t>(i)] = 1;
      path.push_back(static_cast<std::size_t>(i));
      i = next(static_cast<std::size_t>(i));
    }
    if (i >= 0 && color[static_cast<std::size_t>(i)] == 1) {  // closed a cycle on this path
      auto at = std::find(path.begin(), path.end(), static_cast<std::size_t>(i));
      cycles.emplace_back(at, path.end());
    }
    for (std::size_t k : path) color[k] = 2;
  }
  return cycles;
}

std::vector<std::uint64_t> ids_of(const Snapshot& s, const std::vector<std::size_t>& c) {
  std::vector<std::uint64_t> ids;
  for (std::size_t k : c) ids.push_back(s.gs[k].id);
  std::sort(ids.begin(), ids.end());
  return ids;
}
}  // namespace

bool check_lock_cycles() {
  static auto* reported = new std::set<std::vector<std::uint64_t>>;  // the monitor thread's only
  // First without stacks (the world stops only to read descriptors and
  // holders); with stacks only when a new cycle is there.
  {
    Snapshot quick;
    take_snapshot(quick, false);
    bool fresh = false;
    if (!quick.all_stopped) return false;
    for (const auto& c : find_cycles(quick)) fresh = fresh || reported->count(ids_of(quick, c)) == 0;
    if (!fresh) return true;
  }
  Snapshot s;
  take_snapshot(s, true);
  if (!s.all_stopped) return false;  // edges of a P that did not stop may be stale
  for (const std::vector<std::size_t>& c : find_cycles(s)) {
    std::vector<std::uint64_t> ids;
    std::int64_t last_park = 0;
    for (std::size_t k : c) {
      ids.push_back(s.gs[k].id);
      last_park = std::max(last_park, s.gs[k].wait_since_ns);
    }
    if (!reported->insert(ids_of(s, c)).second) continue;
    char buf[256];
    std::string out = "goro: lock cycle: goroutines";
    for (std::size_t k = 0; k < ids.size(); ++k) {
      std::snprintf(buf, sizeof buf, "%s %" PRIu64, k == 0 ? "" : ",", ids[k]);
      out += buf;
    }
    std::snprintf(buf, sizeof buf, " wait for each other's sync.Mutex forever (found %lld ms after the last one parked)\n",
                  static_cast<long long>(std::max<std::int64_t>(0, mono_now_ns() - last_park) / 1'000'000));
    out += buf;
    for (std::size_t k = 0; k < c.size(); ++k) {
      const GSnap& g = s.gs[c[k]];
      const GSnap& h = s.gs[c[(k + 1) % c.size()]];
      std::snprintf(buf, sizeof buf, "  goroutine %" PRIu64 " waits for Mutex %p, held by goroutine %" PRIu64 "\n", g.id,
                    g.wait_obj, h.id);
      out += buf;
    }
    out += '\n';
    // The stacks of the cycle's goroutines.
    std::vector<GSnap> members;
    for (std::size_t k : c) members.push_back(s.gs[k]);
    std::swap(s.gs, members);
    out += render_text(s);
    std::swap(s.gs, members);
    write_stderr(out);
  }
  return true;
}

void report_blocked_forever() {
  static auto* reported = new std::set<std::uint64_t>;  // the monitor thread's only
  std::vector<std::uint64_t> ids;
  if (!blocked_forever_ids(ids)) return;
  std::vector<std::uint64_t> fresh;
  for (std::uint64_t id : ids) {
    if (reported->insert(id).second) fresh.push_back(id);
  }
  if (fresh.empty()) return;
  Snapshot s;
  take_snapshot(s, true);
  std::vector<GSnap> members;
  for (GSnap& g : s.gs) {
    if (std::binary_search(fresh.begin(), fresh.end(), g.id)) members.push_back(std::move(g));
  }
  std::swap(s.gs, members);
  char buf[64];
  std::string out = "goro: goroutine leak: goroutines";
  for (std::size_t k = 0; k < s.gs.size(); ++k) {
    std::snprintf(buf, sizeof buf, "%s %" PRIu64, k == 0 ? "" : ",", s.gs[k].id);
    out += buf;
  }
  out += " are blocked forever (no running code can reach the channels they wait on)\n\n";
  out += render_text(s);
  write_stderr(out);
}

}  // namespace goro::rt::diag

namespace goro {

namespace {
__attribute__((noinline)) std::vector<GoroutineInfo> blocked_forever_impl() {
  std::vector<std::uint64_t> ids;
  if (!rt::diag::blocked_forever_ids(ids) || ids.empty()) return {};
  std::vector<GoroutineInfo> out;
  for (GoroutineInfo& g : goroutines()) {
    if (std::binary_search(ids.begin(), ids.end(), g.id)) out.push_back(std::move(g));
  }
  return out;
}
}  // namespace

std::vector<GoroutineInfo> blocked_forever() {
  rt::diag::clear_stack_below();
  return blocked_forever_impl();
}

namespace {
__attribute__((noinline)) bool proved_ids(std::vector<std::uint64_t>& ids) { return rt::diag::blocked_forever_ids(ids); }
}  // namespace

std::vector<GoroutineInfo> find_leaks(const std::vector<GoroutineInfo>& baseline, Clock::duration grace) {
  std::vector<std::uint64_t> known;
  known.reserve(baseline.size() + 1);
  for (const GoroutineInfo& g : baseline) known.push_back(g.id);
  known.push_back(goroutine_id());  // the caller
  std::sort(known.begin(), known.end());
  const Clock::time_point deadline = Clock::now() + grace;
  Clock::time_point next_proof = Clock::now();
  std::vector<GoroutineInfo> left;
  std::vector<std::uint64_t> stuck;
  // The goroutines now that are not in `known`.
  auto read_left = [&] {
    left.clear();
    for (GoroutineInfo& g : goroutines()) {
      if (!std::binary_search(known.begin(), known.end(), g.id)) left.push_back(std::move(g));
    }
  };
  for (;;) {
    read_left();
    if (left.empty() || Clock::now() >= deadline) return left;
    // Leaks proved permanent need no more grace (a proof stops the world
    // and scans memory: at most one per 50 ms).
    if (Clock::now() >= next_proof) {
      next_proof = Clock::now() + std::chrono::milliseconds(50);
      rt::diag::clear_stack_below();
      if (proved_ids(stuck) &&
          std::all_of(left.begin(), left.end(),
                      [&](const GoroutineInfo& g) { return std::binary_search(stuck.begin(), stuck.end(), g.id); })) {
        // `left` was read before the proof, when some of them may not have
        // parked yet ("runnable"); proved blocked, they cannot move now, so
        // a new reading shows each where it waits for good (goroutines
        // spawned since, not proved, are left out as before).
        read_left();
        std::erase_if(left, [&](const GoroutineInfo& g) { return !std::binary_search(stuck.begin(), stuck.end(), g.id); });
        return left;
      }
    }
    sleep_for(std::chrono::milliseconds(5));  // goroutines on their way out get time to finish
  }
}

}  // namespace goro
