// src/diag/dump.cc: goroutine dumps in Go's text form and as JSON,
// goroutines() and runtime_stats().
#include <sys/mman.h>
#include <unistd.h>

#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <unordered_map>

#include "arch/sanitizer.h"
#include "diag/diag.h"
#include "diag/monitor.h"
#include "goro/blocking.h"
#include "goro/debug.h"
#include "netpoll/netpoll.h"
#include "sched/futex.h"
#include "sched/sched.h"

namespace goro::rt::diag {

namespace {

const char* state_text(const GSnap& g) {
  switch (g.status) {
    case GStatus::running: return g.wait_reason != nullptr ? g.wait_reason : "running";  // kInBlocking
    case GStatus::runnable: return "runnable";
    case GStatus::waiting: return g.wait_reason != nullptr ? g.wait_reason : "waiting";
    default: return "dead";
  }
}

std::int64_t waited_ms(const Snapshot& s, const GSnap& g) {
  if ((g.status != GStatus::waiting && g.wait_reason == nullptr) || g.wait_since_ns == 0) return 0;
  std::int64_t d = s.taken_ns - g.wait_since_ns;
  return d > 0 ? d / 1'000'000 : 0;
}

bool starts_with(const std::string& s, const char* p) { return s.compare(0, std::strlen(p), p) == 0; }

// The runtime's own frames above the user's (the switch, park, the
// scheduler's helpers, the dump itself) and below them (the goroutine's entry,
// run()'s wrapper) say nothing to the user: Go's traceback hides its runtime
// frames the same way (runtime.goexit). What the user called (a Chan's
// receive, a Mutex's lock) stays.
bool ends_with(const std::string& s, const char* p) {
  std::size_t n = std::strlen(p);
  return s.size() >= n && s.compare(s.size() - n, n, p) == 0;
}

bool runtime_frame(const Symbol& s) {
  // Plumbing inlined between the spawn and the user's function.
  if (ends_with(s.file, "/goro/detail/spawn.h") || ends_with(s.file, "/goro/runtime.h") ||
      ends_with(s.file, "/bits/invoke.h") || ends_with(s.file, "/functional") || ends_with(s.file, "/tuple"))
    return true;
  // run()'s wrapper with the user's main inlined into it: the user's frame.
  if (starts_with(s.function, "goro::run<")) return false;
  return starts_with(s.function, "goro::rt::") || starts_with(s.function, "goro_ctx_") ||
         starts_with(s.function, "goro::goroutine_dump") ||
         starts_with(s.function, "goro::detail::run_main") || starts_with(s.function, "std::__invoke") ||
         starts_with(s.function, "std::invoke") || starts_with(s.function, "std::apply") ||
         starts_with(s.function, "std::__apply");
}

// The spawn thunk, goro::detail::Closure<Fin, F, Args...>::thunk(void*), is
// where a lambda's body is inlined: name it by F when F is a lambda or a
// function object; with a plain function F (which has its own frame) the
// thunk frame is dropped. Returns false to drop.
// The template argument `index` (0-based) of the name's first template, or "".
std::string template_arg(const std::string& f, std::size_t open, int index) {
  int depth = 0, arg = 0;
  std::size_t arg_start = open + 1;
  for (std::size_t i = open + 1; i < f.size(); ++i) {
    char c = f[i];
    if (c == '<' || c == '(' || c == '{' || c == '[') {
      ++depth;
    } else if (c == ')' || c == '}' || c == ']' || (c == '>' && depth > 0)) {
      --depth;
    } else if ((c == ',' || c == '>') && depth == 0) {
      if (arg == index) return f.substr(arg_start, i - arg_start);
      ++arg;
      arg_start = i + 1;
      while (arg_start < f.size() && f[arg_start] == ' ') ++arg_start;
      if (c == '>') break;
    }
  }
  return "";
}

bool rename_thunk(Symbol& s) {
  if (starts_with(s.function, "goro::run<")) {  // run(main): main's body is inlined here
    std::string fn = template_arg(s.function, std::strlen("goro::run"), 0);
    if (!fn.empty()) s.function = fn + "::operator()";
    return true;
  }
  static const char kPrefix[] = "goro::detail::Closure<";
  if (!starts_with(s.function, kPrefix)) return true;
  std::string fn = template_arg(s.function, sizeof kPrefix - 2, 1);
  if (fn.empty() || fn.find("(*)") != std::string::npos || fn.find("(&)") != std::string::npos) return false;
  s.function = fn.find("lambda") != std::string::npos ? fn : fn + "::operator()";
  return true;
}

// What one pc contributes to a dump, rendered once per pc (a dump of many
// goroutines parked in the same places renders each place once).
struct PcText {
  bool runtime_only = true;   // every frame at this pc is the runtime's
  bool droppable = true;      // ... or unknown ("?"): dropped at the bottom
  std::string text;           // the user's frames, Go's text form
  std::string json;           // the same as JSON objects, each followed by ','
};

void append_frame_json(std::string& out, const Symbol& sym);
void append_frame_text(std::string& out, const Symbol& s);

const PcText& pc_text(std::unordered_map<std::uintptr_t, PcText>& cache, std::uintptr_t pc) {
  auto it = cache.find(pc);
  if (it != cache.end()) return it->second;
  PcText t;
  for (Symbol& sym : symbolize(pc)) {
    bool rt = runtime_frame(sym);
    t.runtime_only = t.runtime_only && rt;
    t.droppable = t.droppable && (rt || sym.function == "?");
    if (rt || !rename_thunk(sym)) continue;
    append_frame_text(t.text, sym);
    append_frame_json(t.json, sym);
    t.json += ',';
  }
  return cache.emplace(pc, std::move(t)).first->second;
}

struct Frames {
  std::vector<const PcText*> pcs;
  bool elided = false;  // more than kMaxFrames
};

Frames frames_of(const Snapshot& s, GSnap& g, std::unordered_map<std::uintptr_t, PcText>& cache,
                 bool& have_unwinder) {
  Frames f;
  if (!g.is_caller) have_unwinder = unwind(s, g) && have_unwinder;
  std::size_t b = 0, e = g.pcs.size();
  std::vector<const PcText*> all;
  all.reserve(e);
  for (std::uintptr_t pc : g.pcs) all.push_back(&pc_text(cache, pc));
  while (b < e && all[b]->runtime_only) ++b;  // the switch, park, the dump itself
  while (e > b && all[e - 1]->droppable) --e;  // the goroutine's entry
  f.pcs.assign(all.begin() + static_cast<std::ptrdiff_t>(b), all.begin() + static_cast<std::ptrdiff_t>(e));
  f.elided = g.pcs.size() >= static_cast<std::size_t>(kMaxFrames);
  return f;
}

void json_str(std::string& out, const char* s) {
  out += '"';
  for (; s != nullptr && *s != '\0'; ++s) {
    unsigned char c = static_cast<unsigned char>(*s);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", c);
      out += buf;
    } else {
      out += static_cast<char>(c);
    }
  }
  out += '"';
}
void json_str(std::string& out, const std::string& s) { json_str(out, s.c_str()); }

void append_frame_text(std::string& out, const Symbol& s) {
  char buf[64];
  out += s.function;
  out += "\n\t";
  if (!s.file.empty()) {
    out += s.file;
    std::snprintf(buf, sizeof buf, ":%d +0x%" PRIxPTR "\n", s.line, s.offset);
  } else {
    out += s.module.empty() ? "?" : s.module;
    std::snprintf(buf, sizeof buf, "+0x%" PRIxPTR "\n", s.module_offset);
  }
  out += buf;
}

void append_frame_json(std::string& out, const Symbol& sym) {
  char buf[96];
  out += "{\"function\":";
  json_str(out, sym.function);
  out += ",\"file\":";
  json_str(out, sym.file);
  std::snprintf(buf, sizeof buf, ",\"line\":%d,\"module\":", sym.line);
  out += buf;
  json_str(out, sym.module);
  std::snprintf(buf, sizeof buf, ",\"module_offset\":%" PRIuPTR "}", sym.module_offset);
  out += buf;
}

const char* wait_kind(const GSnap& g) {
  if (g.chan_cap >= 0) return "chan";
  if (g.wait_reason != nullptr && std::strcmp(g.wait_reason, "sync.Mutex.Lock") == 0) return "mutex";
  if (g.wait_reason != nullptr && std::strcmp(g.wait_reason, "select") == 0) return "select";
  return "other";
}

// Renders on the goroutine::blocking pool when called from a goroutine, so
// that its processor runs other goroutines meanwhile.
template <class F>
void off_processor(F&& f) {
  if (current_g() != nullptr) {
    goro::blocking([&] { f(); });
  } else {
    f();
  }
}

// Reserves room for a large dump, populated in one call (page faults one by
// one cost tens of microseconds each on some virtual machines: a 40 MB dump
// took 0.3 s more).
void reserve_populated(std::string& out, std::size_t n) {
  out.reserve(n);
  populate(out.data(), out.capacity());
}

}  // namespace

std::string render_text(Snapshot& s) {
  std::unordered_map<std::uintptr_t, PcText> cache;
  std::string out;
  reserve_populated(out, s.gs.size() * 640 + 4096);
  bool have_unwinder = true;
  char buf[128];
  for (std::size_t i = 0; i < s.gs.size(); ++i) {
    GSnap& g = s.gs[i];
    if (i > 0) out += '\n';
    std::int64_t mins = waited_ms(s, g) / 60'000;
    if (mins > 0) {
      std::snprintf(buf, sizeof buf, "goroutine %" PRIu64 " [%s, %" PRId64 " minutes]:\n", g.id, state_text(g), mins);
    } else {
      std::snprintf(buf, sizeof buf, "goroutine %" PRIu64 " [%s]:\n", g.id, state_text(g));
    }
    out += buf;
    if (g.status == GStatus::running && !g.is_caller) {
      out += "\tgoroutine running on other thread; stack unavailable\n";
    } else if (g.stack_elided) {
      out += "\t...stack not copied: the dump's copy budget ran out...\n";
    } else {
      Frames f = frames_of(s, g, cache, have_unwinder);
      for (const PcText* t : f.pcs) out += t->text;
      if (f.elided) out += "...additional frames elided...\n";
    }
    out += "created by ";
    out += g.where.function_name();
    std::snprintf(buf, sizeof buf, "\n\t%s:%u\n", g.where.file_name(), static_cast<unsigned>(g.where.line()));
    out += buf;
  }
  if (!have_unwinder) out += "\n(no frames: libdw.so.1, Debian's libdw1, was not found)\n";
  return out;
}

std::string render_json(Snapshot& s) {
  std::unordered_map<std::uintptr_t, PcText> cache;
  std::string out;
  reserve_populated(out, s.gs.size() * 1280 + 4096);
  out += "{\"goroutines\":[";
  bool have_unwinder = true;
  char buf[160];
  for (std::size_t i = 0; i < s.gs.size(); ++i) {
    GSnap& g = s.gs[i];
    if (i > 0) out += ',';
    std::snprintf(buf, sizeof buf, "\n{\"id\":%" PRIu64 ",\"parent_id\":%" PRIu64 ",\"state\":", g.id, g.parent_id);
    out += buf;
    json_str(out, state_text(g));
    out += ",\"wait_reason\":";
    json_str(out, g.status == GStatus::waiting ? state_text(g) : "");
    std::snprintf(buf, sizeof buf, ",\"waiting_ms\":%" PRId64 ",\"created_by\":{\"function\":", waited_ms(s, g));
    out += buf;
    json_str(out, g.where.function_name());
    out += ",\"file\":";
    json_str(out, g.where.file_name());
    std::snprintf(buf, sizeof buf, ",\"line\":%u}", static_cast<unsigned>(g.where.line()));
    out += buf;
    if (g.wait_obj != nullptr) {
      out += ",\"wait_object\":{\"kind\":";
      json_str(out, wait_kind(g));
      std::snprintf(buf, sizeof buf, ",\"address\":\"%p\"", g.wait_obj);
      out += buf;
      if (g.chan_cap >= 0) {
        std::snprintf(buf, sizeof buf, ",\"len\":%ld,\"cap\":%ld", g.chan_len, g.chan_cap);
        out += buf;
      }
      out += '}';
    }
    out += ",\"frames\":[";
    if (!(g.status == GStatus::running && !g.is_caller) && !g.stack_elided) {
      Frames f = frames_of(s, g, cache, have_unwinder);
      std::size_t mark = out.size();
      for (const PcText* t : f.pcs) out += t->json;
      if (out.size() > mark && out.back() == ',') out.pop_back();
    }
    out += "]}";
  }
  out += "\n]}\n";
  return out;
}

std::string dump(bool json) {
  Snapshot s;
  take_snapshot(s, true);
  for (GSnap& g : s.gs) {
    if (g.is_caller) unwind_self(g, 0);  // the dump's own frames are dropped by name
  }
  std::string out;
  off_processor([&] { out = json ? render_json(s) : render_text(s); });
  return out;
}

}  // namespace goro::rt::diag

namespace goro {

std::string goroutine_dump() {
  arch::SanRuntimeScope san;
  return rt::diag::dump(false);
}

std::string goroutine_dump_json() {
  arch::SanRuntimeScope san;
  return rt::diag::dump(true);
}

std::vector<GoroutineInfo> goroutines() {
  arch::SanRuntimeScope san;
  rt::diag::Snapshot s;
  rt::diag::take_snapshot(s, false);
  std::vector<GoroutineInfo> out;
  out.reserve(s.gs.size());
  for (const rt::diag::GSnap& g : s.gs) {
    GoroutineInfo i;
    i.id = g.id;
    i.parent_id = g.parent_id;
    i.state = rt::diag::state_text(g);
    if (g.status == rt::GStatus::waiting || g.wait_reason != nullptr) {
      i.wait_reason = i.state;
      i.waiting_for = std::chrono::milliseconds(rt::diag::waited_ms(s, g));
    }
    i.spawn_site = std::string(g.where.file_name()) + ":" + std::to_string(g.where.line());
    i.spawn_function = g.where.function_name();
    out.push_back(std::move(i));
  }
  return out;
}

namespace {
struct StateCount {
  std::size_t running = 0, runnable = 0, waiting = 0;
};
}  // namespace

RuntimeStats runtime_stats() {
  arch::SanRuntimeScope san;
  rt::ensure_started();
  RuntimeStats r;
  StateCount c;
  rt::for_each_g(
      [](rt::G* g, void* arg) {
        if (g->is_thread) return;
        auto& c = *static_cast<StateCount*>(arg);
        switch (g->status.load(std::memory_order_relaxed)) {
          case rt::GStatus::running: ++c.running; break;
          case rt::GStatus::runnable: ++c.runnable; break;
          case rt::GStatus::waiting: ++c.waiting; break;
          default: break;
        }
      },
      &c);
  rt::SchedCounts sc = rt::sched_counts();
  r.goroutines = num_goroutines();
  r.running = c.running;
  r.runnable = c.runnable;
  r.waiting = c.waiting;
  r.procs = sc.procs;
  r.spawned_total = sc.spawned;
  rt::StackStats st = rt::stack_stats(true);
  r.stack_bytes_reserved = st.reserved_bytes;
  r.stack_bytes_committed = st.resident_bytes;
  r.timers = rt::timers_pending();
  r.io_waiters = static_cast<std::size_t>(rt::netpoll_waiters());
  r.blocking_threads = static_cast<std::size_t>(rt::blocking_threads());
  r.blocking_running = static_cast<std::size_t>(sc.blocking_running);
  r.handoffs = sc.handoffs;
  r.threads = static_cast<std::size_t>(sc.started) + r.blocking_threads + static_cast<std::size_t>(rt::diag::monitor_threads());
  return r;
}

}  // namespace goro
