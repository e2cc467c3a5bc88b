// What `faultline explore` explores: the targets of `--calls` items and of a `-p` policy's
// faults, compiled to the calls they can fail, and the exploration's Config made from the
// options. Internal to controller/explore*.cpp.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "controller/explore.h"
#include "controller/explore_runner.h"

namespace faultline::explore::runner {

// Failures in a row a run may make to reach a site on an error path: sites first seen deeper
// are not followed (each failure is one fault of the run's session, which holds 64).
inline constexpr std::size_t kMaxErrorPath = 8;

bool has_call(const CompiledTarget& t, std::uint32_t id);
CompiledTarget compile_target(const Target& t);
// `--calls` items: "@memory", "connect", "@write=ENOSPC".
Target call_target(const std::string& item);
// The [[fault]]s of a -p policy; keys explore ignores (triggers) are warned about.
std::vector<Target> policy_targets(const std::string& path, std::vector<std::string>& warnings);
Config make_config(const Options& o, std::vector<std::string>& warnings);
// A resumed state must explore the same thing as the options ask.
bool same_exploration(const Config& a, const Config& b);

}  // namespace faultline::explore::runner
