// Counting open fds for `limit` (see fd_count.h). Reads /proc/self/fd with getdents64 into a
// stack buffer: no opendir, whose DIR is malloc'd (this runs inside allocation-sensitive
// wrappers and must not depend on the program's allocator).
#include "shim/engine/fd_count.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstddef>
#include <cstring>

namespace faultline::shim {
long count_open_fds() noexcept {
  int dir = FL_REAL(open)("/proc/self/fd", O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);
  if (dir < 0) return -1;
  alignas(8) char buf[4096];
  long count = 0;
  for (;;) {
    long n = syscall(SYS_getdents64, dir, buf, sizeof buf);
    if (n < 0) {
      count = -1;
      break;
    }
    if (n == 0) break;
    for (long off = 0; off < n;) {
      // getdents64 records have struct dirent64's layout (d_name is NUL-terminated).
      const auto* entry = reinterpret_cast<const struct dirent64*>(buf + off);
      if (std::strcmp(entry->d_name, ".") != 0 && std::strcmp(entry->d_name, "..") != 0) ++count;
      off += entry->d_reclen;
    }
  }
  FL_REAL(close)(dir);
  // The directory's own fd was listed too.
  return count > 0 ? count - 1 : count;
}

int fds_added_by(const CallArgs& args) noexcept {
  if (args.call == kCall_pipe || args.call == kCall_pipe2) return 2;
  if ((args.call == kCall_dup2 || args.call == kCall_dup3) && args.fd2 >= 0) {
    if (args.fd2 == args.fd) return 0;  // dup2(fd, fd) is a no-op
    if (FL_REAL(fcntl)(args.fd2, F_GETFD) != -1) return 0;
  }
  return 1;
}

bool over_fd_limit(const CallArgs& args, std::uint64_t limit) noexcept {
  CancelOff no_cancel;  // shim.h: opening and closing /proc/self/fd are cancellation points
  const int saved = errno;
  const long open_now = count_open_fds();
  const int added = fds_added_by(args);
  errno = saved;
  if (open_now < 0) {
    static std::atomic<bool> reported{false};
    if (!reported.exchange(true))
      diag("faultline: cannot count open fds in /proc/self/fd; `limit` faults do not inject");
    return false;
  }
  return static_cast<std::uint64_t>(open_now) + static_cast<std::uint64_t>(added) > limit;
}

}  // namespace faultline::shim
