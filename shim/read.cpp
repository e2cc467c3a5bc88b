// @read: read, pread(64), readv, preadv on non-socket fds; read and readv on sockets for @net.
#include <unistd.h>

#include <type_traits>

#include "shim/io_adapters.h"

namespace faultline::shim {
namespace {

template <class Fn>
[[gnu::noinline]] FL_COLD ssize_t buf_read_decide(std::uint32_t call, int fd, void* buf,
                                                  size_t count, Fn real) {
  if (fd_call_quiet(call, fd)) return real(buf, count);  // its batch turns (engine.h)
  Guard guard;
  if (!guard.entered() || only_net_and_not_socket(guard, kFamRead, fd)) return real(buf, count);
  CallArgs args{call, fd};
  args.size = count;
  args.has_size = true;
  BufRead<Fn> io{buf, count, real};
  return io_slow_path(guard, args, io);
}

// A call no fault names (pread under a fault naming only `read`) goes to the real call from
// here, a frame too small to cost the deciding path's prologue (write.cpp).
template <class Fn>
FL_COLD ssize_t buf_read_slow(std::uint32_t call, int fd, void* buf, size_t count, Fn real) {
  if (FL_LIKELY(!io_call_named_by_none(call))) return buf_read_decide(call, fd, buf, count, real);
  return run_real(real, buf, count);
}

template <class Fn>
FL_COLD ssize_t iov_read_slow(std::uint32_t call, int fd, const struct iovec* iov, int cnt,
                              Fn real) {
  if (io_call_named_by_none(call)) return real(iov, cnt);
  if (fd_call_quiet(call, fd)) return real(iov, cnt);
  Guard guard;
  if (!guard.entered() || only_net_and_not_socket(guard, kFamRead, fd)) return real(iov, cnt);
  CallArgs args{call, fd};
  // The array is read (fault-safely) only once a rule's selectors match; a vector the kernel
  // refuses (bad count, unreadable array) goes to it undecided, so the program gets exactly
  // the kernel's answer.
  args.vec = iov;
  args.vec_count = cnt;
  args.size_from = iov_args_size;
  IovRead<Fn> io{iov, cnt, args.size, real};
  return io_slow_path(guard, args, io);
}

}  // namespace
}  // namespace faultline::shim

using namespace faultline;
using namespace faultline::shim;

// read and readv serve @net too (on sockets): armed by either family, still one load.
FL_EXPORT ssize_t read(int fd, void* buf, size_t count) {
  const ArmedNow now = armed_now();
  if (FL_LIKELY(!(now.families & (kFamRead | kFamNet)))) return FL_REAL(read)(fd, buf, count);
  if (fd_call_quiet_counted(kCall_read, fd, now))
    return FL_REAL(read)(fd, buf, count);  // no fault can match (engine.h)
  return buf_read_slow(kCall_read, fd, buf, count,
                       [fd](void* b, size_t n) { return FL_REAL(read)(fd, b, n); });
}

// pread and pread64 have one signature on LP64: with the real function a value rather than a
// lambda's own type, their slow paths are one instantiation (write.cpp, PwriteReal). Each
// wrapper still calls its own real function.
using PreadFn = ssize_t (*)(int, void*, size_t, off64_t);
static_assert(std::is_same_v<decltype(FL_REAL(pread)), PreadFn> &&
              std::is_same_v<decltype(FL_REAL(pread64)), PreadFn>);
struct PreadReal {
  PreadFn fn;
  int fd;
  off64_t off;
  ssize_t operator()(void* b, size_t n) const { return fn(fd, b, n, off); }
};

FL_EXPORT ssize_t pread(int fd, void* buf, size_t count, off_t off) {
  const ArmedNow now = armed_now();
  if (FL_LIKELY(!(now.families & (kFamRead)))) return FL_REAL(pread)(fd, buf, count, off);
  if (fd_call_quiet_counted(kCall_pread, fd, now))
    return FL_REAL(pread)(fd, buf, count, off);  // no fault can match (engine.h)
  return buf_read_slow(kCall_pread, fd, buf, count, PreadReal{FL_REAL(pread), fd, off});
}

FL_EXPORT ssize_t pread64(int fd, void* buf, size_t count, off64_t off) {
  const ArmedNow now = armed_now();
  if (FL_LIKELY(!(now.families & (kFamRead)))) return FL_REAL(pread64)(fd, buf, count, off);
  if (fd_call_quiet_counted(kCall_pread64, fd, now))
    return FL_REAL(pread64)(fd, buf, count, off);  // no fault can match (engine.h)
  return buf_read_slow(kCall_pread64, fd, buf, count, PreadReal{FL_REAL(pread64), fd, off});
}

FL_EXPORT ssize_t readv(int fd, const struct iovec* iov, int cnt) {
  const ArmedNow now = armed_now();
  if (FL_LIKELY(!(now.families & (kFamRead | kFamNet)))) return FL_REAL(readv)(fd, iov, cnt);
  if (fd_call_quiet_counted(kCall_readv, fd, now))
    return FL_REAL(readv)(fd, iov, cnt);  // no fault can match (engine.h)
  return iov_read_slow(kCall_readv, fd, iov, cnt,
                       [fd](const struct iovec* v, int c) { return FL_REAL(readv)(fd, v, c); });
}

FL_EXPORT ssize_t preadv(int fd, const struct iovec* iov, int cnt, off_t off) {
  const ArmedNow now = armed_now();
  if (FL_LIKELY(!(now.families & (kFamRead)))) return FL_REAL(preadv)(fd, iov, cnt, off);
  if (fd_call_quiet_counted(kCall_preadv, fd, now))
    return FL_REAL(preadv)(fd, iov, cnt, off);  // no fault can match (engine.h)
  return iov_read_slow(kCall_preadv, fd, iov, cnt, [fd, off](const struct iovec* v, int c) {
    return FL_REAL(preadv)(fd, v, c, off);
  });
}
