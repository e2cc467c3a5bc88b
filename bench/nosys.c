/* libfaultline_nosys.so: takes the kernel out of the measurement.
 *
 * Preloaded *after* the library under test (LD_PRELOAD="libfaultline.so libfaultline_nosys.so"),
 * this is what the shim's dlsym(RTLD_NEXT) finds instead of libc: write/pwrite/read to an fd
 * of /dev/null or /dev/zero, and every fsync, return at once without a system call. What is
 * left of bench_io's time is the loop, the PLT and the wrapper under test, so a few
 * nanoseconds of wrapper show up clearly instead of drowning in a ~150 ns syscall whose cost
 * varies by more than that between runs on a busy machine.
 *
 * The fds are recognised by path at open time (a bitmask of fds below 64), so every other
 * write — Google Benchmark's JSON file, stderr — still reaches the kernel. Only the
 * benchmark's own calls are faked; the numbers are a wrapper's cost, not a program's. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <stdarg.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

#define NS_EXPORT __attribute__((visibility("default")))

static unsigned long long ns_fake_fds; /* bit n: fd n is /dev/null or /dev/zero */

static int ns_is_fake(int fd) {
  return (unsigned)fd < 64 && ((__atomic_load_n(&ns_fake_fds, __ATOMIC_RELAXED) >> fd) & 1);
}

static int ns_track(int fd, const char* path) {
  if ((unsigned)fd < 64) {
    unsigned long long bit = 1ull << fd;
    if (strcmp(path, "/dev/null") == 0 || strcmp(path, "/dev/zero") == 0)
      __atomic_fetch_or(&ns_fake_fds, bit, __ATOMIC_RELAXED);
    else
      __atomic_fetch_and(&ns_fake_fds, ~bit, __ATOMIC_RELAXED);
  }
  return fd;
}

static void* ns_next(const char* name) {
  void* sym = dlsym(RTLD_NEXT, name);
  return sym;
}

/* ISO C has no cast from void* to a function pointer; memcpy is the pedantic-clean spelling.
 * Resolved on first use: this library is never on the measured fast path except for the
 * calls it fakes. */
#define NS_REAL(type, name, var)                            \
  type var;                                                 \
  do {                                                      \
    static type cached_;                                    \
    type fn_ = __atomic_load_n(&cached_, __ATOMIC_RELAXED); \
    if (!fn_) {                                             \
      void* sym_ = ns_next(#name);                          \
      memcpy(&fn_, &sym_, sizeof fn_);                      \
      __atomic_store_n(&cached_, fn_, __ATOMIC_RELAXED);    \
    }                                                       \
    var = fn_;                                              \
  } while (0)

typedef ssize_t (*write_fn)(int, const void*, size_t);
typedef ssize_t (*pwrite_fn)(int, const void*, size_t, off_t);
typedef ssize_t (*pwrite64_fn)(int, const void*, size_t, off64_t);
typedef ssize_t (*read_fn)(int, void*, size_t);
typedef int (*fsync_fn)(int);
typedef int (*close_fn)(int);
typedef int (*open_fn)(const char*, int, ...);
typedef int (*openat_fn)(int, const char*, int, ...);

NS_EXPORT ssize_t write(int fd, const void* buf, size_t n) {
  if (ns_is_fake(fd)) return (ssize_t)n;
  NS_REAL(write_fn, write, real);
  return real(fd, buf, n);
}

NS_EXPORT ssize_t pwrite(int fd, const void* buf, size_t n, off_t off) {
  if (ns_is_fake(fd)) return (ssize_t)n;
  NS_REAL(pwrite_fn, pwrite, real);
  return real(fd, buf, n, off);
}

NS_EXPORT ssize_t pwrite64(int fd, const void* buf, size_t n, off64_t off) {
  if (ns_is_fake(fd)) return (ssize_t)n;
  NS_REAL(pwrite64_fn, pwrite64, real);
  return real(fd, buf, n, off);
}

NS_EXPORT ssize_t read(int fd, void* buf, size_t n) {
  if (ns_is_fake(fd)) {
    memset(buf, 0, n);
    return (ssize_t)n;
  }
  NS_REAL(read_fn, read, real);
  return real(fd, buf, n);
}

NS_EXPORT int fsync(int fd) {
  (void)fd;
  return 0;
}

NS_EXPORT int close(int fd) {
  if ((unsigned)fd < 64) __atomic_fetch_and(&ns_fake_fds, ~(1ull << fd), __ATOMIC_RELAXED);
  NS_REAL(close_fn, close, real);
  return real(fd);
}

static int ns_takes_mode(int flags) {
  return (flags & O_CREAT) != 0 || (flags & O_TMPFILE) == O_TMPFILE;
}

#define NS_MODE()                    \
  unsigned int mode = 0;             \
  if (ns_takes_mode(flags)) {        \
    va_list ap;                      \
    va_start(ap, flags);             \
    mode = va_arg(ap, unsigned int); \
    va_end(ap);                      \
  }

NS_EXPORT int open(const char* path, int flags, ...) {
  NS_MODE()
  NS_REAL(open_fn, open, real);
  return ns_track(real(path, flags, mode), path);
}

NS_EXPORT int open64(const char* path, int flags, ...) {
  NS_MODE()
  NS_REAL(open_fn, open64, real);
  return ns_track(real(path, flags, mode), path);
}

NS_EXPORT int openat(int dirfd, const char* path, int flags, ...) {
  NS_MODE()
  NS_REAL(openat_fn, openat, real);
  return ns_track(real(dirfd, path, flags, mode), path);
}

NS_EXPORT int openat64(int dirfd, const char* path, int flags, ...) {
  NS_MODE()
  NS_REAL(openat_fn, openat64, real);
  return ns_track(real(dirfd, path, flags, mode), path);
}
