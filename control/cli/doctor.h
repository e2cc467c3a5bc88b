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

#include "faultline/control_block.h"

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
// saw nothing; "" when there is no better guess than "it made no such call".
std::string silent_fault_hint(const ProgramFacts& facts, const FaultSpec& spec);

int doctor_command(const std::vector<std::string>& command, bool json);

}  // namespace faultline::cli
