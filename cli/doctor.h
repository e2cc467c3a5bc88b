// What faultline can reach in a program before running it, read from its ELF file alone (no
// external tools): static or dynamic, the loader (glibc or musl), set-id bits, a Go build,
// the libc calls it imports per family (directly or through the libraries it needs), its own
// malloc or resolver, io_uring, and allocators preloaded ahead of the shim. `faultline doctor`
// prints these facts; `faultline run` uses them to say why a fault saw no call at all, so a
// run that injected nothing is never silent about the likely reason.
#pragma once

#include <optional>
#include <set>
#include <string>
#include <vector>

#include "controller/inspect.h"
#include "faultline/control_block.h"
#include "session/session.h"

namespace faultline::cli {

struct ProgramFacts {
  std::string path;
  std::string name;  // the file name, for messages ("curl")
  int bits = 64;
  std::string machine;
  bool is_static = false;
  std::string interpreter;  // PT_INTERP, "" when static
  bool musl = false;
  bool setuid = false;
  bool setgid = false;
  bool go = false;
  std::string go_evidence;          // "Go build note", "Go runtime symbols"
  std::vector<std::string> needed;  // DT_NEEDED
  std::set<std::string> imports;    // undefined dynamic symbols of the executable
  // Imports of the needed libraries (one level, not recursive): symbol -> first library.
  std::vector<std::pair<std::string, std::set<std::string>>> library_imports;
  bool own_malloc = false;                        // the executable defines `malloc`
  std::string own_resolver;                       // "c-ares", "Go", or ""
  std::string io_uring;                           // "links liburing", "imports io_uring_*", or ""
  bool raw_syscall = false;                       // imports syscall(): raw system calls pass unseen
  std::vector<std::string> preloaded_allocators;  // in LD_PRELOAD before libfaultline.so
  bool preload_reaches = true;                    // the preload backend can fault it at all
  std::string refusal;                            // why not, when !preload_reaches
  bool under_seccomp = false;  // `faultline run` ran it under the seccomp backend (its hints)
};

// Reads `path` (already resolved). Throws CliError (status 2) when it is not a readable ELF.
ProgramFacts inspect_program(const std::string& path);

// One line saying why `spec`, enabled and seen by no call during a run of the program, likely
// saw nothing; "" when there is no better guess than "it made no such call". `io_uring_denied`:
// the program runs under [target] io_uring = "deny", so io_uring is not the reason.
std::string silent_fault_hint(const ProgramFacts& facts, const FaultSpec& spec,
                              bool io_uring_denied);

// The hint for `fault` as `run`'s summary and `status` both give it: "" unless the fault is
// enabled and saw no call at all. The one place the two agree on when a fault is "silent".
std::string silent_fault_hint(const ProgramFacts& facts, const FaultView& fault,
                              bool io_uring_denied);
// The line both print for it: "NAME saw no call: HINT".
std::string silent_fault_line(const FaultView& fault, const std::string& hint);

// The hints of a live session (`faultline status`), from the programs its member processes
// run (/proc/PID/exe, each executable read once). faultline's own processes (the `run` that
// created the session) are left out. A member under more seccomp filters than `status` itself
// may be under [target] io_uring = "deny" (/proc does not say which filters a process has):
// no io_uring hint is given for it.
class SessionHints {
 public:
  explicit SessionHints(const ControlSession& session);
  // The first non-empty hint among the member programs, in pid order; "" when none.
  std::string hint(const FaultView& fault) const;

 private:
  struct Program {
    ProgramFacts facts;
    bool filtered = false;  // a member running it has a seccomp filter
  };
  std::vector<Program> programs_;
};

int doctor_command(const std::vector<std::string>& command, bool json);

}  // namespace faultline::cli
