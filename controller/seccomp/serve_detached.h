// The seccomp backend's server for callers that hold several sessions in one process (the C++
// API, experiments): the shim's decision engine is process-global (shim::g_block, g_member,
// the rules cache, the event caller), so one process can answer one session's notifications
// only. Each launched program gets a server process of its own instead, forked twice (so it
// is never left as a zombie and belongs to no one's process group), which keeps the listener
// and nothing else of the caller's, answers with seccomp::Supervisor against the session's
// block (mapped MAP_SHARED: live control reaches it), and exits once no process holds the
// filter any more. It has no PR_SET_PDEATHSIG on purpose: with the listener closed while the
// program still ran, the program's trapped calls would fail with ENOSYS, which faultline must
// never cause. `faultline run` keeps its supervisor in a thread of its own (run.cpp).
#pragma once

#include <sys/types.h>

#include "faultline/control_block.h"

namespace faultline::seccomp {

// Takes `listener` over (closed here in every case) and serves it from a new process for the
// session `block`; `member` is the program's index in the block's pid table, `child` its pid.
// Returns 0 once the server runs, or the errno of the fork that failed: the program's trapped
// calls then have no one to answer them, and the caller must end it.
int serve_in_own_process(int listener, ControlBlock& block, int member, pid_t child) noexcept;

}  // namespace faultline::seccomp
