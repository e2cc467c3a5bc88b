// The shim's one wait primitive (see wait.h).
#include "shim/engine/wait.h"

#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <netdb.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "calls/calls.h"
#include "session/session.h"

namespace faultline::shim {
namespace {

// glibc marks the functions that are not cancellation points __THROW, which C++ sees as
// noexcept; these checks keep call_is_cancellation_point() true to the headers.
template <class R, class... A>
constexpr bool declared_noexcept(R (*)(A...) noexcept) {
  return true;
}
template <class R, class... A>
constexpr bool declared_noexcept(R (*)(A...)) {
  return false;
}
static_assert(declared_noexcept(&::dup) && declared_noexcept(&::dup2) &&
              declared_noexcept(&::dup3) && declared_noexcept(&::pipe) &&
              declared_noexcept(&::pipe2) && declared_noexcept(&::socket) &&
              declared_noexcept(&::bind) && declared_noexcept(&::listen) &&
              declared_noexcept(&::sync) && declared_noexcept(&::syncfs) &&
              declared_noexcept(&::sendfile) && declared_noexcept(&::sendfile64) &&
              declared_noexcept(&::malloc) && declared_noexcept(&::posix_memalign));
static_assert(!declared_noexcept(&::write) && !declared_noexcept(&::read) &&
              !declared_noexcept(&::connect) && !declared_noexcept(&::recv) &&
              !declared_noexcept(&::fsync) && !declared_noexcept(&::copy_file_range) &&
              !declared_noexcept(&::fwrite) && !declared_noexcept(&::getaddrinfo) &&
              !declared_noexcept(&::accept) && !declared_noexcept(&::msync));
// @fs: close and the fallocate calls are cancellation points, the rest are __THROW.
static_assert(declared_noexcept(&::rename) && declared_noexcept(&::renameat) &&
              declared_noexcept(&::renameat2) && declared_noexcept(&::link) &&
              declared_noexcept(&::linkat) && declared_noexcept(&::symlink) &&
              declared_noexcept(&::symlinkat) && declared_noexcept(&::unlink) &&
              declared_noexcept(&::unlinkat) && declared_noexcept(&::mkdir) &&
              declared_noexcept(&::mkdirat) && declared_noexcept(&::rmdir) &&
              declared_noexcept(&::truncate) && declared_noexcept(&::truncate64) &&
              declared_noexcept(&::ftruncate) && declared_noexcept(&::ftruncate64));
static_assert(!declared_noexcept(&::close) && !declared_noexcept(&::fallocate) &&
              !declared_noexcept(&::posix_fallocate));

// Would the kernel restart a call that a signal interrupted? We cannot know which signal it
// was: if any caught signal lacks SA_RESTART, the program is prepared for EINTR (Python's
// handlers, for one), and it gets it.
}  // namespace

bool interrupted_without_restart() {
  for (int sig = 1; sig < NSIG; ++sig) {
    struct sigaction sa {};
    if (sigaction(sig, nullptr, &sa) != 0) continue;
    if (sa.sa_handler == SIG_DFL || sa.sa_handler == SIG_IGN) continue;
    if (!(sa.sa_flags & SA_RESTART)) return true;
  }
  return false;
}

namespace {

// One slice. True when a signal handler interrupted it.
bool sleep_slice(const Guard& guard, std::int64_t ns, bool cancellable) {
  struct timespec ts = {static_cast<time_t>(ns / 1'000'000'000),
                        static_cast<long>(ns % 1'000'000'000)};
  GuardRelease released(guard);
  // The real ppoll: glibc's cancellation point, and not a name the program (or another
  // preload) can have replaced under us. A raw syscall is never a cancellation point.
  const int r = cancellable ? FL_REAL(ppoll)(nullptr, 0, &ts, nullptr)
                            : static_cast<int>(syscall(SYS_ppoll, nullptr, 0, &ts, nullptr, 0));
  return r < 0 && errno == EINTR;
}

}  // namespace

bool call_is_cancellation_point(std::uint32_t call) noexcept {
  if (call_family(call) == kFamMemory) return false;
  switch (call) {
    case kCall_dup:
    case kCall_dup2:
    case kCall_dup3:
    case kCall_pipe:
    case kCall_pipe2:
    case kCall_socket:
    case kCall_bind:
    case kCall_listen:
    case kCall_sync:
    case kCall_syncfs:
    case kCall_sendfile:
    case kCall_sendfile64:
    // @fs: every call but close and the fallocate calls is declared __THROW.
    case kCall_rename:
    case kCall_renameat:
    case kCall_renameat2:
    case kCall_link:
    case kCall_linkat:
    case kCall_symlink:
    case kCall_symlinkat:
    case kCall_unlink:
    case kCall_unlinkat:
    case kCall_mkdir:
    case kCall_mkdirat:
    case kCall_rmdir:
    case kCall_truncate:
    case kCall_truncate64:
    case kCall_ftruncate:
    case kCall_ftruncate64:
      return false;
    default:
      return true;
  }
}

WaitEnd shim_wait(const Guard& guard, std::uint32_t call, std::int64_t deadline_ns,
                  OnSignal on_signal, WaitHolds holds, void* ctx) {
  const int saved_errno = errno;
  const bool cancellable = call_is_cancellation_point(call);
  WaitEnd end;
  for (;;) {
    if (holds && !holds(ctx, deadline_ns)) {
      end = WaitEnd::kLifted;
      break;
    }
    std::int64_t slice = kWaitSliceNs;
    if (deadline_ns >= 0) {
      const std::int64_t left = deadline_ns - monotonic_ns();
      if (left <= 0) {
        end = WaitEnd::kDeadline;
        break;
      }
      if (left < slice) slice = left;
    }
    if (sleep_slice(guard, slice, cancellable) && on_signal != OnSignal::kRestart &&
        (on_signal == OnSignal::kEnd || interrupted_without_restart())) {
      end = WaitEnd::kInterrupted;
      break;
    }
  }
  errno = saved_errno;
  return end;
}

}  // namespace faultline::shim
