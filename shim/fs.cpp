// @fs: the calls that change directory entries and file sizes (rename, link, symlink, unlink,
// mkdir, rmdir, truncate, ftruncate, fallocate, posix_fallocate, and their *at and *64 forms)
// and close. Each fails, stalls or crashes like any errno call; `path` matches any path the
// call names (both of rename and link, resolved against their dirfds), or the fd's path. The
// calls that reserve space (ftruncate past the end, fallocate, posix_fallocate) also draw
// from a `quota`, as writes do: a full disk refuses them with ENOSPC. close keeps the fd
// table true whatever a fault does: the fd is forgotten and really closed even when the fault
// reports EIO (what a close on NFS does: the fd is gone, the error is the write-back's).
#include <sys/stat.h>
#include <unistd.h>

#include "shim/apply.h"
#include "shim/engine/durability.h"
#include "shim/errno_call.h"

namespace faultline::shim {
namespace {

// A call's real body, by reference, for the deciding path: with it fs_slow and space_quota are
// one function for every @fs call instead of one instance per call and per [durability] form
// (about 30 of 0.5 KB, docs/performance.md, "Size"). The indirect call is paid only where a
// decision is made, beside it; the referenced body lives in the wrapper's frame for the call.
class RealCall {
 public:
  template <class Fn>
  RealCall(Fn& body)  // implicit: a wrapper hands over its lambda as it is
      : body_(&body), run_([](void* b) { return (*static_cast<Fn*>(b))(); }) {}
  int operator()() const { return run_(body_); }

 private:
  void* body_;
  int (*run_)(void*);
};

// A space call under a quota fault: the growth it reserves draws from the quota; a call that
// finds too little left fails whole with ENOSPC (a reservation is never partial), and gives
// back what it took. A call that fails by itself gives its bytes back too.
int space_quota(const Guard& guard, Decision& d, const CallArgs& args, RealCall real) {
  const std::uint64_t want = args.size;
  const std::uint64_t room = quota_reserve(d, want);
  if (room == want) {
    const int r = real();
    if (r != 0) quota_release(d, want);
    return r;
  }
  quota_release(d, room);
  if (!quota_claim(d)) return real();  // spent (times, max_faults): no longer limits
  if (!apply_delay(guard, d, args)) {  // lifted while held: the call runs unfaulted
    emit_event(d, args, -1);
    return real();
  }
  d.action = kActError;
  d.error = d.error ? d.error : ENOSPC;
  emit_event(d, args, 0);
  return fail_as<int>(args.call, cause_of(d));  // -1 and errno, or posix_fallocate's number
}

FL_COLD int fs_slow(const CallArgs& args, RealCall real) {
  if (call_named_by_none(args.call)) return real();  // its family armed for other calls
  Guard guard;
  if (!guard.entered()) return real();
  Decision d;
  if (!decide(guard, args, d)) return real();
  if (d.quota) return space_quota(guard, d, args, real);
  if (!d.inject) return real();
  return apply_decision(guard, d, args, real, fail_call<int>(args));
}

// An entry call (rename, link, symlink, unlink, mkdir, rmdir) in a session that tracks
// [durability] paths: `before` keeps what a power cut needs to undo it (a hidden link of what
// it removes or replaces), and the record follows the real call inside `real`, so that a crash
// or a cut right after the call finds it recorded. An injected error never runs the call, and
// records nothing. The site is built only when an @fs fault is armed.
template <class MakeArgs, class Before, class Fn>
FL_COLD int fs_entry(MakeArgs args, Before before, Fn real) {
  if (!durability_on()) return fs_slow(args(), real);
  auto tracked = [&] {
    DurableEntry entry = before();
    const int rc = real();
    durable_entry_after(entry, rc);
    return rc;
  };
  if (!armed(kFamFs)) return tracked();
  return fs_slow(args(), tracked);
}

// A size change (truncate, ftruncate, fallocate) in a session that tracks paths: what it cuts
// off or zeroes is saved before the real call.
template <class Before, class Fn>
auto size_tracked(Before before, Fn real) {
  return [=] {
    if (durability_on()) before();
    return real();
  };
}

// One path, relative to `dirfd`.
CallArgs path_args(std::uint32_t call, int dirfd, const char* path) {
  CallArgs args{call};
  args.dirfd = dirfd;
  args.path = path;
  return args;
}

// Two paths (rename, link; symlink: the link path first, its target second).
CallArgs two_path_args(std::uint32_t call, int dirfd, const char* path, int dirfd2,
                       const char* path2) {
  CallArgs args = path_args(call, dirfd, path);
  args.set_path2(dirfd2, path2);
  return args;
}

// Bytes a call that sets the file's end at `end` (or allocates [start, end)) reserves: what
// lies past the current end of file. Space inside the file, holes included, is not counted
// (a write there is not counted either unless it is written). Punching a hole or collapsing a
// range frees space: 0. Any doubt (an fd fstat refuses) counts nothing.
std::uint64_t growth(int fd, std::int64_t start, std::int64_t end) {
  struct stat st;
  const int saved = errno;
  const bool known = fstat(fd, &st) == 0;
  errno = saved;
  if (!known || end <= 0) return 0;
  const std::int64_t from = start > st.st_size ? start : st.st_size;
  return end > from ? static_cast<std::uint64_t>(end - from) : 0;
}

// The calls on an fd: first the fd's cached verdict (engine.h, fd_call_quiet).
template <class Fn>
FL_COLD int fd_space_slow(std::uint32_t call, int fd, std::int64_t start, std::int64_t end,
                          Fn real) {
  if (call_named_by_none_call(call) || fd_call_quiet(call, fd)) return real();
  CallArgs args{call, fd};
  args.size = growth(fd, start, end);
  args.has_size = true;
  return fs_slow(args, real);
}

bool frees_space(int mode) { return mode & (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_COLLAPSE_RANGE); }

std::int64_t range_end(std::int64_t off, std::int64_t len) {
  std::int64_t end;
  return __builtin_add_overflow(off, len, &end) ? 0 : end;
}

// What a power cut needs before fallocate changes a tracked file: the bytes a hole or a zeroed
// range destroys, the tail a collapsed or inserted range shifts, or the old size a growing
// allocation moves. A KEEP_SIZE allocation changes no byte a reader sees.
void durable_fallocate(int fd, int mode, std::int64_t off, std::int64_t len) {
  if (!durability_on()) return;
  if (mode & (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_ZERO_RANGE)) {
    durable_before_write(fd, off, static_cast<std::uint64_t>(len));
  } else if (mode & (FALLOC_FL_COLLAPSE_RANGE | FALLOC_FL_INSERT_RANGE)) {
    struct stat st;
    const int saved = errno;
    if (fstat(fd, &st) == 0 && st.st_size > off)
      durable_before_write(fd, off, static_cast<std::uint64_t>(st.st_size - off));
    errno = saved;
  } else if (!(mode & FALLOC_FL_KEEP_SIZE)) {
    durable_size_change(fd, range_end(off, len));
  }
}

// close: the fd is forgotten right before the real close, whatever the fault does, exactly as
// the unarmed path does. The fault decides first (its `path` is the fd's, which the close
// ends), and its event is written while the fd still names the file.
FL_COLD int close_slow(int fd) {
  auto real = [fd] {
    fd_invalidate(fd);
    return FL_REAL(close)(fd);
  };
  if (fd_call_quiet(kCall_close, fd)) return real();
  Guard guard;
  if (!guard.entered()) return real();
  const CallArgs args{kCall_close, fd};
  Decision d;
  if (!decide(guard, args, d) || !d.inject) return real();
  apply_delay(guard, d, args);
  if (d.action == kActCrash) apply_crash_event_first(d, args, real);
  emit_event(d, args, -1);
  if (d.action != kActError) return real();
  // The fd is gone, the error is reported: what Linux does when NFS's write-back fails.
  real();
  return fail_as<int>(kCall_close, cause_of(d));
}

}  // namespace
}  // namespace faultline::shim

using namespace faultline;
using namespace faultline::shim;

FL_EXPORT int rename(const char* oldpath, const char* newpath) {
  if (FL_LIKELY(!armed(kFamFs | kFamDurable))) return FL_REAL(rename)(oldpath, newpath);
  return fs_entry([=] { return two_path_args(kCall_rename, AT_FDCWD, oldpath, AT_FDCWD, newpath); },
                  [=] { return durable_before_rename(AT_FDCWD, oldpath, AT_FDCWD, newpath); },
                  [=] { return FL_REAL(rename)(oldpath, newpath); });
}

FL_EXPORT int renameat(int olddirfd, const char* oldpath, int newdirfd, const char* newpath) {
  if (FL_LIKELY(!armed(kFamFs | kFamDurable)))
    return FL_REAL(renameat)(olddirfd, oldpath, newdirfd, newpath);
  return fs_entry(
      [=] { return two_path_args(kCall_renameat, olddirfd, oldpath, newdirfd, newpath); },
      [=] { return durable_before_rename(olddirfd, oldpath, newdirfd, newpath); },
      [=] { return FL_REAL(renameat)(olddirfd, oldpath, newdirfd, newpath); });
}

// RENAME_EXCHANGE swaps two entries: it is not undone by a cut (docs/limits.md).
FL_EXPORT int renameat2(int olddirfd, const char* oldpath, int newdirfd, const char* newpath,
                        unsigned flags) {
  if (FL_LIKELY(!armed(kFamFs | kFamDurable)))
    return FL_REAL(renameat2)(olddirfd, oldpath, newdirfd, newpath, flags);
  return fs_entry(
      [=] { return two_path_args(kCall_renameat2, olddirfd, oldpath, newdirfd, newpath); },
      [=] {
        return (flags & RENAME_EXCHANGE) != 0
                   ? DurableEntry{}
                   : durable_before_rename(olddirfd, oldpath, newdirfd, newpath);
      },
      [=] { return FL_REAL(renameat2)(olddirfd, oldpath, newdirfd, newpath, flags); });
}

FL_EXPORT int link(const char* oldpath, const char* newpath) {
  if (FL_LIKELY(!armed(kFamFs | kFamDurable))) return FL_REAL(link)(oldpath, newpath);
  return fs_entry([=] { return two_path_args(kCall_link, AT_FDCWD, oldpath, AT_FDCWD, newpath); },
                  [=] { return durable_before_link(AT_FDCWD, newpath); },
                  [=] { return FL_REAL(link)(oldpath, newpath); });
}

FL_EXPORT int linkat(int olddirfd, const char* oldpath, int newdirfd, const char* newpath,
                     int flags) {
  if (FL_LIKELY(!armed(kFamFs | kFamDurable)))
    return FL_REAL(linkat)(olddirfd, oldpath, newdirfd, newpath, flags);
  return fs_entry([=] { return two_path_args(kCall_linkat, olddirfd, oldpath, newdirfd, newpath); },
                  [=] { return durable_before_link(newdirfd, newpath); },
                  [=] { return FL_REAL(linkat)(olddirfd, oldpath, newdirfd, newpath, flags); });
}

// The link path is the one created; the target is a string the kernel stores (resolved, for
// `path`, as if relative to the working directory).
FL_EXPORT int symlink(const char* target, const char* linkpath) {
  if (FL_LIKELY(!armed(kFamFs | kFamDurable))) return FL_REAL(symlink)(target, linkpath);
  return fs_entry(
      [=] { return two_path_args(kCall_symlink, AT_FDCWD, linkpath, AT_FDCWD, target); },
      [=] { return durable_before_create(AT_FDCWD, linkpath, false); },
      [=] { return FL_REAL(symlink)(target, linkpath); });
}

FL_EXPORT int symlinkat(const char* target, int newdirfd, const char* linkpath) {
  if (FL_LIKELY(!armed(kFamFs | kFamDurable)))
    return FL_REAL(symlinkat)(target, newdirfd, linkpath);
  return fs_entry(
      [=] { return two_path_args(kCall_symlinkat, newdirfd, linkpath, AT_FDCWD, target); },
      [=] { return durable_before_create(newdirfd, linkpath, false); },
      [=] { return FL_REAL(symlinkat)(target, newdirfd, linkpath); });
}

FL_EXPORT int unlink(const char* path) {
  if (FL_LIKELY(!armed(kFamFs | kFamDurable))) return FL_REAL(unlink)(path);
  return fs_entry([=] { return path_args(kCall_unlink, AT_FDCWD, path); },
                  [=] { return durable_before_unlink(AT_FDCWD, path, false); },
                  [=] { return FL_REAL(unlink)(path); });
}

FL_EXPORT int unlinkat(int dirfd, const char* path, int flags) {
  if (FL_LIKELY(!armed(kFamFs | kFamDurable))) return FL_REAL(unlinkat)(dirfd, path, flags);
  return fs_entry([=] { return path_args(kCall_unlinkat, dirfd, path); },
                  [=] { return durable_before_unlink(dirfd, path, (flags & AT_REMOVEDIR) != 0); },
                  [=] { return FL_REAL(unlinkat)(dirfd, path, flags); });
}

FL_EXPORT int mkdir(const char* path, mode_t mode) {
  if (FL_LIKELY(!armed(kFamFs | kFamDurable))) return FL_REAL(mkdir)(path, mode);
  return fs_entry([=] { return path_args(kCall_mkdir, AT_FDCWD, path); },
                  [=] { return durable_before_create(AT_FDCWD, path, true); },
                  [=] { return FL_REAL(mkdir)(path, mode); });
}

FL_EXPORT int mkdirat(int dirfd, const char* path, mode_t mode) {
  if (FL_LIKELY(!armed(kFamFs | kFamDurable))) return FL_REAL(mkdirat)(dirfd, path, mode);
  return fs_entry([=] { return path_args(kCall_mkdirat, dirfd, path); },
                  [=] { return durable_before_create(dirfd, path, true); },
                  [=] { return FL_REAL(mkdirat)(dirfd, path, mode); });
}

FL_EXPORT int rmdir(const char* path) {
  if (FL_LIKELY(!armed(kFamFs | kFamDurable))) return FL_REAL(rmdir)(path);
  return fs_entry([=] { return path_args(kCall_rmdir, AT_FDCWD, path); },
                  [=] { return durable_before_unlink(AT_FDCWD, path, true); },
                  [=] { return FL_REAL(rmdir)(path); });
}

// truncate by path: no quota (the file is not open; its growth is not looked up).
FL_EXPORT int truncate(const char* path, off_t length) {
  if (FL_LIKELY(!armed(kFamFs | kFamDurable))) return FL_REAL(truncate)(path, length);
  auto real = size_tracked([=] { durable_path_size_change(AT_FDCWD, path, length); },
                           [=] { return FL_REAL(truncate)(path, length); });
  return armed(kFamFs) ? fs_slow(path_args(kCall_truncate, AT_FDCWD, path), real) : real();
}

FL_EXPORT int truncate64(const char* path, off64_t length) {
  if (FL_LIKELY(!armed(kFamFs | kFamDurable))) return FL_REAL(truncate64)(path, length);
  auto real = size_tracked([=] { durable_path_size_change(AT_FDCWD, path, length); },
                           [=] { return FL_REAL(truncate64)(path, length); });
  return armed(kFamFs) ? fs_slow(path_args(kCall_truncate64, AT_FDCWD, path), real) : real();
}

FL_EXPORT int ftruncate(int fd, off_t length) {
  if (FL_LIKELY(!armed(kFamFs | kFamDurable))) return FL_REAL(ftruncate)(fd, length);
  auto real = size_tracked([=] { durable_size_change(fd, length); },
                           [=] { return FL_REAL(ftruncate)(fd, length); });
  return armed(kFamFs) ? fd_space_slow(kCall_ftruncate, fd, 0, length, real) : real();
}

FL_EXPORT int ftruncate64(int fd, off64_t length) {
  if (FL_LIKELY(!armed(kFamFs | kFamDurable))) return FL_REAL(ftruncate64)(fd, length);
  auto real = size_tracked([=] { durable_size_change(fd, length); },
                           [=] { return FL_REAL(ftruncate64)(fd, length); });
  return armed(kFamFs) ? fd_space_slow(kCall_ftruncate64, fd, 0, length, real) : real();
}

FL_EXPORT int fallocate(int fd, int mode, off_t off, off_t len) {
  if (FL_LIKELY(!armed(kFamFs | kFamDurable))) return FL_REAL(fallocate)(fd, mode, off, len);
  auto real = size_tracked([=] { durable_fallocate(fd, mode, off, len); },
                           [=] { return FL_REAL(fallocate)(fd, mode, off, len); });
  if (!armed(kFamFs)) return real();
  return fd_space_slow(kCall_fallocate, fd, off, frees_space(mode) ? 0 : range_end(off, len), real);
}

FL_EXPORT int fallocate64(int fd, int mode, off64_t off, off64_t len) {
  if (FL_LIKELY(!armed(kFamFs | kFamDurable))) return FL_REAL(fallocate64)(fd, mode, off, len);
  auto real = size_tracked([=] { durable_fallocate(fd, mode, off, len); },
                           [=] { return FL_REAL(fallocate64)(fd, mode, off, len); });
  if (!armed(kFamFs)) return real();
  return fd_space_slow(kCall_fallocate64, fd, off, frees_space(mode) ? 0 : range_end(off, len),
                       real);
}

FL_EXPORT int posix_fallocate(int fd, off_t off, off_t len) {
  if (FL_LIKELY(!armed(kFamFs | kFamDurable))) return FL_REAL(posix_fallocate)(fd, off, len);
  auto real = size_tracked([=] { durable_fallocate(fd, 0, off, len); },
                           [=] { return FL_REAL(posix_fallocate)(fd, off, len); });
  if (!armed(kFamFs)) return real();
  return fd_space_slow(kCall_posix_fallocate, fd, off, range_end(off, len), real);
}

FL_EXPORT int posix_fallocate64(int fd, off64_t off, off64_t len) {
  if (FL_LIKELY(!armed(kFamFs | kFamDurable))) return FL_REAL(posix_fallocate64)(fd, off, len);
  auto real = size_tracked([=] { durable_fallocate(fd, 0, off, len); },
                           [=] { return FL_REAL(posix_fallocate64)(fd, off, len); });
  if (!armed(kFamFs)) return real();
  return fd_space_slow(kCall_posix_fallocate64, fd, off, range_end(off, len), real);
}

// close was the fd table's bookkeeping before it was an @fs call, and still is: unarmed, the
// fd is forgotten and closed as ever. A session that tracks paths also forgets the fd's
// tracking slot.
FL_EXPORT int close(int fd) {
  if (FL_LIKELY(!armed(kFamFs | kFamDurable))) {
    fd_invalidate(fd);
    return FL_REAL(close)(fd);
  }
  if (durability_on()) durable_fd_closed(fd);
  if (!armed(kFamFs)) {
    fd_invalidate(fd);
    return FL_REAL(close)(fd);
  }
  return close_slow(fd);
}
