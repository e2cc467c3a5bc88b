// `faultline explore --powercut`: what is particular to exploring durability points (ALICE's
// method on unmodified binaries), apart from the runner it shares with the rest of explore
// (controller/explore.cpp). A durability point is one call that makes something durable or
// changes a directory entry of a tracked path — fsync, fdatasync, sync_file_range, syncfs,
// rename, renameat, renameat2, unlink, unlinkat — at one call site, k-th occurrence. Each is
// cut twice: just before the call and just after it returned.
//
// The calls are one list (kDurabilityGroups), looked up by name in the call table at run time:
// a name this build does not interpose (rename and unlink are @fs calls, which a build may not
// have) is skipped, so the list can name calls before they exist.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "controller/explore.h"

namespace faultline::explore::powercut {

// The most occurrences of one point tried when --occurrences is not given: a point's next
// occurrence is tried only once the previous one was reached, so this only bounds a loop.
inline constexpr int kDefaultOccurrences = 1000;

// The targets of a powercut exploration of `policy_path`: per group of durability calls that
// this build interposes, one target cutting before the call and one after, each selecting the
// tracked paths (and the directories holding them, for directory fsyncs). `durability` gets the
// policy's [durability] table as TOML lines. Refuses (ControlError, status 2) a policy without
// `[durability] path`: a cut would lose nothing. `faults` gets the policy's [[fault]]s as TOML
// (empty without any): they are part of the experiment (a lying drive), armed in every run.
std::vector<Target> targets(const std::string& policy_path, std::string& durability,
                            std::string& faults);

// "before" or "after": the side of the call a target cuts.
std::string side_of(const Target& target);

// What `faultline run --json-summary` wrote for a run: the cut was made when anything was
// injected (the runs' record faults never inject). nullopt when the file is missing or has no
// count (faultline run could not start the command).
std::optional<std::uint64_t> injected_total(const std::string& summary_path);

// The arguments that run CMD under `faultline run` for one run of the exploration.
// The session is named, so that the runner can remove its block when `faultline run` was
// killed (at the timeout, or when the exploration stops) before it could.
std::vector<std::string> run_arguments(const std::string& faultline, const std::string& dir,
                                       const std::string& session,
                                       const std::vector<std::string>& command);

// The first `lines` lines of a finding's check.out or recover.out ("" if none): what a check
// says first after a cut is where the damage starts (`pragma integrity_check` lists problems
// in order).
std::string output_head(const State& state, const Run& run, const char* file, int lines);

// State::untried() of a powercut exploration: the points whose next occurrence is due.
std::size_t untried(const State& state);

// replay_command() of a powercut finding: the cut under `faultline run`, then the recover and
// the check; its status is non-zero when the finding reproduces.
std::string replay_command(const State& state, const Run& run, const std::string& faultline);

}  // namespace faultline::explore::powercut
