// Power cuts, controller side (powercut.cpp): shared by `faultline run` and `faultline powercut`.
#pragma once

#include <sys/types.h>

#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "cli/output.h"
#include "controller/durability/cut.h"
#include "controller/durability/revert.h"
#include "faultline/control_block.h"

namespace faultline {
class ControlSession;
}

namespace faultline::cli {

void print_cut(const durability::CutReport& report, std::FILE* out);
Json cut_json(const durability::CutReport& report);
// One line in the session's event log ([log] path), if it has one.
void log_cut(const ControlBlock& block, const durability::CutReport& report);

// The session SESSION names, or the only live one (commands.cpp); fails like every command.
std::unique_ptr<ControlSession> open_named_session(const std::string& name);
int powercut_command(const std::string& session);

}  // namespace faultline::cli
