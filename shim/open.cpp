// @open: the calls that make fds (open, openat, creat, dup*, pipe*), plus the bookkeeping
// calls that keep the fd table true: close_range, closefrom, freopen(64), fdopen, socketpair
// and fcntl(F_DUPFD*) (close, an @fs call, keeps it true in shim/fs.cpp). Every new fd number
// invalidates its slot: the number may have been closed behind our back (raw syscalls, libc
// internals). What no wrapper sees (a raw syscall) is caught by the identity check before an
// injection (fd_table.h).
#include <stdarg.h>
#include <unistd.h>

#include "shim/engine/durability.h"
#include "shim/errno_call.h"

namespace faultline::shim {
namespace {

bool takes_mode(int flags) { return (flags & O_CREAT) || (flags & O_TMPFILE) == O_TMPFILE; }

// `track_new_fd` for calls returning an fd, `untracked` for pipe (whose fds come back in an array).
template <class Fn, int (*Track)(int) = track_new_fd>
int open_slow(const CallArgs& args, Fn real) {
  return errno_call_slow(args, real, Track);
}

CallArgs path_args(std::uint32_t call, int dirfd, const char* path) {
  CallArgs args{call};
  args.dirfd = dirfd;
  args.path = path;
  return args;
}

constexpr std::uint32_t kOpenArm = kFamOpen | kFamDurable;

// An open under [durability] (durability.h): the path is resolved and O_TRUNC's victim saved
// before the real call; the new fd is learnt and a created file recorded inside `real`, right
// after it, so that a crash or power cut "after" the open finds the record.
template <class Fn>
int durable_open(std::uint32_t call, int dirfd, const char* path, int flags, Fn real) {
  if (!durability_on()) return open_slow(path_args(call, dirfd, path), real);
  DurableOpen op;
  durable_open_before(op, dirfd, path, flags);
  auto tracked = [&] {
    const int fd = real();
    durable_open_after(op, fd);
    return fd;
  };
  if (!armed(kFamOpen)) return track_new_fd(tracked());
  return open_slow(path_args(call, dirfd, path), tracked);
}

// dup and friends: the new number is the same open file as the old one.
int durable_dup(int from, int fd) {
  if (fd >= 0 && durability_on()) durable_fd_copied(from, fd);
  return fd;
}

}  // namespace
}  // namespace faultline::shim

using namespace faultline;
using namespace faultline::shim;

#define FL_MODE_ARG(flags)     \
  mode_t mode = 0;             \
  if (takes_mode(flags)) {     \
    va_list ap;                \
    va_start(ap, flags);       \
    mode = va_arg(ap, mode_t); \
    va_end(ap);                \
  }

FL_EXPORT int open(const char* path, int flags, ...) {
  FL_MODE_ARG(flags)
  if (FL_LIKELY(!armed(kOpenArm))) return track_new_fd(FL_REAL(open)(path, flags, mode));
  return durable_open(kCall_open, AT_FDCWD, path, flags,
                      [=] { return FL_REAL(open)(path, flags, mode); });
}

FL_EXPORT int open64(const char* path, int flags, ...) {
  FL_MODE_ARG(flags)
  if (FL_LIKELY(!armed(kOpenArm))) return track_new_fd(FL_REAL(open64)(path, flags, mode));
  return durable_open(kCall_open64, AT_FDCWD, path, flags,
                      [=] { return FL_REAL(open64)(path, flags, mode); });
}

FL_EXPORT int openat(int dirfd, const char* path, int flags, ...) {
  FL_MODE_ARG(flags)
  if (FL_LIKELY(!armed(kOpenArm))) return track_new_fd(FL_REAL(openat)(dirfd, path, flags, mode));
  return durable_open(kCall_openat, dirfd, path, flags,
                      [=] { return FL_REAL(openat)(dirfd, path, flags, mode); });
}

FL_EXPORT int openat64(int dirfd, const char* path, int flags, ...) {
  FL_MODE_ARG(flags)
  if (FL_LIKELY(!armed(kOpenArm))) return track_new_fd(FL_REAL(openat64)(dirfd, path, flags, mode));
  return durable_open(kCall_openat64, dirfd, path, flags,
                      [=] { return FL_REAL(openat64)(dirfd, path, flags, mode); });
}

FL_EXPORT int creat(const char* path, mode_t mode) {
  if (FL_LIKELY(!armed(kOpenArm))) return track_new_fd(FL_REAL(creat)(path, mode));
  return durable_open(kCall_creat, AT_FDCWD, path, O_CREAT | O_WRONLY | O_TRUNC,
                      [=] { return FL_REAL(creat)(path, mode); });
}

FL_EXPORT int __open_2(const char* path, int flags) {
  if (FL_LIKELY(!armed(kOpenArm))) return track_new_fd(FL_REAL(__open_2)(path, flags));
  return durable_open(kCall___open_2, AT_FDCWD, path, flags,
                      [=] { return FL_REAL(__open_2)(path, flags); });
}

FL_EXPORT int __open64_2(const char* path, int flags) {
  if (FL_LIKELY(!armed(kOpenArm))) return track_new_fd(FL_REAL(__open64_2)(path, flags));
  return durable_open(kCall___open64_2, AT_FDCWD, path, flags,
                      [=] { return FL_REAL(__open64_2)(path, flags); });
}

FL_EXPORT int dup(int fd) {
  if (FL_LIKELY(!armed(kOpenArm))) return track_new_fd(FL_REAL(dup)(fd));
  if (!armed(kFamOpen)) return durable_dup(fd, track_new_fd(FL_REAL(dup)(fd)));
  return durable_dup(fd, open_slow(CallArgs{kCall_dup, fd}, [=] { return FL_REAL(dup)(fd); }));
}

FL_EXPORT int dup2(int fd, int fd2) {
  if (FL_LIKELY(!armed(kOpenArm))) return track_new_fd(FL_REAL(dup2)(fd, fd2));
  if (!armed(kFamOpen)) return durable_dup(fd, track_new_fd(FL_REAL(dup2)(fd, fd2)));
  CallArgs args{kCall_dup2, fd};
  args.fd2 = fd2;
  return durable_dup(fd, open_slow(args, [=] { return FL_REAL(dup2)(fd, fd2); }));
}

FL_EXPORT int dup3(int fd, int fd2, int flags) {
  if (FL_LIKELY(!armed(kOpenArm))) return track_new_fd(FL_REAL(dup3)(fd, fd2, flags));
  if (!armed(kFamOpen)) return durable_dup(fd, track_new_fd(FL_REAL(dup3)(fd, fd2, flags)));
  CallArgs args{kCall_dup3, fd};
  args.fd2 = fd2;
  return durable_dup(fd, open_slow(args, [=] { return FL_REAL(dup3)(fd, fd2, flags); }));
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
  int r = open_slow<decltype(real), untracked>(CallArgs{kCall_pipe}, real);
  return track_pipe(r, fds);
}

FL_EXPORT int pipe2(int fds[2], int flags) {
  if (FL_LIKELY(!armed(kFamOpen))) return track_pipe(FL_REAL(pipe2)(fds, flags), fds);
  auto real = [=] { return FL_REAL(pipe2)(fds, flags); };
  int r = open_slow<decltype(real), untracked>(CallArgs{kCall_pipe2}, real);
  return track_pipe(r, fds);
}

FL_EXPORT int close_range(unsigned int first, unsigned int last, int flags) noexcept {
  int r = FL_REAL(close_range)(first, last, flags);
  // CLOSE_RANGE_CLOEXEC closes nothing; forgetting those fds costs one refill each, no more.
  if (r == 0) fd_invalidate_range(first, last);
  if (r == 0 && !(flags & CLOSE_RANGE_CLOEXEC) && FL_UNLIKELY(durability_on()))
    durable_fd_closed_range(first, last);
  return r;
}

// ---- what else changes fds behind our close/open (bookkeeping, never faulted) -------------
// These run armed or not. Entries are tagged with the rules epoch, and re-arming is an edit
// (a new epoch), but an unarmed family is not an unused table: while any @net fault is armed
// every write looks up its fd's kind, under one epoch, while @write's wrappers stay on their
// fast path (docs/architecture.md, "The fd table"). Each costs one load of a chunk pointer
// per fd it touches, nothing more when the table was never used.

// glibc closes its fds with the internal __close_range / __close_nocancel, past close_range.
FL_EXPORT void closefrom(int lowfd) noexcept {
  FL_REAL(closefrom)(lowfd);
  if (lowfd < 0) lowfd = 0;
  fd_invalidate_range(static_cast<unsigned>(lowfd), ~0u);
  if (FL_UNLIKELY(durability_on())) durable_fd_closed_range(static_cast<unsigned>(lowfd), ~0u);
}

namespace {
// freopen closes the stream's fd and opens the new file on the same number (glibc dup3s it
// there with its internal __dup3): both the old number and the stream's new one are new files.
FILE* track_reopen(FILE* result, int old_fd) {
  if (old_fd >= 0) fd_invalidate(old_fd);
  if (result) {
    const int fd = fileno_unlocked(result);
    if (fd != old_fd) track_new_fd(fd);
  }
  return result;
}
}  // namespace

FL_EXPORT FILE* freopen(const char* path, const char* mode, FILE* stream) {
  const int old_fd = stream ? fileno_unlocked(stream) : -1;
  return track_reopen(FL_REAL(freopen)(path, mode, stream), old_fd);
}

FL_EXPORT FILE* freopen64(const char* path, const char* mode, FILE* stream) {
  const int old_fd = stream ? fileno_unlocked(stream) : -1;
  return track_reopen(FL_REAL(freopen64)(path, mode, stream), old_fd);
}

// The fd does not change, but a program that made it behind our back (a raw syscall) hands it
// to stdio here: learn it afresh.
FL_EXPORT FILE* fdopen(int fd, const char* mode) noexcept {
  FILE* stream = FL_REAL(fdopen)(fd, mode);
  if (stream) fd_invalidate(fd);
  return stream;
}

FL_EXPORT int socketpair(int domain, int type, int protocol, int fds[2]) noexcept {
  return track_pipe(FL_REAL(socketpair)(domain, type, protocol, fds), fds);
}

namespace {
// F_DUPFD and F_DUPFD_CLOEXEC return a new fd; every other command returns no fd and passes
// through with nothing but a compare added.
bool makes_fd(int cmd) { return cmd == F_DUPFD || cmd == F_DUPFD_CLOEXEC; }
}  // namespace

// The third argument is forwarded as the pointer-sized word glibc's own fcntl reads
// (va_arg(ap, void*)) for every command: an int (F_SETFL), a struct flock* (F_SETLKW, which
// stays the real call's cancellation point), or nothing at all (F_GETFL).
FL_EXPORT int fcntl(int fd, int cmd, ...) {
  va_list ap;
  va_start(ap, cmd);
  void* const arg = va_arg(ap, void*);
  va_end(ap);
  if (FL_LIKELY(!makes_fd(cmd))) return FL_REAL(fcntl)(fd, cmd, arg);
  return durable_dup(fd, track_new_fd(FL_REAL(fcntl)(fd, cmd, arg)));
}

FL_EXPORT int fcntl64(int fd, int cmd, ...) {
  va_list ap;
  va_start(ap, cmd);
  void* const arg = va_arg(ap, void*);
  va_end(ap);
  if (FL_LIKELY(!makes_fd(cmd))) return FL_REAL(fcntl64)(fd, cmd, arg);
  return durable_dup(fd, track_new_fd(FL_REAL(fcntl64)(fd, cmd, arg)));
}
