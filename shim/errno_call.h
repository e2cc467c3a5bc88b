// The shared slow path of calls that move no bytes and report failure as -1 and errno
// (open, dup, pipe, socket, bind, listen, fsync, ...): decide, delay, then the fault's error,
// a crash before or after the call, `lie` (success without the call), or the call itself.
// Byte-moving calls have theirs in io.h.
#pragma once

#include <errno.h>

#include "engine.h"
#include "fd_table.h"

namespace faultline::shim {

// For calls that return a new fd: whatever that number was before is gone.
inline int track_new_fd(int fd) {
  if (fd >= 0) fd_invalidate(fd);
  return fd;
}

inline int untracked(int result) { return result; }

// `finish` post-processes every result the real call returns (fd-table bookkeeping).
template <class Fn, class Finish>
FL_COLD int errno_call_slow(const CallSite& site, Fn real, Finish finish) {
  Guard guard;
  if (!guard.entered()) return finish(real());
  Decision d;
  if (!decide(guard, site, d) || !d.inject) return finish(real());
  apply_delay(guard, d, site);
  switch (d.action) {
    case kActError:
      emit_event(d, site, -1);
      errno = d.error;
      return -1;
    case kActLie:
      emit_event(d, site, -1);
      return 0;
    case kActCrash:
      if (d.crash_when == kCrashAfter) finish(real());
      emit_event(d, site, -1);
      crash_now(d);
    default:
      emit_event(d, site, -1);
      return finish(real());
  }
}

}  // namespace faultline::shim
