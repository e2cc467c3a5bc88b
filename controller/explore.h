// `faultline explore`: run a command many times, each time failing exactly one call site that
// has not been tried yet, and classify what the program did (docs/explore.md).
//
//   1. A discovery run, with no fault armed, records every distinct call site of the explored
//      calls (`record` faults, shim/engine/site.cpp) and the command's exit status and output: the
//      baseline.
//   2. Each next run fails one (site, k-th occurrence) with the call's natural error (a
//      `site` fault with after = k-1, times = 1), records sites as the discovery run did (error
//      paths reveal new ones, which join the queue: the run that tries one fails what the run
//      that revealed it failed first), and is classified: handled, crashed, hung,
//      check-failed, or not reached (nothing was injected: the program did not pass there
//      this time).
//   With `powercut`, the sites are the durability points of the policy's [durability] paths
//   (fsync, fdatasync, rename, unlink, ...; controller/explore_powercut.h) and each run cuts the
//   power just before or just after one (site, k-th occurrence) instead of failing it, then
//   runs the recover command and the check: a point whose cut fails either is a finding.
//   3. Everything goes to a state directory as it happens, so an interrupted exploration
//      resumes where it stopped and the report can be printed again from the state alone;
//      each finding keeps the policy that replays it with `faultline run -p`.
//
// Runs go through the same launcher as `faultline run` (controller/launcher.h), one fresh session
// each, up to `jobs` at a time, each in its own process group (killed whole at the end of the
// run: nothing is left running) and, unless `in_place`, its own empty working directory.
//
// This file is the reusable core: it runs and records. The command line, the progress bar and
// the report are cli/explore.cpp.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "faultline/control_block.h"

namespace faultline::explore {

// What is explored: one `--calls` item ("@memory", "connect", "@write=ENOSPC"), each call
// failing with its natural error unless the item names one; or one [[fault]] of a `-p` policy,
// whose selectors narrow the calls and whose action is what each run injects.
struct Target {
  std::string label;      // "@memory", "fsync=EIO", "policy:wal-eio"
  std::string calls;      // TOML value of `calls`: ["@memory"]
  std::string error;      // `--calls X=ERRNO`: the error for every call; "" = natural
  std::string selectors;  // -p: TOML lines of the fault's selectors ("path = '/db/*'\n")
  std::string action;     // -p: TOML lines of its action ("error = 'EIO'\n"); "" = `error`
};

// What makes two explorations the same one: a resumed state must have been made with these.
struct Config {
  std::vector<std::string> command;  // the program as resolved, then its arguments
  std::vector<Target> targets;
  int depth = static_cast<int>(kDefaultSiteDepth);  // frames per call site
  int occurrences = 1;                              // try the 1st .. k-th call at each site
  std::string check;                                // shell command run after each run
  bool in_place = false;  // runs share the current directory instead of a fresh one each
  // --powercut: the targets are durability points (explore_powercut.h), each run cuts the power
  // at one and runs `recover` (if any) then `check`; runs go through `faultline run`, which
  // reverts the tracked files after a cut however it does it.
  bool powercut = false;
  std::string recover;     // shell command run after each cut, before the check
  std::string durability;  // TOML lines of the policy's [durability] table
  // The policy's own [[fault]]s as TOML (a drive that lies, a failing fsync): armed in every run,
  // after the record faults and the cut, so that the cut still wins at its call.
  std::string faults;
};

enum class Outcome {
  kBaseline,       // the discovery run
  kHandled,        // exited as in the discovery run, or with a clean error status
  kCrashed,        // ended by a signal (or a shell's 128+N for a crash signal)
  kHung,           // still running at the timeout: killed
  kCheckFailed,    // the check command failed afterwards
  kNotReached,     // nothing was injected: the program did not reach that call this time
  kRecoverFailed,  // --powercut: the recover command failed after the cut
};
std::string_view outcome_name(Outcome outcome);  // "handled", "check-failed", ...
std::optional<Outcome> outcome_from_name(std::string_view name);
inline bool is_finding(Outcome o) {
  return o == Outcome::kCrashed || o == Outcome::kHung || o == Outcome::kCheckFailed ||
         o == Outcome::kRecoverFailed;
}

struct Site {
  int target = 0;  // index in Config::targets
  std::string call;
  std::string site;                 // the `site` selector: "libc.so.6+0x8a3f;prog+0x1234"
  std::vector<std::string> frames;  // symbolised, innermost first: "main (prog)"
  int found_in_run = 0;             // 0 = the discovery run
};

struct Run {
  int id = 0;  // 0 = the discovery run
  Outcome outcome = Outcome::kBaseline;
  int site = -1;        // index in State::sites; -1 for the discovery run
  int occurrence = 0;   // the k-th call at the site was failed
  std::string error;    // what was injected: "ENOMEM", "EAI_AGAIN", "error='EIO' delay='1s'"
  int exit_status = 0;  // the shell's convention: 128+N for signal N
  int signal = 0;       // the signal that ended it, 0 if it exited (or was killed at the timeout)
  std::uint64_t injected = 0;
  std::int64_t duration_ms = 0;
  std::string stdout_hash;  // FNV-1a 64 of its stdout, hex
  int new_sites = 0;        // sites first seen in this run
  std::string note;         // why, for people: "check exited 1", "exit 1 (discovery: 0)"
};

struct State {
  std::string dir;  // absolute
  Config config;
  std::vector<Site> sites;
  std::vector<Run> runs;  // in the order they finished; runs[0] is the discovery run when done
  std::vector<std::string> warnings;  // for people: "the command exits 1 without faults", ...

  const Run* baseline() const;
  // The family a site's call belongs to as explored ("@net" for a write on a socket).
  std::string family_of(const Site& site) const;
  // The report's row for a site: its family, or with --powercut its point group and side
  // ("sync before").
  std::string group_of(const Site& site) const;
  // Sites × occurrences not tried yet (with --powercut: points whose next occurrence is due).
  std::size_t untried() const;
};

const Run* find_run(const State& state, int id);
// The runs on whose error path a site was first seen, outermost first (empty for a site of the
// discovery run). A run that tries the site fails what each of them failed first.
std::vector<int> error_path(const State& state, int site);

// Where a run keeps what a person may look at afterwards. Only findings keep theirs.
std::string run_dir(const State& state, int run);
std::string replay_policy_path(const State& state, int run);
// The command as a shell would take it back: `python3 -c 'import json'`.
std::string shell_command(const std::vector<std::string>& words);
// One shell line that replays a finding: a fresh directory (unless in place), `faultline run
// -p POLICY -- CMD`, then the check (which gets the event log as FAULTLINE_EXPLORE_EVENTS).
std::string replay_command(const State& state, const Run& run, const std::string& faultline);

struct Progress {
  const State& state;
  const Run* finished;  // the run that just finished, or nullptr for "started one"
  int started = 0;      // runs started by this invocation (not the discovery run)
  int running = 0;
  std::size_t planned = 0;  // runs this invocation will make if nothing new is found
};

struct Options {
  std::vector<std::string> command;  // as typed
  std::string policy;                // -p: explore its faults (their selectors and actions)
  std::vector<std::string> calls;    // --calls items; none (and no -p): every family
  int depth = static_cast<int>(kDefaultSiteDepth);
  int occurrences = 0;  // 0: 1, or with --powercut every occurrence (up to a bound)
  std::string check;
  bool in_place = false;
  bool powercut = false;         // cut the power at each durability point of the policy's paths
  std::string recover;           // --powercut: run after each cut, before the check
  std::string faultline;         // --powercut: the faultline executable that runs each run
  std::uint64_t max_runs = 100;  // targeted runs made by this invocation
  std::int64_t timeout_ns = 10'000'000'000;
  int jobs = 1;
  std::string state_dir;
  std::string shim;  // libfaultline.so to preload (launch::find_shim)
  std::function<void(const Progress&)> progress;
  const std::atomic<bool>* stop = nullptr;  // set (e.g. from a SIGINT handler): wind down
};

// Explores: the discovery run when the state has none, then targeted runs until every site
// is tried, the budget is spent or `stop` is set. Resumes the state in `state_dir` when there
// is one made with the same command and settings (and refuses one made with others). Throws
// ControlError (status 2) for bad input, and when the command cannot be explored: it hangs,
// crashes or fails its check without any fault.
State run(const Options& options);

// Reads a state directory (for the report alone, without running anything).
State load(const std::string& state_dir);

// "1st", "2nd", "11th", "23rd": how runs and reports name an occurrence.
std::string ordinal(int n);

// The last `lines` lines of a finding's stderr (or of its check's output), "" if none.
std::string output_tail(const State& state, const Run& run, const char* file, int lines);

}  // namespace faultline::explore
