// The `faultline` subcommands, one function each, called by main.cpp once CLI11 has parsed the
// arguments. A command reports failure by throwing CliError (message + exit status; the
// ControlError of the shared controller code in controller/, so a failure inside the launcher or
// an edit ends the command exactly like one raised here): cleanup (unmapping, removing a
// session `run` created) then happens in destructors, and main prints every message the same
// way ("faultline: ..." on stderr).
#pragma once

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "controller/control_error.h"
#include "controller/edits.h"
#include "policy/policy.h"

namespace faultline::cli {

// docs/cli.md: 0 done, 1 nothing to act on (no such session or fault), 2 bad usage or input.
inline constexpr int kExitOk = kStatusOk;
inline constexpr int kExitNothing = kStatusNothing;
inline constexpr int kExitUsage = kStatusUsage;

using CliError = ControlError;

// An empty message: the command already printed what went wrong in its own format.
[[noreturn]] inline void fail(int status, const std::string& message) {
  throw CliError(status == kExitNothing ? ErrorKind::kNoSession : ErrorKind::kUsage, status,
                 message);
}

// Compiles a policy file. Warnings go to stderr; an error is printed as file:line:col and ends
// the command with status 2 (shared by `run` and `validate`, which must agree exactly).
// `allow_stdin`: "-" is standard input (`validate -`), bounded like a file.
Policy compile_policy_or_fail(const std::string& path, bool allow_stdin = false);

struct RunOptions {
  std::string policy;               // empty: no faults armed
  std::string session;              // empty: a fresh unique name
  std::optional<std::string> seed;  // --seed, checked by `run` like FAULTLINE_SEED
  std::string log;                  // --log
  std::string json_summary;         // --json-summary FILE ("-": stderr)
  std::string backend;              // --backend auto|preload|seccomp; empty: the policy's
  bool json = false;                // --json: the summary as one JSON line on stderr
  bool quiet = false;
  std::vector<std::string> command;
};
int run_command(const RunOptions& options);

int validate_command(const std::string& policy_path, bool json);
int sessions_command(bool json);
// `session` is empty when the user left SESSION out.
int status_command(const std::string& session, bool json);
using faultline::FaultEdit;  // edits.h
// `args` is [SESSION] FAULT...
int edit_faults_command(FaultEdit edit, std::vector<std::string> args);
// `args` is [SESSION] FAULT KEY=VALUE...
int set_command(std::vector<std::string> args);
int add_command(const std::string& session, const std::string& snippet_path);
int panic_command(const std::string& session, bool panic);
// `faultline powercut [SESSION]` (powercut.cpp).
int powercut_command(const std::string& session);
int events_command(const std::string& session, bool follow, bool json);
int watch_command(const std::string& session);

// `faultline explore` (cli/explore.cpp over controller/explore.h). Exit status: 0 explored
// with no finding, 1 at least one finding (crashed, hung, check-failed, recover-failed), 2 bad
// usage or a command that cannot be explored, 130 interrupted (after the report of what was done).
inline constexpr int kExitFindings = 1;
struct ExploreOptions {
  std::string policy;              // -p: explore its faults' calls, with their actions
  std::vector<std::string> calls;  // --calls items; none (and no -p): every family
  std::uint64_t max_runs = 100;
  std::int64_t timeout_ns = 10'000'000'000;
  std::string check;
  int jobs = 1;
  std::string state_dir = "faultline-explore";
  int depth = 8;
  int occurrences = 0;  // 0: not given (1, or every occurrence with --powercut)
  bool in_place = false;
  bool powercut = false;  // --powercut: cut the power at each durability point
  std::string recover;    // --recover: run after each cut, before the check
  bool json = false;
  bool quiet = false;
  bool report_only = false;  // --report: print the state's report, run nothing
  std::vector<std::string> command;
};
int explore_command(const ExploreOptions& options);

}  // namespace faultline::cli
