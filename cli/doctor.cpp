// `faultline doctor -- CMD` and the "never silent" hints of `run`: the ELF file of a program
// read by hand (<elf.h>, every offset bounds-checked, the file mapped read-only), turned into
// what each fault family can and cannot reach through the preload. Only the executable and,
// one level down, the libraries it names (DT_NEEDED) are read: enough to say "imports come
// through libcurl.so.4" without resolving the whole dependency graph.
#include "cli/doctor.h"

#include <elf.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <string_view>

#include "calls/calls.h"
#include "cli/cli.h"
#include "cli/output.h"
#include "controller/elf_read.h"
#include "controller/launcher.h"

namespace faultline::cli {
namespace {

std::string machine_name(std::uint16_t machine) {
  switch (machine) {
    case EM_X86_64:
      return "x86-64";
    case EM_386:
      return "i386";
    case EM_AARCH64:
      return "aarch64";
    case EM_ARM:
      return "arm";
    case EM_RISCV:
      return "riscv";
    case EM_PPC64:
      return "ppc64";
    case EM_S390:
      return "s390";
    default:
      return fmt::format("machine {}", machine);
  }
}

#if defined(__x86_64__)
constexpr std::uint16_t kHostMachine = EM_X86_64;
#elif defined(__aarch64__)
constexpr std::uint16_t kHostMachine = EM_AARCH64;
#else
constexpr std::uint16_t kHostMachine = 0;  // unknown: not compared
#endif

// Where a needed library is looked for: the usual system directories, no ld.so.cache parsing
// (the answer is a hint, and the libraries that matter live there).
std::optional<std::string> find_library(const std::string& soname) {
  if (soname.find('/') != std::string::npos) return soname;
  static constexpr const char* kDirs[] = {"/lib/x86_64-linux-gnu",
                                          "/usr/lib/x86_64-linux-gnu",
                                          "/lib/aarch64-linux-gnu",
                                          "/usr/lib/aarch64-linux-gnu",
                                          "/lib64",
                                          "/usr/lib64",
                                          "/lib",
                                          "/usr/lib",
                                          "/usr/local/lib"};
  for (const char* dir : kDirs) {
    const std::string candidate = fmt::format("{}/{}", dir, soname);
    if (access(candidate.c_str(), R_OK) == 0) return candidate;
  }
  return std::nullopt;
}

bool is_libc_itself(std::string_view soname) {
  return soname.starts_with("libc.so") || soname.starts_with("ld-linux") ||
         soname.starts_with("libc.musl") || soname.starts_with("ld-musl");
}

constexpr std::string_view kAllocators[] = {"jemalloc", "tcmalloc", "mimalloc", "hoard",
                                            "tbbmalloc"};

// Allocators in LD_PRELOAD ahead of libfaultline.so. `faultline run` puts the shim first, so
// they matter only when the shim is already in the list (plain LD_PRELOAD use).
std::vector<std::string> allocators_ahead_of_shim() {
  const char* env = std::getenv("LD_PRELOAD");
  if (env == nullptr) return {};
  std::vector<std::string> ahead;
  std::string_view rest = env;
  while (!rest.empty()) {
    const std::size_t cut = std::min(rest.find_first_of(": "), rest.size());
    const std::string_view entry = rest.substr(0, cut);
    rest = cut < rest.size() ? rest.substr(cut + 1) : std::string_view{};
    if (entry.find("libfaultline") != std::string_view::npos) return ahead;
    for (std::string_view a : kAllocators)
      if (entry.find(a) != std::string_view::npos) ahead.emplace_back(entry);
  }
  return {};  // the shim is not in it: `faultline run` will put it first
}

bool has_prefix_import(const std::set<std::string>& imports, std::string_view prefix) {
  const auto it = imports.lower_bound(std::string(prefix));
  return it != imports.end() && std::string_view(*it).starts_with(prefix);
}

bool needs(const ProgramFacts& facts, std::string_view part) {
  return std::any_of(facts.needed.begin(), facts.needed.end(),
                     [&](const std::string& n) { return n.find(part) != std::string::npos; });
}

// ---- per family ------------------------------------------------------------------------------

constexpr Family kFamilies[] = {kFamWrite, kFamFsync, kFamRead,   kFamOpen,
                                kFamNet,   kFamDns,   kFamMemory, kFamFs};

struct FamilyReach {
  Family family = kFamWrite;
  bool reachable = false;
  std::vector<std::string> imports;  // calls of the family the executable imports
  std::vector<std::string> through;  // needed libraries that import some
  std::string note;                  // why not, or a caveat
};

bool imports_call(const ProgramFacts& facts, std::string_view call) {
  if (facts.imports.contains(std::string(call))) return true;
  for (const auto& [lib, imports] : facts.library_imports)
    if (imports.contains(std::string(call))) return true;
  return false;
}

// `faultline run`'s auto choice (run.cpp): seccomp for a static or Go program, which the
// seccomp backend reaches unless it is set-id or built for another machine.
bool seccomp_reaches(const ProgramFacts& facts) {
  // The filter knows x86-64's system calls only (policy/seccomp_filter.cpp).
  return (facts.is_static || facts.go) && !facts.setuid && !facts.setgid &&
         kHostMachine == EM_X86_64 && facts.machine == machine_name(EM_X86_64);
}

constexpr std::uint32_t kSeccompFamilies =
    kFamWrite | kFamFsync | kFamRead | kFamOpen | kFamNet | kFamFs;

FamilyReach reach_of(const ProgramFacts& facts, Family family) {
  FamilyReach r;
  r.family = family;
  if (seccomp_reaches(facts)) {
    r.reachable = (family & kSeccompFamilies) != 0;
    r.note = r.reachable ? "its system calls, through the seccomp backend"
             : family == kFamDns
                 ? "lookups are no system call: use @net with addr = \"*:53\""
                 : "allocations are no system call: the seccomp backend cannot reach them";
    return r;
  }
  for (const CallInfo& call : all_calls()) {
    if (call.family != family) continue;
    if (facts.imports.contains(std::string(call.name))) r.imports.emplace_back(call.name);
    for (const auto& [lib, imports] : facts.library_imports)
      if (imports.contains(std::string(call.name)) &&
          std::find(r.through.begin(), r.through.end(), lib) == r.through.end())
        r.through.push_back(lib);
  }
  if (!facts.preload_reaches) {
    r.note = "the preload reaches nothing of this program (below)";
    return r;
  }
  if (r.imports.empty() && r.through.empty()) {
    r.note =
        "no call of it imported: a fault sees nothing (unless a library loaded later calls it)";
    return r;
  }
  r.reachable = true;
  if (family == kFamMemory && facts.own_malloc) {
    r.reachable = false;
    r.note = "the executable has its own malloc: its allocations never reach the shim";
  } else if (family == kFamMemory && !facts.preloaded_allocators.empty()) {
    r.reachable = false;
    r.note = fmt::format("{} is preloaded ahead of the shim and answers malloc first",
                         facts.preloaded_allocators.front());
  } else if (family == kFamDns && !facts.own_resolver.empty()) {
    r.note = fmt::format(
        "it also has its own resolver ({}): its lookups pass unseen; use @net "
        "with addr = \"*:53\"",
        facts.own_resolver);
  } else if ((family == kFamRead || family == kFamWrite || family == kFamNet) &&
             !facts.io_uring.empty()) {
    r.note = fmt::format(
        "it {}: I/O submitted through io_uring passes unseen unless [target] io_uring = "
        "\"deny\"",
        facts.io_uring);
  } else if (r.imports.empty()) {
    r.note = fmt::format("imports come through {}", fmt::join(r.through, ", "));
  }
  return r;
}

std::string auto_backend(const ProgramFacts& facts) {
  if (seccomp_reaches(facts)) return "seccomp";
  return facts.preload_reaches ? "preload" : "none: " + facts.refusal;
}

}  // namespace

ProgramFacts inspect_program(const std::string& path) {
  ProgramFacts facts;
  facts.path = path;
  facts.name = path.substr(path.rfind('/') + 1);
  const auto elf = read_elf_file(path, &facts.bits);
  if (!elf)
    fail(kExitUsage, fmt::format("{}: not an ELF executable (a script? run doctor on its "
                                 "interpreter)",
                                 path));
  facts.machine = machine_name(elf->machine);
  facts.is_static = !elf->has_interp;
  facts.interpreter = elf->interpreter;
  facts.musl = elf->interpreter.find("musl") != std::string::npos;
  struct stat st;
  if (stat(path.c_str(), &st) == 0) {
    facts.setuid = (st.st_mode & S_ISUID) != 0;
    facts.setgid = (st.st_mode & S_ISGID) != 0 && (st.st_mode & S_IXGRP) != 0;
  }
  facts.go = elf->go_note || elf->go_symbols;
  facts.go_evidence = elf->go_note ? "Go build note" : elf->go_symbols ? "Go runtime symbols" : "";
  facts.needed = elf->needed;
  facts.imports = elf->imports;
  facts.own_malloc = elf->defines_malloc && !facts.is_static;
  constexpr std::size_t kMaxLibraries = 64;
  for (const std::string& soname : facts.needed) {
    if (facts.library_imports.size() >= kMaxLibraries || is_libc_itself(soname)) continue;
    if (const auto lib = find_library(soname))
      if (const auto read = read_elf_file(*lib))
        facts.library_imports.emplace_back(soname, read->imports);
  }
  if (facts.go)
    facts.own_resolver = "Go";
  else if (needs(facts, "libcares") || has_prefix_import(facts.imports, "ares_"))
    facts.own_resolver = "c-ares";
  if (needs(facts, "liburing"))
    facts.io_uring = "links liburing";
  else if (has_prefix_import(facts.imports, "io_uring_"))
    facts.io_uring = "imports io_uring_*";
  facts.raw_syscall = facts.imports.contains("syscall");
  facts.preloaded_allocators = allocators_ahead_of_shim();

  auto refuse = [&facts](std::string why) {
    if (!facts.preload_reaches) return;
    facts.preload_reaches = false;
    facts.refusal = std::move(why);
  };
  if (kHostMachine != 0 && elf->machine != kHostMachine)
    refuse(fmt::format("a {}-bit {} program: the shim is built for {}", facts.bits, facts.machine,
                       machine_name(kHostMachine)));
  if (facts.is_static)
    refuse(
        "statically linked: no LD_PRELOAD library can reach it (faultline run uses the seccomp "
        "backend for it)");
  if (facts.go)
    refuse(
        fmt::format("a Go program ({}): it makes its system calls itself, the preload sees "
                    "none of them",
                    facts.go_evidence));
  if (facts.musl)
    refuse(
        "linked against musl: the shim is built for glibc and cannot load into it (`faultline "
        "run --backend seccomp` reaches its system calls)");
  if (facts.setuid || facts.setgid)
    refuse(fmt::format("set-{}: the loader ignores LD_PRELOAD for it (faultline run refuses it)",
                       facts.setuid ? "user-ID" : "group-ID"));
  return facts;
}

std::string silent_fault_hint(const ProgramFacts& facts, const FaultSpec& spec,
                              bool io_uring_denied) {
  std::vector<std::string> calls;
  std::uint32_t families = 0;
  for (const CallInfo& call : all_calls())
    if ((spec.calls_mask[call.id / 64] >> (call.id % 64)) & 1u) {
      calls.emplace_back(call.name);
      families |= call.family;
    }
  if (calls.empty()) return "";
  const std::string& prog = facts.name;
  if (facts.under_seccomp)
    return fmt::format(
        "{} made no such system call under the seccomp backend (I/O through io_uring or "
        "a memory-mapped file is no such call)",
        prog);
  if (facts.go)
    return fmt::format(
        "{} is a Go program: it makes its system calls itself and the preload sees "
        "none (run it under the seccomp backend: --backend seccomp, or auto)",
        prog);
  if (!facts.preload_reaches) return fmt::format("{}: {}", prog, facts.refusal);
  if ((families & kFamMemory) != 0 && facts.own_malloc)
    return fmt::format("{}'s malloc is its own: its allocations never reach the shim", prog);
  if ((families & kFamMemory) != 0 && !facts.preloaded_allocators.empty())
    return fmt::format("{} is preloaded ahead of the shim and answers malloc first",
                       facts.preloaded_allocators.front());
  if ((families & kFamDns) != 0 && !facts.own_resolver.empty())
    return fmt::format(
        "{} resolves names with its own resolver ({}), not getaddrinfo: use @net "
        "with addr = \"*:53\"",
        prog, facts.own_resolver);
  // Before the imports: a program that does its I/O through io_uring may import none of the
  // calls at all, and denying io_uring is what makes it use them.
  if ((families & (kFamRead | kFamWrite | kFamNet)) != 0 && !facts.io_uring.empty() &&
      !io_uring_denied)
    return fmt::format(
        "{} uses io_uring ({}), whose I/O passes unseen: set [target] io_uring = \"deny\" "
        "so that it falls back to calls faultline sees",
        prog, facts.io_uring);
  const bool imported = std::any_of(calls.begin(), calls.end(),
                                    [&](const std::string& c) { return imports_call(facts, c); });
  if (!imported)
    return fmt::format("{} imports none of {}: no such call of it can reach the shim", prog,
                       calls_text(spec));
  const std::string_view host(spec.host, strnlen(spec.host, sizeof spec.host));
  if ((families & kFamDns) != 0 && host.find("localhost") != std::string_view::npos)
    return prog == "curl"
               ? std::string(
                     "curl never calls getaddrinfo for `localhost`: it resolves that name "
                     "itself (select another name, or fault the connection with @net)")
               : fmt::format(
                     "{} may resolve `localhost` itself without getaddrinfo (curl does): "
                     "select another name, or fault the connection with @net",
                     prog);
  return fmt::format("{} imports {} but made no such call while the fault was enabled", prog,
                     calls_text(spec));
}

std::string silent_fault_hint(const ProgramFacts& facts, const FaultView& fault,
                              bool io_uring_denied) {
  if (fault.seen != 0 || !fault.enabled) return "";
  return silent_fault_hint(facts, fault.spec, io_uring_denied);
}

std::string silent_fault_line(const FaultView& fault, const std::string& hint) {
  return fmt::format("{} saw no call: {}", fixed_text(fault.spec.name), hint);
}

namespace {

std::string exe_of(pid_t pid) {
  char buf[4096];
  const std::string link = "/proc/" + std::to_string(pid) + "/exe";
  const ssize_t n = readlink(link.c_str(), buf, sizeof buf - 1);
  return n > 0 ? std::string(buf, static_cast<std::size_t>(n)) : std::string();
}

// "Seccomp_filters: N" in /proc/PID/status (Linux 5.9): how many seccomp filters the process
// runs under; 0 when the line is missing.
int seccomp_filters(pid_t pid) {
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(status, line))
    if (line.rfind("Seccomp_filters:", 0) == 0) return std::atoi(line.c_str() + 16);
  return 0;
}

}  // namespace

SessionHints::SessionHints(const ControlSession& session) {
  const std::string self = exe_of(getpid());
  // A container runtime's filter is ours too: only a filter more than ours counts.
  const int own_filters = seccomp_filters(getpid());
  std::vector<pid_t> pids = session.live_pids();
  std::sort(pids.begin(), pids.end());
  std::map<std::string, std::size_t> seen;  // exe -> index in programs_
  for (pid_t pid : pids) {
    const std::string exe = exe_of(pid);
    if (exe.empty() || exe == self) continue;
    const std::string_view base = std::string_view(exe).substr(exe.rfind('/') + 1);
    if (base == "faultline") continue;  // a `run` from another build or prefix
    const bool filtered = seccomp_filters(pid) > own_filters;
    if (auto it = seen.find(exe); it != seen.end()) {
      programs_[it->second].filtered = programs_[it->second].filtered || filtered;
      continue;
    }
    try {
      programs_.push_back(Program{inspect_program(exe), filtered});
      seen.emplace(exe, programs_.size() - 1);
    } catch (const std::exception&) {
      // Gone, deleted or not an ELF file: no hint from it.
    }
  }
}

std::string SessionHints::hint(const FaultView& fault) const {
  for (const Program& program : programs_)
    if (std::string text = silent_fault_hint(program.facts, fault, program.filtered); !text.empty())
      return text;
  return "";
}

int doctor_command(const std::vector<std::string>& command, bool json) {
  if (command.empty()) fail(kExitUsage, "no command: faultline doctor [--json] -- CMD [ARGS...]");
  std::string program;
  try {
    program = launch::resolve_command(command.front());
  } catch (const CliError& error) {
    fail(kExitUsage, error.what());
  }
  const ProgramFacts facts = inspect_program(program);
  std::vector<FamilyReach> families;
  for (Family family : kFamilies) families.push_back(reach_of(facts, family));
  const std::string backend = auto_backend(facts);
  const bool seccomp = seccomp_reaches(facts);
  const int status = facts.preload_reaches || seccomp ? kExitOk : kExitNothing;

  if (json) {
    Json o;
    o["program"] = json_text(facts.path);
    o["bits"] = facts.bits;
    o["machine"] = facts.machine;
    o["static"] = facts.is_static;
    o["interpreter"] = facts.is_static ? Json(nullptr) : json_text(facts.interpreter);
    o["libc"] = facts.is_static ? Json(nullptr) : Json(facts.musl ? "musl" : "glibc");
    o["setuid"] = facts.setuid;
    o["setgid"] = facts.setgid;
    o["go"] = facts.go;
    Json needed = Json::array();
    for (const auto& n : facts.needed) needed.push_back(json_text(n));
    o["needed"] = std::move(needed);
    o["own_malloc"] = facts.own_malloc;
    o["own_resolver"] = facts.own_resolver.empty() ? Json(nullptr) : Json(facts.own_resolver);
    o["io_uring"] = facts.io_uring.empty() ? Json(nullptr) : Json(facts.io_uring);
    o["raw_syscall"] = facts.raw_syscall;
    Json allocators = Json::array();
    for (const auto& a : facts.preloaded_allocators) allocators.push_back(json_text(a));
    o["preloaded_allocators"] = std::move(allocators);
    Json fams = Json::object();
    for (const FamilyReach& r : families) {
      Json f;
      f["reachable"] = r.reachable;
      f["imports"] = r.imports;
      f["through"] = r.through;
      f["note"] = r.note.empty() ? Json(nullptr) : Json(r.note);
      fams[std::string(family_name(r.family))] = std::move(f);
    }
    o["families"] = std::move(fams);
    o["backend"] = backend;
    o["reachable"] = facts.preload_reaches || seccomp;
    o["preload_reachable"] = facts.preload_reaches;
    o["refusal"] = facts.preload_reaches ? Json(nullptr) : Json(facts.refusal);
    print_json(o);
    return status;
  }

  fmt::print("{}\n", facts.path);
  fmt::print("  ELF:         {}-bit {}, {}\n", facts.bits, facts.machine,
             facts.is_static ? "statically linked"
                             : fmt::format("dynamically linked, interpreter {} ({})",
                                           facts.interpreter, facts.musl ? "musl" : "glibc"));
  fmt::print("  set-id:      {}\n", facts.setuid   ? "set-user-ID"
                                    : facts.setgid ? "set-group-ID"
                                                   : "no");
  fmt::print("  Go:          {}\n", facts.go ? "yes (" + facts.go_evidence + ")" : "no");
  fmt::print("  needs:       {}\n",
             facts.needed.empty() ? "-" : fmt::format("{}", fmt::join(facts.needed, ", ")));
  fmt::print("  malloc:      {}\n", facts.own_malloc  ? "its own (the executable defines malloc)"
                                    : facts.is_static ? "linked in"
                                                      : "the C library's");
  fmt::print("  resolver:    {}\n", !facts.own_resolver.empty() ? "its own: " + facts.own_resolver
                                    : facts.is_static           ? "linked in"
                                                                : "the C library's (getaddrinfo)");
  fmt::print("  io_uring:    {}\n", facts.io_uring.empty() ? "not linked" : facts.io_uring);
  if (facts.raw_syscall)
    fmt::print("  syscall():   imported: system calls it makes through syscall() pass unseen\n");
  if (!facts.preloaded_allocators.empty())
    fmt::print("  LD_PRELOAD:  {} ahead of the shim\n",
               fmt::join(facts.preloaded_allocators, ", "));
  fmt::print("  backend:     {} (auto)\n\n", backend);
  Table table({"FAMILY", "REACHED", "IMPORTS", "NOTE"});
  for (const FamilyReach& r : families) {
    std::string imports = r.imports.empty() ? "-" : fmt::format("{}", fmt::join(r.imports, ","));
    table.add_row({std::string(family_name(r.family)), r.reachable ? "yes" : "no",
                   std::move(imports), r.note.empty() ? "-" : r.note});
  }
  table.print(stdout);
  if (facts.preload_reaches)
    fmt::print("\nfaultline can fault {} with the preload\n", facts.name);
  else if (seccomp)
    fmt::print(
        "\nfaultline can fault {} with the seccomp backend (its system calls: @write, @read, "
        "@fsync, @open, @net; not @memory or @dns); not with the preload: {}\n",
        facts.name, facts.refusal);
  else
    fmt::print("\nfaultline cannot fault {} with the preload: {}\n", facts.name, facts.refusal);
  return status;
}

}  // namespace faultline::cli
