// @open: the calls that make fds (open, openat, creat, dup*, pipe*), plus the bookkeeping
// calls close and close_range that keep the fd table true. Every new fd number invalidates
// its slot: the number may have been closed behind our back (raw syscalls, libc internals).
#include <stdarg.h>
#include <unistd.h>

#include "errno_call.h"

namespace faultline::shim {
namespace {

bool takes_mode(int flags) { return (flags & O_CREAT) || (flags & O_TMPFILE) == O_TMPFILE; }


// `track_new_fd` for calls returning an fd, `untracked` for pipe (whose fds come back in an array).
template <class Fn, int (*Track)(int) = track_new_fd>
int open_slow(const CallSite& site, Fn real) {
  return errno_call_slow(site, real, Track);
}

CallSite path_site(std::uint32_t call, int dirfd, const char* path) {
  CallSite site{call};
  site.dirfd = dirfd;
  site.path = path;
  return site;
}

}  // namespace
}  // namespace faultline::shim

using namespace faultline;
using namespace faultline::shim;

#define FL_MODE_ARG(flags)          \
  mode_t mode = 0;                  \
  if (takes_mode(flags)) {          \
    va_list ap;                     \
    va_start(ap, flags);            \
    mode = va_arg(ap, mode_t);      \
    va_end(ap);                     \
  }

FL_EXPORT int open(const char* path, int flags, ...) {
  FL_MODE_ARG(flags)
  if (FL_LIKELY(!armed(kFamOpen))) return track_new_fd(FL_REAL(open)(path, flags, mode));
  return open_slow(path_site(kCall_open, AT_FDCWD, path),
                   [=] { return FL_REAL(open)(path, flags, mode); });
}

FL_EXPORT int open64(const char* path, int flags, ...) {
  FL_MODE_ARG(flags)
  if (FL_LIKELY(!armed(kFamOpen))) return track_new_fd(FL_REAL(open64)(path, flags, mode));
  return open_slow(path_site(kCall_open64, AT_FDCWD, path),
                   [=] { return FL_REAL(open64)(path, flags, mode); });
}

FL_EXPORT int openat(int dirfd, const char* path, int flags, ...) {
  FL_MODE_ARG(flags)
  if (FL_LIKELY(!armed(kFamOpen))) return track_new_fd(FL_REAL(openat)(dirfd, path, flags, mode));
  return open_slow(path_site(kCall_openat, dirfd, path),
                   [=] { return FL_REAL(openat)(dirfd, path, flags, mode); });
}

FL_EXPORT int openat64(int dirfd, const char* path, int flags, ...) {
  FL_MODE_ARG(flags)
  if (FL_LIKELY(!armed(kFamOpen))) return track_new_fd(FL_REAL(openat64)(dirfd, path, flags, mode));
  return open_slow(path_site(kCall_openat64, dirfd, path),
                   [=] { return FL_REAL(openat64)(dirfd, path, flags, mode); });
}

FL_EXPORT int creat(const char* path, mode_t mode) {
  if (FL_LIKELY(!armed(kFamOpen))) return track_new_fd(FL_REAL(creat)(path, mode));
  return open_slow(path_site(kCall_creat, AT_FDCWD, path),
                   [=] { return FL_REAL(creat)(path, mode); });
}

FL_EXPORT int __open_2(const char* path, int flags) {
  if (FL_LIKELY(!armed(kFamOpen))) return track_new_fd(FL_REAL(__open_2)(path, flags));
  return open_slow(path_site(kCall___open_2, AT_FDCWD, path),
                   [=] { return FL_REAL(__open_2)(path, flags); });
}

FL_EXPORT int __open64_2(const char* path, int flags) {
  if (FL_LIKELY(!armed(kFamOpen))) return track_new_fd(FL_REAL(__open64_2)(path, flags));
  return open_slow(path_site(kCall___open64_2, AT_FDCWD, path),
                   [=] { return FL_REAL(__open64_2)(path, flags); });
}

FL_EXPORT int dup(int fd) {
  if (FL_LIKELY(!armed(kFamOpen))) return track_new_fd(FL_REAL(dup)(fd));
  return open_slow(CallSite{kCall_dup, fd}, [=] { return FL_REAL(dup)(fd); });
}

FL_EXPORT int dup2(int fd, int fd2) {
  if (FL_LIKELY(!armed(kFamOpen))) return track_new_fd(FL_REAL(dup2)(fd, fd2));
  CallSite site{kCall_dup2, fd};
  site.fd2 = fd2;
  return open_slow(site, [=] { return FL_REAL(dup2)(fd, fd2); });
}

FL_EXPORT int dup3(int fd, int fd2, int flags) {
  if (FL_LIKELY(!armed(kFamOpen))) return track_new_fd(FL_REAL(dup3)(fd, fd2, flags));
  CallSite site{kCall_dup3, fd};
  site.fd2 = fd2;
  return open_slow(site, [=] { return FL_REAL(dup3)(fd, fd2, flags); });
}

namespace {
int track_pipe(int r, const int fds[2]) {
  if (r == 0) {
    fd_invalidate(fds[0]);
    fd_invalidate(fds[1]);
  }
  return r;
}
}  // namespace

FL_EXPORT int pipe(int fds[2]) {
  if (FL_LIKELY(!armed(kFamOpen))) return track_pipe(FL_REAL(pipe)(fds), fds);
  auto real = [=] { return FL_REAL(pipe)(fds); };
  int r = open_slow<decltype(real), untracked>(CallSite{kCall_pipe}, real);
  return track_pipe(r, fds);
}

FL_EXPORT int pipe2(int fds[2], int flags) {
  if (FL_LIKELY(!armed(kFamOpen))) return track_pipe(FL_REAL(pipe2)(fds, flags), fds);
  auto real = [=] { return FL_REAL(pipe2)(fds, flags); };
  int r = open_slow<decltype(real), untracked>(CallSite{kCall_pipe2}, real);
  return track_pipe(r, fds);
}

FL_EXPORT int close(int fd) {
  fd_invalidate(fd);
  return FL_REAL(close)(fd);
}

FL_EXPORT int close_range(unsigned int first, unsigned int last, int flags) {
  int r = FL_REAL(close_range)(first, last, flags);
  if (r == 0) fd_invalidate_range(first, last);
  return r;
}
