// Shared internals of libfaultline.so: typed real-function pointers generated from
// calls.def, the reentrancy guard, and the fast-path armed check every wrapper starts with.
#pragma once

#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <sys/epoll.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>

#include <atomic>
#include <cstdint>
#include <string_view>

#include "calls/calls.h"
#include "faultline/control_block.h"

#define FL_EXPORT extern "C" __attribute__((visibility("default")))
#define FL_LIKELY(x) __builtin_expect(!!(x), 1)
#define FL_UNLIKELY(x) __builtin_expect(!!(x), 0)
#define FL_COLD [[gnu::cold, gnu::noinline]]

namespace faultline::shim {

// ---- real functions -------------------------------------------------------------------
// One typed pointer per row, resolved eagerly by the constructor with dlsym(RTLD_NEXT) and
// lazily (idempotently) by a wrapper that runs before it, e.g. from another library's
// constructor.
#define FL_CALL(fam, name, ret, params, args, failure, natural, errnos, actions, resolver) \
  using name##_fn = ret(*) params;
#include "calls/calls.def"

// Until resolved, each pointer holds a cold "lazy" function that resolves the real one,
// stores it and forwards the call: so the wrappers never test for null, and their fast path
// is two loads, a test and a tail jump.
#define FL_CALL(fam, name, ret, params, args, failure, natural, errnos, actions, resolver) \
  ret lazy_##name params;
#include "calls/calls.def"

struct RealFunctions {
#define FL_CALL(fam, name, ret, params, args, failure, natural, errnos, actions, resolver) \
  std::atomic<name##_fn> name{&lazy_##name};
#include "calls/calls.def"
};
extern RealFunctions g_real;

void* resolve_real(const char* name) noexcept;
void resolve_all_real() noexcept;

#define FL_REAL(name) (::faultline::shim::g_real.name.load(std::memory_order_relaxed))

// ---- fast path ------------------------------------------------------------------------
// Points at the session's armed_mask once attached, at an all-zero sentinel before: so the
// wrappers have no "attached yet?" branch.
extern std::atomic<std::atomic<std::uint64_t>*> g_armed_word;

inline bool armed(std::uint32_t families) noexcept {
  return g_armed_word.load(std::memory_order_relaxed)->load(std::memory_order_relaxed) & families;
}

// ---- reentrancy -----------------------------------------------------------------------
// Everything the shim does for itself (compile a policy, format a log line, readlink) may
// call interposed functions; while a thread is inside the shim they pass straight through.
// constinit: no dynamic initialisation, so no TLS wrapper function on every access.
extern constinit thread_local bool t_in_shim __attribute__((tls_model("initial-exec")));

class Guard {
 public:
  Guard() noexcept : entered_(!t_in_shim) {
    if (entered_) t_in_shim = true;
  }
  ~Guard() {
    if (entered_) t_in_shim = false;
  }
  Guard(const Guard&) = delete;
  Guard& operator=(const Guard&) = delete;
  // False when this thread was already inside the shim: the caller must pass through.
  bool entered() const noexcept { return entered_; }

 private:
  bool entered_;
};

// Releases a held guard for a stretch in which the thread holds no shim state (a wait), and
// takes it again after (also when a cancellation unwinds through it; the Guard's own
// destructor then clears it). A handler that siglongjmps out of the stretch leaves no guard.
class GuardRelease {
 public:
  explicit GuardRelease(const Guard& guard) noexcept : held_(guard.entered()) {
    if (held_) t_in_shim = false;
  }
  ~GuardRelease() {
    if (held_) t_in_shim = true;
  }
  GuardRelease(const GuardRelease&) = delete;
  GuardRelease& operator=(const GuardRelease&) = delete;

 private:
  bool held_;
};

// The shim's own work (deciding, logging, its loopback sockets) runs with cancellation
// disabled: it calls real functions that are cancellation points (open, write, connect) from
// noexcept code, and a cancel already pending when the program entered an armed call would
// be acted on there — a forced unwind through a noexcept frame is std::terminate. The
// program's own call and the shim's waits (wait.h) run with the program's state, so a cancel
// is acted on where the real call would act on it. glibc's pthread_setcancelstate is two
// atomic operations, and never acts on a pending cancel of the deferred type.
class CancelOff {
 public:
  CancelOff() noexcept { pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &old_); }
  ~CancelOff() { pthread_setcancelstate(old_, nullptr); }
  CancelOff(const CancelOff&) = delete;
  CancelOff& operator=(const CancelOff&) = delete;

 private:
  int old_ = PTHREAD_CANCEL_ENABLE;
};

// Set once the constructor has attached a session; wrappers that arrive earlier pass through.
extern std::atomic<ControlBlock*> g_block;

// The shim's own diagnostics (diag.cpp): one line to the file FAULTLINE_DIAG names, else to
// the program's stderr while fd 2 is still the file it was at start (else nowhere); each
// distinct message once per process and a bounded number in all. Allocation-free and
// lock-free (a signal handler's write can lead here); `fmt` is a printf subset (text_buf.h).
void diag(const char* fmt, ...) noexcept __attribute__((format(printf, 1, 2)));
// Called by the constructor with FAULTLINE_DIAG (nullptr or empty: stderr); records what fd 2
// is at start.
void diag_init(const char* diag_path) noexcept;
// All of `size` bytes to `fd` through the real write (restarting after EINTR and short
// writes; giving up silently on an error): the shim's own output, never faulted.
void write_all(int fd, const char* data, std::size_t size) noexcept;
// One line (newline included) on stderr through the real write, under the same "still the
// program's stderr" rule, never deduplicated: the human line `[log] stderr = true` asks for on
// every injection.
void event_line(std::string_view line) noexcept;
// Forgets what was said (unit tests).
void diag_reset_for_tests() noexcept;

// This process's index in the session's pid table and ControlBlock::members, -1 if none
// (not attached, or the table was full). Set at attach and again in a forked child.
extern std::atomic<int> g_member;
inline MemberStats* member_stats(ControlBlock& block) noexcept {
  const int index = g_member.load(std::memory_order_relaxed);
  return index >= 0 ? &block.members[index] : nullptr;
}

}  // namespace faultline::shim
