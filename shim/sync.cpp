// @fsync: fsync, fdatasync, sync_file_range, syncfs, sync, msync. `lie` returns success
// without syncing: the durability bug a power cut would expose.
#include <sys/mman.h>
#include <unistd.h>

#include "errno_call.h"

namespace faultline::shim {
namespace {

template <class Fn>
int sync_slow(const CallSite& site, Fn real) {
  return errno_call_slow(site, real, untracked);
}

// The calls on an fd: first the fd's cached verdict (engine.h, fd_call_quiet).
template <class Fn>
FL_COLD int fd_sync_slow(std::uint32_t call, int fd, Fn real) {
  if (fd_call_quiet(call, fd)) return real();
  return sync_slow(CallSite{call, fd}, real);
}

}  // namespace
}  // namespace faultline::shim

using namespace faultline;
using namespace faultline::shim;

FL_EXPORT int fsync(int fd) {
  if (FL_LIKELY(!armed(kFamFsync))) return FL_REAL(fsync)(fd);
  return fd_sync_slow(kCall_fsync, fd, [fd] { return FL_REAL(fsync)(fd); });
}

FL_EXPORT int fdatasync(int fd) {
  if (FL_LIKELY(!armed(kFamFsync))) return FL_REAL(fdatasync)(fd);
  return fd_sync_slow(kCall_fdatasync, fd, [fd] { return FL_REAL(fdatasync)(fd); });
}

FL_EXPORT int sync_file_range(int fd, off64_t off, off64_t nbytes, unsigned int flags) {
  if (FL_LIKELY(!armed(kFamFsync))) return FL_REAL(sync_file_range)(fd, off, nbytes, flags);
  return fd_sync_slow(kCall_sync_file_range, fd,
                      [=] { return FL_REAL(sync_file_range)(fd, off, nbytes, flags); });
}

FL_EXPORT int syncfs(int fd) {
  if (FL_LIKELY(!armed(kFamFsync))) return FL_REAL(syncfs)(fd);
  return fd_sync_slow(kCall_syncfs, fd, [fd] { return FL_REAL(syncfs)(fd); });
}

FL_EXPORT void sync(void) {
  if (FL_LIKELY(!armed(kFamFsync))) return FL_REAL(sync)();
  sync_slow(CallSite{kCall_sync}, [] {
    FL_REAL(sync)();
    return 0;
  });
}

FL_EXPORT int msync(void* addr, size_t len, int flags) {
  if (FL_LIKELY(!armed(kFamFsync))) return FL_REAL(msync)(addr, len, flags);
  CallSite site{kCall_msync};
  site.size = len;
  site.has_size = true;
  return sync_slow(site, [=] { return FL_REAL(msync)(addr, len, flags); });
}
