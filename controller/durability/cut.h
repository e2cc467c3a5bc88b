// The moment of a power cut, controller side (cut.cpp): marking it in the session's block,
// killing what is left of the session, and reverting its tracked files. Shared by `faultline
// run`, `faultline powercut` and `faultline explore --powercut` (all in faultline_api or above).
#pragma once

#include <sys/types.h>

#include <vector>

#include "controller/durability/revert.h"
#include "faultline/control_block.h"

namespace faultline::durability {

// Marks the cut in the block (kFlagPowercut, cut_real_ns): the processes' deaths are a cut.
void pull_cut(ControlBlock& block);
// Alive and not a zombie.
bool member_alive(pid_t pid);
// SIGKILLs every member but `except` (and this process); waits up to 2 s for them to die
// (zombies count as dead). Returns those still alive.
std::vector<pid_t> kill_members(ControlBlock& block, pid_t except);
// Reverts the session's tracked files (revert.h) with its [durability] settings and seed;
// nothing when it tracks none. took_ns: from the cut (cut_real_ns) to now.
CutReport revert_session(const ControlBlock& block);
// After revert_session, for a session that goes on (a restarted service): its undo area is
// emptied and the cut mark cleared, so the next cut reverts only what came after this one.
void clear_cut(ControlBlock& block);

}  // namespace faultline::durability
