// @write: write, pwrite(64), writev, pwritev(2) on non-socket fds, and the stdio calls
// fwrite, fflush, fclose (glibc's stdio reaches the kernel without passing our write()).
#include <stdio.h>
#include <stdio_ext.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <unistd.h>

#include <type_traits>

#include "faultline_config.h"
#include "shim/apply.h"
#include "shim/engine/durability.h"
#include "shim/engine/fd_table.h"
#include "shim/engine/file_rate.h"
#include "shim/io_adapters.h"

namespace faultline::shim {
namespace {

template <class Fn>
[[gnu::noinline]] FL_COLD ssize_t buf_write_decide(std::uint32_t call, int fd, const void* buf,
                                                   size_t count, Fn real) {
  if (fd_call_quiet(call, fd)) return real(buf, count);  // no fault can match (engine.h)
  Guard guard;
  if (!guard.entered() || only_net_and_not_socket(guard, kFamWrite, fd)) return real(buf, count);
  CallArgs args{call, fd};
  args.size = count;
  args.has_size = true;
  BufWrite<Fn> io{buf, count, real};
  return io_slow_path(guard, args, io);
}

// A call no fault names (pwrite under a fault naming only `write`) goes to the real call from
// here, a frame too small to cost the deciding path's prologue.
template <class Fn>
FL_COLD ssize_t buf_write_slow(std::uint32_t call, int fd, const void* buf, size_t count, Fn real) {
  if (FL_LIKELY(!io_call_named_by_none(call))) return buf_write_decide(call, fd, buf, count, real);
  return run_real(real, buf, count);
}

template <class Fn>
FL_COLD ssize_t iov_write_slow(std::uint32_t call, int fd, const struct iovec* iov, int cnt,
                               Fn real) {
  if (io_call_named_by_none(call)) return real(iov, cnt);
  if (fd_call_quiet(call, fd)) return real(iov, cnt);
  Guard guard;
  if (!guard.entered() || only_net_and_not_socket(guard, kFamWrite, fd)) return real(iov, cnt);
  CallArgs args{call, fd};
  // The array is read (fault-safely) only once a rule's selectors match; a vector the kernel
  // refuses (bad count, unreadable array) goes to it undecided, so the program gets exactly
  // the kernel's answer.
  args.vec = iov;
  args.vec_count = cnt;
  args.size_from = iov_args_size;
  IovWrite<Fn> io{iov, cnt, args.size, real};
  return io_slow_path(guard, args, io);
}

// copy_file_range/sendfile: the bytes move inside the kernel, so there is no buffer to
// corrupt (the compiler refuses `corrupt` for them); short and quota shorten the length the
// kernel is given. They apply to what the copy can really move: cp asks for SSIZE_MAX and gets
// what the source has left, so `short = "50%"` computed on the count would let everything
// through. `size()` is min(count, bytes left in a regular source file past the offset).
template <class Off>
std::uint64_t copy_movable(int in_fd, const Off* off, std::size_t count);

template <class Off, class Fn>  // ssize_t(size_t)
struct KernelCopy {
  static constexpr bool kSend = true;
  std::size_t count;
  int in_fd;
  const Off* off;
  Fn real;
  // Looked up only once a fault decided to act (two syscalls), never for a call that passes.
  mutable std::uint64_t movable = UINT64_MAX;
  std::uint64_t size() const {
    if (movable == UINT64_MAX) movable = copy_movable(in_fd, off, count);
    return movable;
  }
  ssize_t run() { return real(count); }
  ssize_t run_limited(std::uint64_t n) { return real(static_cast<std::size_t>(n)); }
  ssize_t run_corrupted(const Decision&) { return real(count); }
};

// The offset is read fault-safely (a wild pointer is the kernel's EFAULT to report); without
// one, the source fd's own position counts. Any doubt leaves the count as it is.
template <class Off>
std::uint64_t copy_movable(int in_fd, const Off* off, std::size_t count) {
  struct stat st;
  if (fstat(in_fd, &st) != 0 || !S_ISREG(st.st_mode)) return count;
  Off pos = 0;
  if (off) {
    if (safe_read(&pos, off, sizeof pos) != SafeCopy::kOk) return count;
  } else {
    const int saved = errno;
    pos = static_cast<Off>(lseek(in_fd, 0, SEEK_CUR));
    errno = saved;
    if (pos < 0) return count;
  }
  if (pos < 0 || st.st_size <= pos) return 0;
  const std::uint64_t left = static_cast<std::uint64_t>(st.st_size - pos);
  return left < count ? left : count;
}

template <class Off, class Fn>
FL_COLD ssize_t copy_slow(std::uint32_t call, int out_fd, int in_fd, const Off* off, size_t count,
                          Fn real) {
  if (io_call_named_by_none(call)) return real(count);
  Guard guard;
  if (!guard.entered()) return real(count);
  CallArgs args{call, out_fd};
  args.size = count;
  args.has_size = true;
  KernelCopy<Off, Fn> io{count, in_fd, off, real};
  return io_slow_path(guard, args, io);
}

int stream_fd(FILE* stream) { return stream ? fileno_unlocked(stream) : -1; }

FL_COLD size_t fwrite_slow(const void* ptr, size_t size, size_t n, FILE* stream) {
  Guard guard;
  if (!guard.entered() || size == 0 || n == 0) return FL_REAL(fwrite)(ptr, size, n, stream);
  CallArgs args{kCall_fwrite, stream_fd(stream)};
  // size * n past 2^64 is no request libc can serve: to the real fwrite, undecided.
  if (__builtin_mul_overflow(size, n, &args.size)) return FL_REAL(fwrite)(ptr, size, n, stream);
  args.has_size = true;
  // Byte-level decisions map onto whole items, the unit fwrite reports in.
  auto items_write = [&](const void* p, size_t bytes) -> ssize_t {
    size_t items = FL_REAL(fwrite)(p, size, bytes / size, stream);
    return static_cast<ssize_t>(items * size);
  };
  // A failed stream after what fit (fail_as.h: the short count, ferror, errno).
  auto limited = [&](std::uint64_t bytes, int err) -> size_t {
    size_t items = FL_REAL(fwrite)(ptr, size, static_cast<size_t>(bytes / size), stream);
    return fail_as<size_t>(kCall_fwrite, {err}, {.stream = stream, .items = items});
  };
  Decision d;
  if (!decide(guard, args, d)) return FL_REAL(fwrite)(ptr, size, n, stream);
  if (d.quota) {
    std::uint64_t room = quota_reserve(d, args.size);
    if (room == args.size) {
      size_t done = FL_REAL(fwrite)(ptr, size, n, stream);
      quota_release(d, args.size - done * size);
      return done;
    }
    if (!quota_claim(d)) {
      quota_release(d, room);
      return FL_REAL(fwrite)(ptr, size, n, stream);
    }
    if (!apply_delay(guard, d, args)) {  // lifted while held: the call runs unfaulted
      quota_release(d, room);
      emit_event(d, args, -1);
      return FL_REAL(fwrite)(ptr, size, n, stream);
    }
    d.action = room ? kActQuota : kActError;
    d.error = d.error ? d.error : ENOSPC;
    emit_event(d, args, event_bytes(room / size * size));
    quota_release(d, room % size);
    return limited(room, d.error);
  }
  // bandwidth: held as long as the bytes need at the file's rate (file_rate.h).
  if (d.action == kActBandwidth) d.delay_ns += file_bandwidth_ns(d, args.fd, args.size);
  apply_delay(guard, d, args);
  switch (d.action) {
    case kActError:
      emit_event(d, args, -1);
      return fail_as<size_t>(kCall_fwrite, cause_of(d), {.stream = stream});
    case kActShort: {
      std::uint64_t bytes = short_length(d, args.size);
      emit_event(d, args, event_bytes(bytes / size * size));
      // fwrite has no partial success: a short count means the stream failed.
      return limited(bytes, d.error ? d.error : EIO);
    }
    case kActCorrupt: {
      emit_event(d, args, event_bytes(args.size));
      ssize_t r = write_corrupted_copy(d, ptr, args.size, items_write);
      return r > 0 ? static_cast<size_t>(r) / size : 0;
    }
    case kActCrash:
      apply_crash(d, args, [&] {
        return static_cast<std::int64_t>(FL_REAL(fwrite)(ptr, size, n, stream) * size);
      });
    default:
      emit_event(d, args, -1);
      return FL_REAL(fwrite)(ptr, size, n, stream);
  }
}

// fflush and fclose: an injected error discards the buffered data (__fpurge), as a device
// error would lose it, and reports EOF with errno and the error flag (fail_as.h). fclose
// still frees the stream, so only errno is left to set.
template <class Fn>
FL_COLD int stream_end_slow(std::uint32_t call, FILE* stream, Fn real) {
  Guard guard;
  if (!guard.entered()) return real();
  CallArgs args{call, stream_fd(stream)};
  Decision d;
  if (!decide(guard, args, d) || !d.inject) return real();
  return apply_decision(guard, d, args, real, [&](const Decision& dd) {
    if (stream) __fpurge(stream);
    const bool closed = call == kCall_fclose;
    if (closed) real();
    return fail_as<int>(call, cause_of(dd), {.stream = closed ? nullptr : stream});
  });
}

}  // namespace
}  // namespace faultline::shim

using namespace faultline;
using namespace faultline::shim;

// write and writev serve @net too (on sockets): armed by either family, still one load. Under
// [durability] each real call first saves what it overwrites (durability.h): inside the `real`
// lambda, so that it happens exactly when, and for what, the kernel is really asked to write.
// Without it, a call the fd's cached verdict lets through (engine.h, fd_call_quiet) goes to
// the real function from the wrapper itself, before any frame is built; with it, the slow
// path asks the verdict and runs the lambda.
namespace {
constexpr std::uint32_t kWriteArm = kFamWrite | kFamDurable;

// The bytes an iovec asks for, read fault-safely (0 when the kernel would refuse the vector).
std::uint64_t iov_bytes(const struct iovec* iov, int cnt) {
  CallArgs args{kCall_writev, -1};
  args.vec = iov;
  args.vec_count = cnt;
  std::uint64_t total = 0;
  return iov_args_size(args, total) ? total : 0;
}

bool rwf_sync(int flags) { return flags & (RWF_DSYNC | RWF_SYNC); }
}  // namespace

FL_EXPORT ssize_t write(int fd, const void* buf, size_t count) {
  const ArmedNow now = armed_now();
  if (FL_LIKELY(!(now.families & (kWriteArm | kFamNet)))) return FL_REAL(write)(fd, buf, count);
  if (!(now.families & kFamDurable) && fd_call_quiet_counted(kCall_write, fd, now))
    return FL_REAL(write)(fd, buf, count);
  return buf_write_slow(kCall_write, fd, buf, count, [fd](const void* b, size_t n) {
    return durable_write(fd, -1, n, false, [&] { return FL_REAL(write)(fd, b, n); });
  });
}

// pwrite and pwrite64 (sendfile and sendfile64) have one signature on LP64: with the real
// function a value rather than a lambda's own type, each pair's slow path is one instantiation
// (about 1.8 KB each, docs/performance.md, "Size"). Each wrapper still calls its own real
// function, so another interposer of only one of the pair is honoured.
using PwriteFn = ssize_t (*)(int, const void*, size_t, off64_t);
static_assert(std::is_same_v<decltype(FL_REAL(pwrite)), PwriteFn> &&
              std::is_same_v<decltype(FL_REAL(pwrite64)), PwriteFn>);
struct PwriteReal {
  PwriteFn fn;
  int fd;
  off64_t off;
  ssize_t operator()(const void* b, size_t n) const {
    return durable_write(fd, off, n, false, [&] { return fn(fd, b, n, off); });
  }
};

using SendfileFn = ssize_t (*)(int, int, off64_t*, size_t);
static_assert(std::is_same_v<decltype(FL_REAL(sendfile)), SendfileFn> &&
              std::is_same_v<decltype(FL_REAL(sendfile64)), SendfileFn>);
struct SendfileReal {
  SendfileFn fn;
  int out_fd;
  int in_fd;
  off64_t* offset;
  ssize_t operator()(size_t n) const {
    return durable_write(out_fd, -1, n, false, [&] { return fn(out_fd, in_fd, offset, n); });
  }
};

FL_EXPORT ssize_t pwrite(int fd, const void* buf, size_t count, off_t off) {
  const ArmedNow now = armed_now();
  if (FL_LIKELY(!(now.families & (kWriteArm)))) return FL_REAL(pwrite)(fd, buf, count, off);
  if (!(now.families & kFamDurable) && fd_call_quiet_counted(kCall_pwrite, fd, now))
    return FL_REAL(pwrite)(fd, buf, count, off);
  return buf_write_slow(kCall_pwrite, fd, buf, count, PwriteReal{FL_REAL(pwrite), fd, off});
}

FL_EXPORT ssize_t pwrite64(int fd, const void* buf, size_t count, off64_t off) {
  const ArmedNow now = armed_now();
  if (FL_LIKELY(!(now.families & (kWriteArm)))) return FL_REAL(pwrite64)(fd, buf, count, off);
  if (!(now.families & kFamDurable) && fd_call_quiet_counted(kCall_pwrite64, fd, now))
    return FL_REAL(pwrite64)(fd, buf, count, off);
  return buf_write_slow(kCall_pwrite64, fd, buf, count, PwriteReal{FL_REAL(pwrite64), fd, off});
}

FL_EXPORT ssize_t writev(int fd, const struct iovec* iov, int cnt) {
  const ArmedNow now = armed_now();
  if (FL_LIKELY(!(now.families & (kWriteArm | kFamNet)))) return FL_REAL(writev)(fd, iov, cnt);
  if (!(now.families & kFamDurable) && fd_call_quiet_counted(kCall_writev, fd, now))
    return FL_REAL(writev)(fd, iov, cnt);
  return iov_write_slow(kCall_writev, fd, iov, cnt, [fd](const struct iovec* v, int c) {
    if (!durability_on()) return FL_REAL(writev)(fd, v, c);
    return durable_write(fd, -1, iov_bytes(v, c), false, [&] { return FL_REAL(writev)(fd, v, c); });
  });
}

FL_EXPORT ssize_t pwritev(int fd, const struct iovec* iov, int cnt, off_t off) {
  const ArmedNow now = armed_now();
  if (FL_LIKELY(!(now.families & (kWriteArm)))) return FL_REAL(pwritev)(fd, iov, cnt, off);
  if (!(now.families & kFamDurable) && fd_call_quiet_counted(kCall_pwritev, fd, now))
    return FL_REAL(pwritev)(fd, iov, cnt, off);
  return iov_write_slow(kCall_pwritev, fd, iov, cnt, [fd, off](const struct iovec* v, int c) {
    if (!durability_on()) return FL_REAL(pwritev)(fd, v, c, off);
    return durable_write(fd, off, iov_bytes(v, c), false,
                         [&] { return FL_REAL(pwritev)(fd, v, c, off); });
  });
}

FL_EXPORT ssize_t pwritev2(int fd, const struct iovec* iov, int cnt, off_t off, int flags) {
  const ArmedNow now = armed_now();
  if (FL_LIKELY(!(now.families & (kWriteArm)))) return FL_REAL(pwritev2)(fd, iov, cnt, off, flags);
  if (!(now.families & kFamDurable) && fd_call_quiet_counted(kCall_pwritev2, fd, now))
    return FL_REAL(pwritev2)(fd, iov, cnt, off, flags);
  return iov_write_slow(
      kCall_pwritev2, fd, iov, cnt, [fd, off, flags](const struct iovec* v, int c) {
        if (!durability_on()) return FL_REAL(pwritev2)(fd, v, c, off, flags);
        // off -1: the fd's position, as pwritev2 itself reads it.
        const std::int64_t at = (flags & RWF_APPEND) ? kDurableAtEnd : off < 0 ? -1 : off;
        return durable_write(fd, at, iov_bytes(v, c), rwf_sync(flags),
                             [&] { return FL_REAL(pwritev2)(fd, v, c, off, flags); });
      });
}

FL_EXPORT ssize_t copy_file_range(int fd_in, off64_t* off_in, int fd_out, off64_t* off_out,
                                  size_t len, unsigned flags) {
  if (FL_LIKELY(!armed(kWriteArm)))
    return FL_REAL(copy_file_range)(fd_in, off_in, fd_out, off_out, len, flags);
  return copy_slow(kCall_copy_file_range, fd_out, fd_in, off_in, len, [=](size_t n) {
    // The destination offset is the caller's (read fault-safely) or the fd's position.
    off64_t at = -1;
    if (off_out && safe_read(&at, off_out, sizeof at) != SafeCopy::kOk) at = -1;
    return durable_write(fd_out, at, n, false, [&] {
      return FL_REAL(copy_file_range)(fd_in, off_in, fd_out, off_out, n, flags);
    });
  });
}

FL_EXPORT ssize_t sendfile(int out_fd, int in_fd, off_t* offset, size_t count) {
  if (FL_LIKELY(!armed(kWriteArm))) return FL_REAL(sendfile)(out_fd, in_fd, offset, count);
  return copy_slow(kCall_sendfile, out_fd, in_fd, offset, count,
                   SendfileReal{FL_REAL(sendfile), out_fd, in_fd, offset});
}

FL_EXPORT ssize_t sendfile64(int out_fd, int in_fd, off64_t* offset, size_t count) {
  if (FL_LIKELY(!armed(kWriteArm))) return FL_REAL(sendfile64)(out_fd, in_fd, offset, count);
  return copy_slow(kCall_sendfile64, out_fd, in_fd, offset, count,
                   SendfileReal{FL_REAL(sendfile64), out_fd, in_fd, offset});
}

// stdio reaches the fd through glibc's internal write: what a call may flush (the buffered
// bytes and the new ones) is saved before it (durability.h).
FL_EXPORT size_t fwrite(const void* ptr, size_t size, size_t n, FILE* stream) {
  if (FL_LIKELY(!armed(kWriteArm))) return FL_REAL(fwrite)(ptr, size, n, stream);
  if (durability_on()) durable_before_stream_write(stream, static_cast<std::uint64_t>(size) * n);
  if (!armed(kFamWrite)) return FL_REAL(fwrite)(ptr, size, n, stream);
  return fwrite_slow(ptr, size, n, stream);
}

FL_EXPORT int fflush(FILE* stream) {
  if (FL_LIKELY(!armed(kWriteArm))) return FL_REAL(fflush)(stream);
  if (durability_on()) durable_before_stream_write(stream, 0);
  if (!armed(kFamWrite)) return FL_REAL(fflush)(stream);
  return stream_end_slow(kCall_fflush, stream, [stream] { return FL_REAL(fflush)(stream); });
}

FL_EXPORT int fclose(FILE* stream) {
  // glibc closes the fd internally, past our close(): forget what the fd was now.
  if (stream) fd_invalidate(fileno_unlocked(stream));
  if (FL_LIKELY(!armed(kWriteArm))) return FL_REAL(fclose)(stream);
  if (durability_on() && stream) {
    durable_before_stream_write(stream, 0);
    durable_fd_closed(fileno_unlocked(stream));
  }
  if (!armed(kFamWrite)) return FL_REAL(fclose)(stream);
  return stream_end_slow(kCall_fclose, stream, [stream] { return FL_REAL(fclose)(stream); });
}
