// @fsync: fsync, fdatasync, sync_file_range, syncfs, sync, msync. `lie` returns success
// without syncing: the durability bug a power cut would expose.
#include <sys/mman.h>
#include <unistd.h>

#include "shim/engine/durability.h"
#include "shim/errno_call.h"

namespace faultline::shim {
namespace {

template <class Fn>
int sync_slow(const CallArgs& args, Fn real) {
  return errno_call_slow(args, real, untracked);
}

// The calls on an fd: first the fd's cached verdict (engine.h, fd_call_quiet). fsync,
// fdatasync and syncfs ask it in the wrapper already when [durability] is off; with it on
// they come here (and a quiet call runs the tracked lambda).
template <class Fn>
FL_COLD int fd_sync_slow(std::uint32_t call, int fd, Fn real) {
  if (fd_call_quiet(call, fd)) return real();
  return sync_slow(CallArgs{call, fd}, real);
}

constexpr std::uint32_t kSyncArm = kFamFsync | kFamDurable;

// Under [durability] a sync is bracketed in the undo log (durability.h): begun before the real
// call, ended inside the `real` lambda right after it (so a crash or power cut "after" the
// call finds it done), or failed when a fault answered with an error instead. A `lie` ran
// nothing and ends nothing: it makes nothing durable, and loses nothing either.
// Out of line: inlined, its frame would be built on the wrappers' unarmed and quiet paths too.
template <class Fn>
[[gnu::noinline]] int tracked_sync(std::uint32_t call, int fd, SyncKind kind, std::int64_t off,
                                   std::uint64_t len, Fn real) {
  if (!durability_on()) return fd_sync_slow(call, fd, real);
  const DurableSync sync = durable_sync_begin(fd, kind, off, len);
  bool ran = false;
  auto tracked = [&] {
    ran = true;
    const int r = real();
    durable_sync_end(sync, r == 0 ? SyncOutcome::kOk : SyncOutcome::kFailed);
    return r;
  };
  const int r = armed(kFamFsync) ? fd_sync_slow(call, fd, tracked) : tracked();
  if (!ran && r != 0) durable_sync_end(sync, SyncOutcome::kFailed);
  return r;
}

}  // namespace
}  // namespace faultline::shim

using namespace faultline;
using namespace faultline::shim;

FL_EXPORT int fsync(int fd) {
  const ArmedNow now = armed_now();
  if (FL_LIKELY(!(now.families & kSyncArm))) return FL_REAL(fsync)(fd);
  if (!(now.families & kFamDurable) && fd_call_quiet_counted(kCall_fsync, fd, now))
    return FL_REAL(fsync)(fd);
  return tracked_sync(kCall_fsync, fd, SyncKind::kFile, 0, 0, [fd] { return FL_REAL(fsync)(fd); });
}

FL_EXPORT int fdatasync(int fd) {
  const ArmedNow now = armed_now();
  if (FL_LIKELY(!(now.families & kSyncArm))) return FL_REAL(fdatasync)(fd);
  if (!(now.families & kFamDurable) && fd_call_quiet_counted(kCall_fdatasync, fd, now))
    return FL_REAL(fdatasync)(fd);
  return tracked_sync(kCall_fdatasync, fd, SyncKind::kFile, 0, 0,
                      [fd] { return FL_REAL(fdatasync)(fd); });
}

FL_EXPORT int sync_file_range(int fd, off64_t off, off64_t nbytes, unsigned int flags) {
  if (FL_LIKELY(!armed(kSyncArm))) return FL_REAL(sync_file_range)(fd, off, nbytes, flags);
  auto real = [=] { return FL_REAL(sync_file_range)(fd, off, nbytes, flags); };
  // Only a range waited for after its writeback is on disk when the call returns.
  if (!(flags & SYNC_FILE_RANGE_WAIT_AFTER) || !durability_on()) {
    if (!armed(kFamFsync)) return real();
    return fd_sync_slow(kCall_sync_file_range, fd, real);
  }
  // nbytes 0: from off to the end of the file (whatever it is when the sync runs).
  const std::uint64_t len = nbytes > 0 ? static_cast<std::uint64_t>(nbytes)
                            : off >= 0 ? static_cast<std::uint64_t>(INT64_MAX - off)
                                       : 0;
  return tracked_sync(kCall_sync_file_range, fd, SyncKind::kRange, off, len, real);
}

FL_EXPORT int syncfs(int fd) {
  const ArmedNow now = armed_now();
  if (FL_LIKELY(!(now.families & kSyncArm))) return FL_REAL(syncfs)(fd);
  if (!(now.families & kFamDurable) && fd_call_quiet_counted(kCall_syncfs, fd, now))
    return FL_REAL(syncfs)(fd);
  return tracked_sync(kCall_syncfs, fd, SyncKind::kFs, 0, 0, [fd] { return FL_REAL(syncfs)(fd); });
}

FL_EXPORT void sync(void) {
  if (FL_LIKELY(!armed(kSyncArm))) return FL_REAL(sync)();
  const DurableSync tracked = durable_sync_begin(-1, SyncKind::kAll, 0, 0);
  auto real = [&] {
    FL_REAL(sync)();
    durable_sync_end(tracked, SyncOutcome::kOk);
    return 0;
  };
  if (!armed(kFamFsync)) {
    real();
    return;
  }
  sync_slow(CallArgs{kCall_sync}, real);
}

FL_EXPORT int msync(void* addr, size_t len, int flags) {
  if (FL_LIKELY(!armed(kFamFsync))) return FL_REAL(msync)(addr, len, flags);
  CallArgs args{kCall_msync};
  args.size = len;
  args.has_size = true;
  return sync_slow(args, [=] { return FL_REAL(msync)(addr, len, flags); });
}
