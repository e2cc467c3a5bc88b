// `limit` (@open): how many fds the process has open, and how many a call would add.
//
// The count is read from /proc/self/fd each time a limit fault is evaluated, not kept as a
// running total in the fd table: fds the shim never sees made or closed (fopen and opendir
// open through glibc-internal calls, inherited fds, raw syscalls, close_range from a child
// before exec) would make a running count drift, and a wrong count fails the wrong call.
// The price is one open + getdents64 + close per evaluated call, paid only by calls that
// reach a limit fault (see docs/policy.md).
#pragma once

#include <cstdint>

#include "shim/engine/engine.h"

namespace faultline::shim {

// Open fds of this process, or -1 when /proc/self/fd cannot be read.
long count_open_fds() noexcept;

// How many fds `site`'s call adds when it succeeds: 2 for pipe/pipe2, 0 for
// dup2/dup3 onto an fd that is already open (it is replaced, not added), 1 otherwise.
int fds_added_by(const CallArgs& args) noexcept;

// True when `site` would leave more than `limit` fds open. False, with one diagnostic per
// process, when the count cannot be read (the call then runs: never a guessed failure).
bool over_fd_limit(const CallArgs& args, std::uint64_t limit) noexcept;

}  // namespace faultline::shim
