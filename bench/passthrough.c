/* libfaultline_passthrough.so: the physical limit of LD_PRELOAD interposition.
 *
 * Every wrapper is an empty passthrough: it calls the real libc function through a pointer
 * that the constructor resolved once with dlsym(RTLD_NEXT). No armed check, no guard, no
 * bookkeeping; the difference between this library and a native run is the cost of being
 * interposed at all, the floor under anything libfaultline.so can reach.
 *
 * Each pointer starts out at a resolver stub (not NULL), so a call that arrives before the
 * constructor (another library's constructor) still works, and the wrappers need no
 * "resolved yet?" branch: the fast path is one load and one indirect tail jump.
 *
 * Only the interposed symbols are exported (the target builds with hidden visibility). */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <netdb.h>
#include <stdarg.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <unistd.h>

#define PT_EXPORT __attribute__((visibility("default")))

static void* pt_next(const char* name) {
  /* RTLD_NEXT: the next definition after this library, i.e. libc's. */
  return dlsym(RTLD_NEXT, name);
}

/* ISO C has no cast from void* to a function pointer; memcpy is the pedantic-clean spelling. */
#define PT_RESOLVE(name)                                      \
  do {                                                        \
    void* sym_ = pt_next(#name);                              \
    name##_fn fn_;                                            \
    memcpy(&fn_, &sym_, sizeof fn_);                          \
    __atomic_store_n(&pt_real_##name, fn_, __ATOMIC_RELAXED); \
  } while (0)

#define PT_LOAD(name) __atomic_load_n(&pt_real_##name, __ATOMIC_RELAXED)

/* Pointer + resolver stub for a fixed-argument function. */
#define PT_DECLARE(ret, name, params, args)         \
  typedef ret(*name##_fn) params;                   \
  static ret pt_stub_##name params;                 \
  static name##_fn pt_real_##name = pt_stub_##name; \
  static ret pt_stub_##name params {                \
    PT_RESOLVE(name);                               \
    return PT_LOAD(name) args;                      \
  }

#define PT_WRAP(ret, name, params, args) \
  PT_DECLARE(ret, name, params, args)    \
  PT_EXPORT ret name params { return PT_LOAD(name) args; }

PT_WRAP(ssize_t, write, (int fd, const void* buf, size_t n), (fd, buf, n))
PT_WRAP(ssize_t, pwrite, (int fd, const void* buf, size_t n, off_t off), (fd, buf, n, off))
PT_WRAP(ssize_t, pwrite64, (int fd, const void* buf, size_t n, off64_t off), (fd, buf, n, off))
PT_WRAP(ssize_t, read, (int fd, void* buf, size_t n), (fd, buf, n))
PT_WRAP(int, fsync, (int fd), (fd))
PT_WRAP(int, close, (int fd), (fd))
/* glibc declares connect's address as a transparent union under _GNU_SOURCE (C only). */
PT_WRAP(int, connect, (int fd, __CONST_SOCKADDR_ARG addr, socklen_t len), (fd, addr, len))
PT_WRAP(int, getaddrinfo,
        (const char* node, const char* service, const struct addrinfo* hints,
         struct addrinfo** res),
        (node, service, hints, res))

/* malloc and free cannot start at a dlsym stub: dlsym may itself allocate (its error buffer),
 * which would re-enter the stub before the pointer is set. glibc exports its allocator under
 * a second name, __libc_malloc / __libc_free, so the pointers start there and are never
 * resolved: the same one load and indirect tail jump as the other wrappers, and a floor only
 * for glibc's own malloc (which is what the benchmarks measure). */
extern void* __libc_malloc(size_t n);
extern void __libc_free(void* p);
typedef void* (*malloc_fn)(size_t);
typedef void (*free_fn)(void*);
static malloc_fn pt_real_malloc = __libc_malloc;
static free_fn pt_real_free = __libc_free;
PT_EXPORT void* malloc(size_t n) { return PT_LOAD(malloc)(n); }
PT_EXPORT void free(void* p) { PT_LOAD(free)(p); }

/* The open family is variadic: the mode is read only when the flags say one was passed
 * (O_CREAT, O_TMPFILE), exactly as libc itself does, and passed on as a fixed argument. */
static int pt_takes_mode(int flags) {
  return (flags & O_CREAT) != 0 || (flags & O_TMPFILE) == O_TMPFILE;
}

#define PT_MODE(last)                        \
  mode_t mode = 0;                           \
  if (pt_takes_mode(flags)) {                \
    va_list ap;                              \
    va_start(ap, last);                      \
    mode = (mode_t)va_arg(ap, unsigned int); \
    va_end(ap);                              \
  }

PT_DECLARE(int, open, (const char* path, int flags, mode_t mode), (path, flags, mode))
PT_DECLARE(int, open64, (const char* path, int flags, mode_t mode), (path, flags, mode))
PT_DECLARE(int, openat, (int dirfd, const char* path, int flags, mode_t mode),
           (dirfd, path, flags, mode))
PT_DECLARE(int, openat64, (int dirfd, const char* path, int flags, mode_t mode),
           (dirfd, path, flags, mode))

PT_EXPORT int open(const char* path, int flags, ...) {
  PT_MODE(flags)
  return PT_LOAD(open)(path, flags, mode);
}

PT_EXPORT int open64(const char* path, int flags, ...) {
  PT_MODE(flags)
  return PT_LOAD(open64)(path, flags, mode);
}

PT_EXPORT int openat(int dirfd, const char* path, int flags, ...) {
  PT_MODE(flags)
  return PT_LOAD(openat)(dirfd, path, flags, mode);
}

PT_EXPORT int openat64(int dirfd, const char* path, int flags, ...) {
  PT_MODE(flags)
  return PT_LOAD(openat64)(dirfd, path, flags, mode);
}

__attribute__((constructor)) static void pt_init(void) {
  PT_RESOLVE(write);
  PT_RESOLVE(pwrite);
  PT_RESOLVE(pwrite64);
  PT_RESOLVE(read);
  PT_RESOLVE(fsync);
  PT_RESOLVE(close);
  PT_RESOLVE(connect);
  PT_RESOLVE(getaddrinfo);
  PT_RESOLVE(open);
  PT_RESOLVE(open64);
  PT_RESOLVE(openat);
  PT_RESOLVE(openat64);
}
