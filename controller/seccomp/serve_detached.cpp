// A server process of its own per launched program (serve_detached.h). The caller may have
// threads (a test process, the experiment runner's probes): between fork and the
// Supervisor's start, the child uses system calls only, then malloc and pthread_create, which
// glibc makes safe after fork; never a lock of the caller's (no stdio, no logging).
#include "controller/seccomp/serve_detached.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>

#include "controller/seccomp/supervisor.h"

namespace faultline::seccomp {
namespace {

// The server itself: never returns.
[[noreturn]] void serve(int listener, ControlBlock& block, int member, pid_t child) {
  // Nothing of the caller's but the listener: a pipe the caller waits on for EOF (a test's
  // captured stdout, ctest's own) must not stay open for as long as the program's tree lives.
  if (listener <= 2) listener = fcntl(listener, F_DUPFD_CLOEXEC, 3);
  const int null = open("/dev/null", O_RDWR | O_CLOEXEC);
  if (null >= 0)
    for (int fd = 0; fd <= 2; ++fd) dup2(null, fd);  // no stray write lands on a caller's fd
  if (listener > 3) syscall(SYS_close_range, 3u, static_cast<unsigned>(listener - 1), 0u);
  syscall(SYS_close_range, static_cast<unsigned>(listener + 1), ~0u, 0u);
  // Out of the caller's session and process group: a terminal's ^C or a kill of the group
  // ends the program, whose end ends this process, never this process first.
  setsid();
  prctl(PR_SET_NAME, "fl-seccomp", 0, 0, 0);
  // Every signal blocked (the Supervisor's thread unblocks only its own wake signal): this
  // process ends when the program's tree has, by itself.
  sigset_t all;
  sigfillset(&all);
  sigprocmask(SIG_SETMASK, &all, nullptr);
  {
    Supervisor supervisor(listener, block, member, child);
    supervisor.wait_unheld();
    supervisor.finish();
  }
  _exit(0);
}

}  // namespace

int serve_in_own_process(int listener, ControlBlock& block, int member, pid_t child) noexcept {
  const pid_t first = fork();
  if (first < 0) {
    const int error = errno;
    close(listener);
    return error;
  }
  if (first == 0) {
    const pid_t server = fork();
    if (server != 0) _exit(server < 0 ? 1 : 0);
    serve(listener, block, member, child);
  }
  // The listener stays open in the server only: once it has ended, no copy is left to hold
  // the program's calls forever.
  close(listener);
  int status = 0;
  while (waitpid(first, &status, 0) < 0)
    if (errno != EINTR) return errno;
  return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : EAGAIN;
}

}  // namespace faultline::seccomp
