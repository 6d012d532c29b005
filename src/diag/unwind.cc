// src/diag/unwind.cc: unwinding copied goroutine stacks and naming their
// frames, with elfutils' libdw (docs/ARCHITECTURE.md, "Goroutine dumps",
// says why libdw).
//
// libdw is loaded with dlopen the first time a dump needs it, so a goro
// program neither links it nor pays for it until it asks for a dump; without
// it (libdw1 not installed, or goro built without its header) a dump still
// has every goroutine's header and spawn site, with no frames.
//
// One Dwfl for the process, built on first use from /proc/self/maps and
// rebuilt when a pc falls in no module it knows (a library loaded since).
// It is "attached" with callbacks that present the goroutine being unwound
// as its only thread: its initial registers are those its context switch
// saved, and memory reads are served from the stack copy only (an address
// outside the copy fails), so a garbled stack cannot make the unwinder read
// anything it should not. All of it is serialized by one mutex.
#include <cxxabi.h>
#include <dlfcn.h>
#include <unistd.h>
#include <unwind.h>

#include <cstdlib>
#include <cstring>
#include <mutex>
#include <unordered_map>

#include "diag/diag.h"

#if __has_include(<elfutils/libdwfl.h>)
#include <dwarf.h>
#include <elfutils/libdw.h>
#include <elfutils/libdwfl.h>
#define GORO_HAVE_LIBDW 1
#else
#define GORO_HAVE_LIBDW 0
#endif

namespace goro::rt::diag {

namespace {

std::mutex g_mu;  // everything below

std::string demangle(const char* name) {
  if (name == nullptr) return "?";
  int status = 0;
  char* d = abi::__cxa_demangle(name, nullptr, nullptr, &status);
  if (status == 0 && d != nullptr) {
    std::string r(d);
    std::free(d);
    return r;
  }
  return name;
}

#if GORO_HAVE_LIBDW
struct Libdw {
  bool ok = false;
  decltype(&dwfl_begin) begin;
  decltype(&dwfl_end) end;
  decltype(&dwfl_report_begin) report_begin;
  decltype(&dwfl_report_end) report_end;
  decltype(&dwfl_linux_proc_report) proc_report;
  decltype(&dwfl_linux_proc_find_elf) proc_find_elf;
  decltype(&dwfl_standard_find_debuginfo) find_debuginfo;
  decltype(&dwfl_attach_state) attach_state;
  decltype(&dwfl_getthread_frames) getthread_frames;
  decltype(&dwfl_thread_state_registers) state_registers;
  decltype(&dwfl_thread_state_register_pc) state_register_pc;
  decltype(&dwfl_frame_pc) frame_pc;
  decltype(&dwfl_addrmodule) addrmodule;
  decltype(&dwfl_module_addrinfo) module_addrinfo;
  decltype(&dwfl_module_getsrc) module_getsrc;
  decltype(&dwfl_lineinfo) lineinfo;
  decltype(&dwfl_module_info) module_info;
  // inlined frames
  decltype(&dwfl_module_addrdie) module_addrdie;
  decltype(&dwarf_getscopes) getscopes;
  decltype(&dwarf_getscopes_die) getscopes_die;
  decltype(&dwarf_tag) tag;
  decltype(&dwarf_attr_integrate) attr_integrate;
  decltype(&dwarf_formstring) formstring;
  decltype(&dwarf_formudata) formudata;
  decltype(&dwarf_getsrcfiles) getsrcfiles;
  decltype(&dwarf_filesrc) filesrc;
};

Libdw load_libdw() {
  Libdw l;
  void* h = dlopen("libdw.so.1", RTLD_NOW | RTLD_LOCAL);
  if (h == nullptr) return l;
  bool all = true;
  auto get = [&](auto& fn, const char* name) {
    fn = reinterpret_cast<std::remove_reference_t<decltype(fn)>>(dlsym(h, name));
    if (fn == nullptr) all = false;
  };
  get(l.begin, "dwfl_begin");
  get(l.end, "dwfl_end");
  get(l.report_begin, "dwfl_report_begin");
  get(l.report_end, "dwfl_report_end");
  get(l.proc_report, "dwfl_linux_proc_report");
  get(l.proc_find_elf, "dwfl_linux_proc_find_elf");
  get(l.find_debuginfo, "dwfl_standard_find_debuginfo");
  get(l.attach_state, "dwfl_attach_state");
  get(l.getthread_frames, "dwfl_getthread_frames");
  get(l.state_registers, "dwfl_thread_state_registers");
  get(l.state_register_pc, "dwfl_thread_state_register_pc");
  get(l.frame_pc, "dwfl_frame_pc");
  get(l.addrmodule, "dwfl_addrmodule");
  get(l.module_addrinfo, "dwfl_module_addrinfo");
  get(l.module_getsrc, "dwfl_module_getsrc");
  get(l.lineinfo, "dwfl_lineinfo");
  get(l.module_info, "dwfl_module_info");
  get(l.module_addrdie, "dwfl_module_addrdie");
  get(l.getscopes, "dwarf_getscopes");
  get(l.getscopes_die, "dwarf_getscopes_die");
  get(l.tag, "dwarf_tag");
  get(l.attr_integrate, "dwarf_attr_integrate");
  get(l.formstring, "dwarf_formstring");
  get(l.formudata, "dwarf_formudata");
  get(l.getsrcfiles, "dwarf_getsrcfiles");
  get(l.filesrc, "dwarf_filesrc");
  l.ok = all;
  return l;
}

Libdw& libdw() {
  static Libdw* l = new Libdw(load_libdw());
  return *l;
}

// The goroutine being unwound (g_mu held).
struct Current {
  const Snapshot* snap = nullptr;
  GSnap* g = nullptr;
};
Current g_cur;

bool cb_memory_read(Dwfl*, Dwarf_Addr addr, Dwarf_Word* result, void*) {
  const GSnap* g = g_cur.g;
  if (g == nullptr || addr < g->sp || addr + 8 > g->sp + g->copy_len || (addr & 7) != 0) return false;
  std::memcpy(result, g_cur.snap->bytes.data() + g->copy_off + (addr - g->sp), 8);
  return true;
}

pid_t cb_next_thread(Dwfl*, void*, void**) { return 0; }

bool cb_get_thread(Dwfl*, pid_t, void* dwfl_arg, void** thread_arg) {
  *thread_arg = dwfl_arg;
  return true;
}

bool cb_set_initial_registers(Dwfl_Thread* thread, void*) {
  Libdw& l = libdw();
  const arch::SavedRegs& r = g_cur.g->regs;
  for (int i = 0; i < r.n; ++i) {
    Dwarf_Word v = r.val[i];
    if (!l.state_registers(thread, r.num[i], 1, &v)) return false;
  }
  l.state_register_pc(thread, r.pc);
  return true;
}

const Dwfl_Thread_Callbacks g_thread_callbacks = {
    &cb_next_thread, &cb_get_thread, &cb_memory_read, &cb_set_initial_registers, nullptr, nullptr};

char* g_debuginfo_path = nullptr;
Dwfl_Callbacks g_callbacks;
Dwfl* g_dwfl = nullptr;

// (Re)builds the process's module list (g_mu held).
bool dwfl_ready(bool rebuild) {
  Libdw& l = libdw();
  if (!l.ok) return false;
  if (g_dwfl != nullptr && !rebuild) return true;
  if (g_dwfl != nullptr) l.end(g_dwfl);
  g_callbacks = Dwfl_Callbacks{};
  g_callbacks.find_elf = l.proc_find_elf;
  g_callbacks.find_debuginfo = l.find_debuginfo;
  g_callbacks.debuginfo_path = &g_debuginfo_path;
  g_dwfl = l.begin(&g_callbacks);
  if (g_dwfl == nullptr) return false;
  l.report_begin(g_dwfl);
  if (l.proc_report(g_dwfl, getpid()) != 0 || l.report_end(g_dwfl, nullptr, nullptr) != 0 ||
      !l.attach_state(g_dwfl, nullptr, getpid(), &g_thread_callbacks, nullptr)) {
    l.end(g_dwfl);
    g_dwfl = nullptr;
    return false;
  }
  return true;
}

int cb_frame(Dwfl_Frame* state, void*) {
  Dwarf_Addr pc = 0;
  bool activation = false;
  if (!libdw().frame_pc(state, &pc, &activation)) return DWARF_CB_ABORT;
  if (pc == 0) return DWARF_CB_ABORT;
  // Every frame of a switched-out goroutine is a return address, the first
  // one included (the switch's return into the code that parked).
  g_cur.g->pcs.push_back(static_cast<std::uintptr_t>(pc));
  return g_cur.g->pcs.size() >= static_cast<std::size_t>(kMaxFrames) ? DWARF_CB_ABORT : DWARF_CB_OK;
}
#endif  // GORO_HAVE_LIBDW

}  // namespace

bool unwind(const Snapshot& s, GSnap& g) {
#if GORO_HAVE_LIBDW
  std::lock_guard<std::mutex> lk(g_mu);
  if (!dwfl_ready(false)) return false;
  if (g.copy_len == 0) return true;
  g_cur = Current{&s, &g};
  libdw().getthread_frames(g_dwfl, 1, &cb_frame, nullptr);
  g_cur = Current{};
  return true;
#else
  (void)s;
  (void)g;
  return false;
#endif
}

namespace {
struct SelfWalk {
  GSnap* g;
  int skip;
};
_Unwind_Reason_Code self_frame(_Unwind_Context* ctx, void* arg) {
  auto* w = static_cast<SelfWalk*>(arg);
  std::uintptr_t pc = _Unwind_GetIP(ctx);
  if (pc == 0) return _URC_END_OF_STACK;
  if (w->skip > 0) {
    --w->skip;
    return _URC_NO_REASON;
  }
  w->g->pcs.push_back(pc);
  return w->g->pcs.size() >= static_cast<std::size_t>(kMaxFrames) ? _URC_END_OF_STACK : _URC_NO_REASON;
}
}  // namespace

void unwind_self(GSnap& g, int skip) {
  SelfWalk w{&g, skip + 1};  // + this function
  _Unwind_Backtrace(&self_frame, &w);
}

#if GORO_HAVE_LIBDW
namespace {
// The name of a subprogram or inlined-subroutine DIE: its linkage name
// demangled (the full C++ name), else its plain name.
std::string die_name(Libdw& l, Dwarf_Die* die) {
  Dwarf_Attribute a;
  if (l.attr_integrate(die, DW_AT_linkage_name, &a) != nullptr || l.attr_integrate(die, DW_AT_MIPS_linkage_name, &a) != nullptr) {
    if (const char* n = l.formstring(&a)) return demangle(n);
  }
  if (l.attr_integrate(die, DW_AT_name, &a) != nullptr) {
    if (const char* n = l.formstring(&a)) return n;
  }
  return "?";
}

// Frames inlined at `at` (innermost first) from the debug info, each with
// the source position of the code it was inlined into; the last entry is
// the real function. Empty without debug info.
void inline_chain(Libdw& l, Dwfl_Module* mod, std::uintptr_t at, const Symbol& base, std::vector<Symbol>& out) {
  Dwarf_Addr bias = 0;
  Dwarf_Die* cu = l.module_addrdie(mod, at, &bias);
  if (cu == nullptr) return;
  Dwarf_Die* scopes = nullptr;
  int n = l.getscopes(cu, at - bias, &scopes);
  if (n <= 0) return;
  // getscopes follows an inlined function into its abstract definition's
  // scopes; the concrete nesting (what was inlined into what) comes from
  // getscopes_die on the innermost function DIE.
  int k = 0;
  while (k < n && l.tag(&scopes[k]) != DW_TAG_inlined_subroutine && l.tag(&scopes[k]) != DW_TAG_subprogram) ++k;
  if (k == n) {
    std::free(scopes);
    return;
  }
  Dwarf_Die inner = scopes[k];
  std::free(scopes);
  scopes = nullptr;
  n = l.getscopes_die(&inner, &scopes);
  if (n <= 0) return;
  Dwarf_Files* files = nullptr;
  std::size_t nfiles = 0;
  if (l.getsrcfiles(cu, &files, &nfiles) != 0) files = nullptr;
  std::string file = base.file;
  int line = base.line;
  for (int i = 0; i < n; ++i) {
    int tag = l.tag(&scopes[i]);
    if (tag != DW_TAG_inlined_subroutine && tag != DW_TAG_subprogram) continue;
    Symbol s = base;
    s.function = die_name(l, &scopes[i]);
    s.file = file;
    s.line = line;
    out.push_back(s);
    if (tag == DW_TAG_subprogram) break;
    // The next frame out is where this one was inlined.
    Dwarf_Attribute a;
    Dwarf_Word cf = 0, cl = 0;
    if (l.attr_integrate(&scopes[i], DW_AT_call_file, &a) != nullptr && l.formudata(&a, &cf) == 0 &&
        files != nullptr && cf < nfiles) {
      const char* f = l.filesrc(files, cf, nullptr, nullptr);
      file = f != nullptr ? f : "";
    }
    if (l.attr_integrate(&scopes[i], DW_AT_call_line, &a) != nullptr && l.formudata(&a, &cl) == 0) {
      line = static_cast<int>(cl);
    }
  }
  std::free(scopes);
  if (!out.empty()) out.back().function = base.function;  // the symbol table's name for the real function
}
}  // namespace
#endif

std::vector<Symbol> symbolize(std::uintptr_t pc) {
  static auto* cache = new std::unordered_map<std::uintptr_t, std::vector<Symbol>>;
  std::lock_guard<std::mutex> lk(g_mu);
  if (auto it = cache->find(pc); it != cache->end()) return it->second;
  Symbol sym;
  sym.function = "?";
  std::vector<Symbol> out;
  const std::uintptr_t at = pc - 1;  // inside the call instruction
#if GORO_HAVE_LIBDW
  if (dwfl_ready(false)) {
    Libdw& l = libdw();
    Dwfl_Module* mod = l.addrmodule(g_dwfl, at);
    if (mod == nullptr && dwfl_ready(true)) mod = l.addrmodule(g_dwfl, at);
    if (mod != nullptr) {
      Dwarf_Addr start = 0;
      const char* mainfile = nullptr;
      const char* name = l.module_info(mod, nullptr, &start, nullptr, nullptr, nullptr, &mainfile, nullptr);
      sym.module = mainfile != nullptr ? mainfile : (name != nullptr ? name : "");
      sym.module_offset = pc - start;
      GElf_Off off = 0;
      GElf_Sym es;
      if (const char* fn = l.module_addrinfo(mod, at, &off, &es, nullptr, nullptr, nullptr)) {
        sym.function = demangle(fn);
        sym.offset = off + 1;
      }
      if (Dwfl_Line* line = l.module_getsrc(mod, at)) {
        int lineno = 0;
        if (const char* file = l.lineinfo(line, nullptr, &lineno, nullptr, nullptr, nullptr)) {
          sym.file = file;
          sym.line = lineno;
        }
      }
      if (!sym.file.empty()) inline_chain(l, mod, at, sym, out);
    }
  }
#endif
  if (sym.function == "?" && sym.module.empty()) {
    Dl_info info;
    if (dladdr(reinterpret_cast<void*>(at), &info) != 0) {
      if (info.dli_fname != nullptr) sym.module = info.dli_fname;
      sym.module_offset = pc - reinterpret_cast<std::uintptr_t>(info.dli_fbase);
      if (info.dli_sname != nullptr) {
        sym.function = demangle(info.dli_sname);
        sym.offset = pc - reinterpret_cast<std::uintptr_t>(info.dli_saddr);
      }
    }
  }
  if (out.empty()) out.push_back(sym);
  if (cache->size() < 1'000'000) cache->emplace(pc, out);
  return out;
}

}  // namespace goro::rt::diag
