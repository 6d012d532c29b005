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
  // call frame information, for the fast unwinder
  decltype(&dwfl_module_eh_cfi) module_eh_cfi;
  decltype(&dwfl_module_dwarf_cfi) module_dwarf_cfi;
  decltype(&dwarf_cfi_addrframe) cfi_addrframe;
  decltype(&dwarf_frame_info) frame_info;
  decltype(&dwarf_frame_cfa) frame_cfa;
  decltype(&dwarf_frame_register) frame_register;
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
  get(l.module_eh_cfi, "dwfl_module_eh_cfi");
  get(l.module_dwarf_cfi, "dwfl_module_dwarf_cfi");
  get(l.cfi_addrframe, "dwarf_cfi_addrframe");
  get(l.frame_info, "dwarf_frame_info");
  get(l.frame_cfa, "dwarf_frame_cfa");
  get(l.frame_register, "dwarf_frame_register");
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
  arch::SavedRegs r;
  arch::saved_regs(g_cur.snap->bytes.data() + g_cur.g->copy_off, g_cur.g->sp, r);
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

#if GORO_HAVE_LIBDW
namespace {

// The fast unwinder. Almost every frame of compiled C++ has call frame
// information of the simplest kind: the CFA is a register plus an offset,
// and each callee-saved register and the return address are either
// unchanged or saved at CFA + offset. Those rules are read from libdw once
// per pc and cached, so unwinding a goroutine is a few table lookups and
// reads of its stack copy per frame (libdw's own unwinder costs ~10 us per
// goroutine: 1 s for a dump of 100,000). A pc whose rules are anything else
// (a DWARF expression, a signal frame) sends that goroutine to libdw's
// unwinder.
constexpr int kRegs = 33;  // DWARF numbers covered: x86-64 0-16, AArch64 0-32

struct RegRule {
  enum Kind : std::uint8_t { undefined, same, at_cfa, val_cfa } kind = undefined;
  std::int64_t off = 0;
};

struct FrameRule {
  bool simple = false;
  int cfa_reg = -1;
  std::int64_t cfa_off = 0;
  int ra_reg = -1;
  RegRule regs[kRegs];
};

#if defined(__x86_64__)
constexpr int kSpReg = 7;
#elif defined(__aarch64__)
constexpr int kSpReg = 31;
#endif

// Reads a register rule as CFA + k (location or value); false if it is not
// of that form.
bool simple_rule(Dwarf_Op* ops, std::size_t nops, RegRule& r) {
  bool have_cfa = false;
  std::int64_t k = 0;
  std::int64_t konst = 0;
  bool have_konst = false;
  r.kind = RegRule::at_cfa;
  for (std::size_t i = 0; i < nops; ++i) {
    const unsigned atom = ops[i].atom;
    if (atom == DW_OP_call_frame_cfa) {
      if (have_cfa) return false;
      have_cfa = true;
    } else if (atom == DW_OP_plus_uconst && have_cfa) {
      k += static_cast<std::int64_t>(ops[i].number);
    } else if (atom == DW_OP_consts || atom == DW_OP_constu || (atom >= DW_OP_lit0 && atom <= DW_OP_lit31)) {
      if (have_konst) return false;
      konst = atom == DW_OP_consts ? static_cast<std::int64_t>(ops[i].number)
              : atom == DW_OP_constu ? static_cast<std::int64_t>(ops[i].number)
                                     : static_cast<std::int64_t>(atom - DW_OP_lit0);
      have_konst = true;
    } else if ((atom == DW_OP_plus || atom == DW_OP_minus) && have_cfa && have_konst) {
      k += atom == DW_OP_plus ? konst : -konst;
      have_konst = false;
    } else if (atom == DW_OP_stack_value && i + 1 == nops) {
      r.kind = RegRule::val_cfa;
    } else {
      return false;
    }
  }
  if (!have_cfa || have_konst) return false;
  r.off = k;
  return true;
}

FrameRule compute_rule(std::uintptr_t at) {
  Libdw& l = libdw();
  FrameRule fr;
  Dwfl_Module* mod = l.addrmodule(g_dwfl, at);
  if (mod == nullptr) return fr;
  Dwarf_Addr bias = 0;
  Dwarf_CFI* cfi = l.module_eh_cfi(mod, &bias);
  Dwarf_Frame* frame = nullptr;
  if (cfi == nullptr || l.cfi_addrframe(cfi, at - bias, &frame) != 0) {
    cfi = l.module_dwarf_cfi(mod, &bias);
    if (cfi == nullptr || l.cfi_addrframe(cfi, at - bias, &frame) != 0) return fr;
  }
  bool signal = false;
  fr.ra_reg = l.frame_info(frame, nullptr, nullptr, &signal);
  Dwarf_Op* ops = nullptr;
  std::size_t nops = 0;
  bool ok = !signal && fr.ra_reg >= 0 && fr.ra_reg < kRegs && l.frame_cfa(frame, &ops, &nops) == 0 && nops == 1;
  if (ok && ops[0].atom >= DW_OP_breg0 && ops[0].atom <= DW_OP_breg31) {
    fr.cfa_reg = ops[0].atom - DW_OP_breg0;
    fr.cfa_off = static_cast<std::int64_t>(ops[0].number);
  } else if (ok && ops[0].atom == DW_OP_bregx && ops[0].number < kRegs) {
    fr.cfa_reg = static_cast<int>(ops[0].number);
    fr.cfa_off = static_cast<std::int64_t>(ops[0].number2);
  } else {
    ok = false;
  }
  if (ok) {
    for (int r = 0; r < kRegs && ok; ++r) {
      Dwarf_Op mem[3];
      Dwarf_Op* rops = nullptr;
      std::size_t rn = 0;
      if (l.frame_register(frame, r, mem, &rops, &rn) != 0) {
        fr.regs[r].kind = RegRule::undefined;  // not a register of this architecture
      } else if (rn == 0) {
        fr.regs[r].kind = rops == nullptr ? RegRule::same : RegRule::undefined;
      } else {
        ok = simple_rule(rops, rn, fr.regs[r]);
      }
    }
  }
  std::free(frame);
  fr.simple = ok;
  return fr;
}

std::unordered_map<std::uintptr_t, FrameRule>& rule_cache() {
  static auto* m = new std::unordered_map<std::uintptr_t, FrameRule>;
  return *m;
}

// Returns false if some frame needs libdw's unwinder.
bool fast_unwind(const Snapshot& s, GSnap& g) {
  const unsigned char* copy = s.bytes.data() + g.copy_off;
  auto read = [&](std::uint64_t addr, std::uint64_t& out) {
    if (addr < g.sp || addr + 8 > g.sp + g.copy_len || (addr & 7) != 0) return false;
    std::memcpy(&out, copy + (addr - g.sp), 8);
    return true;
  };
  std::uint64_t regs[kRegs] = {};
  bool known[kRegs] = {};
  arch::SavedRegs sr;
  arch::saved_regs(copy, g.sp, sr);
  for (int i = 0; i < sr.n; ++i) {
    regs[sr.num[i]] = sr.val[i];
    known[sr.num[i]] = true;
  }
  std::uint64_t pc = sr.pc;
  auto& cache = rule_cache();
  while (pc != 0 && g.pcs.size() < static_cast<std::size_t>(kMaxFrames)) {
    g.pcs.push_back(pc);
    const std::uintptr_t at = pc - 1;  // every pc here is a return address
    auto it = cache.find(at);
    if (it == cache.end()) it = cache.emplace(at, compute_rule(at)).first;
    const FrameRule& fr = it->second;
    if (!fr.simple) return false;
    if (!known[fr.cfa_reg]) return true;  // the chain ends here
    const std::uint64_t cfa = regs[fr.cfa_reg] + static_cast<std::uint64_t>(fr.cfa_off);
    std::uint64_t next[kRegs];
    bool next_known[kRegs];
    for (int r = 0; r < kRegs; ++r) {
      const RegRule& rr = fr.regs[r];
      switch (rr.kind) {
        case RegRule::undefined: next_known[r] = false; break;
        case RegRule::same: next[r] = regs[r]; next_known[r] = known[r]; break;
        case RegRule::at_cfa: next_known[r] = read(cfa + static_cast<std::uint64_t>(rr.off), next[r]); break;
        case RegRule::val_cfa: next[r] = cfa + static_cast<std::uint64_t>(rr.off); next_known[r] = true; break;
      }
    }
    if (!next_known[fr.ra_reg]) return true;  // bottom of the stack (the trampoline's undefined rip)
    pc = next[fr.ra_reg];
    next[kSpReg] = cfa;  // the caller's stack pointer is the CFA, by definition
    next_known[kSpReg] = true;
    std::memcpy(regs, next, sizeof regs);
    std::memcpy(known, next_known, sizeof known);
  }
  return true;
}

}  // namespace
#endif

bool unwind(const Snapshot& s, GSnap& g) {
#if GORO_HAVE_LIBDW
  std::lock_guard<std::mutex> lk(g_mu);
  if (!dwfl_ready(false)) return false;
  if (g.copy_len == 0) return true;
  if (fast_unwind(s, g)) return true;
  g.pcs.clear();
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
