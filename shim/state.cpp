// Process-wide state of the shim that the engine and the wrappers share: real-function
// pointers, the fast path's armed word, the reentrancy flag, the attached block. Kept apart
// from init.cpp (the constructor) so the engine links into unit tests without a preload.
#include <dlfcn.h>
#include <stdarg.h>
#include <unistd.h>

#include <cstdio>

#include "shim.h"

namespace faultline::shim {

RealFunctions g_real;
constinit std::atomic<std::uint64_t> g_zero_sentinel{0};
std::atomic<std::atomic<std::uint64_t>*> g_armed_word{&g_zero_sentinel};
constinit thread_local bool t_in_shim __attribute__((tls_model("initial-exec"))) = false;
std::atomic<ControlBlock*> g_block{nullptr};

void* resolve_real(const char* name) noexcept {
  // Never RTLD_DEFAULT: it would find our own wrapper and recurse. A program can only call
  // a function its libc has, so RTLD_NEXT always finds the ones that get called.
  return dlsym(RTLD_NEXT, name);
}

void resolve_all_real() noexcept {
#define FL_CALL(fam, name, ret, params, args, failure, actions) (void)FL_REAL(name);
#define FL_TRACKED_CALL(name, ret, params, args) (void)FL_REAL(name);
#include "calls.def"
#undef FL_CALL
}

void diag(const char* fmt, ...) noexcept {
  char line[1024];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(line, sizeof line - 1, fmt, ap);
  va_end(ap);
  if (n < 0) return;
  if (n > static_cast<int>(sizeof line) - 2) n = sizeof line - 2;
  line[n++] = '\n';
  FL_REAL(write)(STDERR_FILENO, line, static_cast<size_t>(n));
}

}  // namespace faultline::shim
