// Which backend reaches a launched program, and what the seccomp backend needs before the
// launch: decided here once for `faultline run` (cli/run.cpp), the C++ API (api.cpp) and
// experiments (experiment/runner.cpp), so the three can never disagree on which backend a
// program gets, what a seccomp session refuses, which system calls its filter traps or what
// environment the program sees (docs/policy.md, "Reaching the program").
//
//   use_seccomp()         the requested backend ("" = the policy's [target] backend); `auto`
//                         is seccomp for a statically linked or Go program (elf_read.h)
//   plan_seccomp()        refuses what the filter cannot deliver, widens @fs calls, builds
//                         the filter for the policy's families
//   mark_seccomp()        records the trapped families in the block (`add` checks them)
//   seccomp_environment() the caller's environment without the shim's variables
#pragma once

#include <linux/filter.h>

#include <cstdint>
#include <string>
#include <vector>

#include "policy/policy.h"
#include "session/session.h"

namespace faultline::launch {

// The backend for `program` (resolved): `requested` when not empty ("auto", "preload" or
// "seccomp"; anything else is refused, kUsage, naming `what`), else the policy's [target]
// backend. `auto`: seccomp for a statically linked or Go program, which no preload reaches
// (or only partly: Go makes its system calls itself); preload otherwise, and for a file that
// is not ELF (a script: its interpreter is what runs).
bool use_seccomp(const std::string& requested, const Policy& policy, const std::string& program,
                 const char* what = "--backend");

// The filter of a seccomp launch, for SeccompSpawn.
struct SeccompPlan {
  std::uint32_t families = 0;  // the trapped families (kFam*)
  std::vector<sock_filter> filter;
};

// Refuses (kUsage, the fault's name in the message) a fault the seccomp backend cannot deliver,
// widens the @fs calls of the others (seccomp::widen_calls: `policy` is what the block then
// gets), and builds the filter for the families the policy names.
SeccompPlan plan_seccomp(Policy& policy);

// The block says it is a seccomp session and which families its filter traps: `faultline add`
// and the API's add() refuse a fault outside them. Before the program starts.
void mark_seccomp(ControlSession& session, const SeccompPlan& plan);

// `base` without the shim's variables (FAULTLINE_SESSION, _POLICY, _SEED, _LOG): nothing is
// preloaded, and a stale FAULTLINE_POLICY must not arm a preload the user added themselves.
std::vector<std::string> seccomp_environment(const std::vector<std::string>& base);

}  // namespace faultline::launch
