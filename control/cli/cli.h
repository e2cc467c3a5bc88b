// The `faultline` subcommands, one function each, called by main.cpp once CLI11 has parsed the
// arguments. A command reports failure by throwing CliError (message + exit status): cleanup
// (unmapping, removing a session `run` created) then happens in destructors, and main prints
// every message the same way ("faultline: ..." on stderr).
#pragma once

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "policy.h"

namespace faultline::cli {

// spec/cli.md: 0 done, 1 nothing to act on (no such session or fault), 2 bad usage or input.
inline constexpr int kExitOk = 0;
inline constexpr int kExitNothing = 1;
inline constexpr int kExitUsage = 2;

class CliError : public std::runtime_error {
 public:
  CliError(int status, const std::string& message) : std::runtime_error(message), status_(status) {}
  int status() const { return status_; }

 private:
  int status_;
};

// An empty message: the command already printed what went wrong in its own format.
[[noreturn]] inline void fail(int status, const std::string& message) {
  throw CliError(status, message);
}

// Compiles a policy file. Warnings go to stderr; an error is printed as file:line:col and ends
// the command with status 2 (shared by `run` and `validate`, which must agree exactly).
Policy compile_policy_or_fail(const std::string& path);

struct RunOptions {
  std::string policy;               // empty: no faults armed
  std::string session;              // empty: a fresh unique name
  std::optional<std::string> seed;  // --seed, checked by `run` like FAULTLINE_SEED
  std::string log;                  // --log
  std::string json_summary;         // --json-summary FILE ("-": stderr)
  bool json = false;                // --json: the summary as one JSON line on stderr
  bool quiet = false;
  std::vector<std::string> command;
};
int run_command(const RunOptions& options);

int validate_command(const std::string& policy_path);
int sessions_command();
// `session` is empty when the user left SESSION out.
int status_command(const std::string& session, bool json);
enum class FaultEdit { kEnable, kDisable, kRemove };
// `args` is [SESSION] FAULT...
int edit_faults_command(FaultEdit edit, std::vector<std::string> args);
// `args` is [SESSION] FAULT KEY=VALUE...
int set_command(std::vector<std::string> args);
int add_command(const std::string& session, const std::string& snippet_path);
int panic_command(const std::string& session, bool panic);
int events_command(const std::string& session, bool follow, bool json);
int watch_command(const std::string& session);

}  // namespace faultline::cli
