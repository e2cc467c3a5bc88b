// Power cuts, controller side (powercut.cpp): shared by `faultline run` and `faultline powercut`.
#pragma once

#include <sys/types.h>

#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "faultline/control_block.h"
#include "output.h"
#include "revert.h"

namespace faultline {
class Session;
}

namespace faultline::cli {

// Marks the cut in the block (kFlagPowercut, cut_real_ns): members stop treating it as a crash.
void pull_cut(ControlBlock& block);
// SIGKILLs every member but `except` (and this process); waits up to 2 s for them to die.
// Returns those still alive.
std::vector<pid_t> kill_members(ControlBlock& block, pid_t except);
// Reverts the session's tracked files (nothing when it tracks none).
durability::CutReport revert_session(const ControlBlock& block);
void print_cut(const durability::CutReport& report, std::FILE* out);
Json cut_json(const durability::CutReport& report);
// One line in the session's event log ([log] path), if it has one.
void log_cut(const ControlBlock& block, const durability::CutReport& report);

// The session SESSION names, or the only live one (commands.cpp); fails like every command.
std::unique_ptr<Session> open_named_session(const std::string& name);
int powercut_command(const std::string& session);

}  // namespace faultline::cli
