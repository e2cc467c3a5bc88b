// The real-function table (g_real, what FL_REAL reads) and its resolvers: resolve_all_real
// for the constructor, and the lazy first values that resolve a pointer on its first call
// (shim.h). The allocator's are in memory_real.cpp; the other process-wide words the engine
// and the wrappers share are in process_globals.cpp.
#include <dlfcn.h>
#include <fcntl.h>
#include <stdarg.h>
#include <unistd.h>

#include <cstdio>

#include "shim/engine/memory.h"
#include "shim/engine/shim.h"

namespace faultline::shim {

RealFunctions g_real;

void* resolve_real(const char* name) noexcept {
  // Never RTLD_DEFAULT: it would find our own wrapper and recurse. A program can only call
  // a function its libc has, so RTLD_NEXT always finds the ones that get called.
  return dlsym(RTLD_NEXT, name);
}

void resolve_all_real() noexcept {
  // The allocator first, with the bootstrap arena ready (memory_real.cpp): dlsym may allocate.
  resolve_memory_real();
#define FL_CALL(fam, name, ret, params, args, failure, natural, errnos, actions, resolver) \
  FL_UNLESS_ALLOCATOR(resolver, if (void* fn = resolve_real(#name)) g_real.name.store(     \
                                    reinterpret_cast<name##_fn>(fn), std::memory_order_relaxed);)
#include "calls/calls.def"
}

// The lazy first values of the real pointers (see shim.h). A program can only call a
// function its libc exports, so resolution cannot fail for a call that actually arrives.
#define FL_LAZY_BODY(name, args)                              \
  auto fn = reinterpret_cast<name##_fn>(resolve_real(#name)); \
  g_real.name.store(fn, std::memory_order_relaxed);           \
  return fn args;
// Only LAZY rows: the VARIADIC rows' resolvers are below, the ALLOCATOR rows' in
// memory_real.cpp (dlsym may call malloc).
#define FL_CALL(fam, name, ret, params, args, failure, natural, errnos, actions, resolver) \
  FL_IF_LAZY(resolver, FL_COLD ret lazy_##name params{FL_LAZY_BODY(name, args)})
#include "calls/calls.def"

// open's mode is variadic; our wrappers always pass it, so reading it here is defined.
#define FL_LAZY_OPEN(name, params, args, last) \
  FL_COLD int lazy_##name params {             \
    va_list ap;                                \
    va_start(ap, last);                        \
    mode_t mode = va_arg(ap, mode_t);          \
    va_end(ap);                                \
    FL_LAZY_BODY(name, args)                   \
  }
FL_LAZY_OPEN(open, (const char* path, int flags, ...), (path, flags, mode), flags)
FL_LAZY_OPEN(open64, (const char* path, int flags, ...), (path, flags, mode), flags)
FL_LAZY_OPEN(openat, (int dirfd, const char* path, int flags, ...), (dirfd, path, flags, mode),
             flags)
FL_LAZY_OPEN(openat64, (int dirfd, const char* path, int flags, ...), (dirfd, path, flags, mode),
             flags)

// prctl(option, ...): glibc reads four unsigned longs whatever the option (so does this).
FL_COLD int lazy_prctl(int option, ...) {
  va_list ap;
  va_start(ap, option);
  const unsigned long a2 = va_arg(ap, unsigned long), a3 = va_arg(ap, unsigned long),
                      a4 = va_arg(ap, unsigned long), a5 = va_arg(ap, unsigned long);
  va_end(ap);
  FL_LAZY_BODY(prctl, (option, a2, a3, a4, a5))
}

// fcntl(fd, cmd, ...): glibc reads the third argument as a pointer whatever the command (an
// int argument is fine: the kernel truncates it); so does this.
FL_COLD int lazy_fcntl(int fd, int cmd, ...) {
  va_list ap;
  va_start(ap, cmd);
  void* const arg = va_arg(ap, void*);
  va_end(ap);
  FL_LAZY_BODY(fcntl, (fd, cmd, arg))
}

FL_COLD int lazy_fcntl64(int fd, int cmd, ...) {
  va_list ap;
  va_start(ap, cmd);
  void* const arg = va_arg(ap, void*);
  va_end(ap);
  FL_LAZY_BODY(fcntl64, (fd, cmd, arg))
}

}  // namespace faultline::shim
