// The shared slow path of calls that move no bytes and report failure as -1 and errno
// (open, dup, pipe, socket, bind, listen, fsync, ...): decide, then apply (apply.h) with the
// call's row's failure (fail_as.h) and `lie` (success without the call) as the family's own
// action.
// Byte-moving calls have theirs in io.h.
#pragma once

#include <errno.h>

#include "shim/apply.h"
#include "shim/engine/engine.h"
#include "shim/engine/fd_table.h"

namespace faultline::shim {

// For calls that return a new fd: whatever that number was before is gone.
inline int track_new_fd(int fd) {
  if (fd >= 0) fd_invalidate(fd);
  return fd;
}

inline int untracked(int result) { return result; }

// `finish` post-processes every result the real call returns (fd-table bookkeeping).
template <class Fn, class Finish>
FL_COLD int errno_call_slow(const CallArgs& args, Fn real, Finish finish) {
  Guard guard;
  if (!guard.entered()) return finish(real());
  Decision d;
  if (!decide(guard, args, d) || !d.inject) return finish(real());
  return apply_decision(
      guard, d, args, [&] { return finish(real()); }, fail_call<int>(args),
      [&](const Decision& dd, int& out) {
        if (dd.action != kActLie) return false;
        emit_event(dd, args, -1);  // success without the call
        out = 0;
        return true;
      });
}

}  // namespace faultline::shim
