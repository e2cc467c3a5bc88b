// Keeping the process's name current: the `process` selector and event lines use comm, which
// the program may change at any time. The two ways a program renames itself through libc,
// prctl(PR_SET_NAME) and pthread_setname_np, are bookkeeping rows of calls.def: never
// faulted, they run the real call and then re-read /proc/self/comm. (glibc's
// pthread_setname_np calls prctl internally, past our wrapper, hence both.) Re-reading comm
// on every rules rebuild instead would miss a rename between two policy edits, which is
// exactly when a prefork server's workers name themselves; re-reading per call would cost
// three syscalls on every armed call. A program that writes /proc/self/comm directly is not
// seen (docs/limits.md).
#include <linux/prctl.h>
#include <pthread.h>
#include <stdarg.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>

#include "shim/engine/engine.h"
#include "shim/engine/shim.h"

namespace faultline::shim {
namespace {

// Only the main thread's name is the process's comm: a thread pool naming its workers costs
// nothing here.
FL_COLD void after_rename(bool main_thread) {
  if (!main_thread || !g_block.load(std::memory_order_acquire)) return;
  Guard guard;
  if (!guard.entered()) return;
  const int saved = errno;
  engine_process_renamed();
  errno = saved;
}

bool on_main_thread() { return syscall(SYS_gettid) == getpid(); }

}  // namespace
}  // namespace faultline::shim

using namespace faultline::shim;

// <sys/prctl.h> declares prctl noexcept (__THROW); its options come from <linux/prctl.h>.
FL_EXPORT int prctl(int option, ...) noexcept {
  va_list ap;
  va_start(ap, option);
  const unsigned long a2 = va_arg(ap, unsigned long), a3 = va_arg(ap, unsigned long),
                      a4 = va_arg(ap, unsigned long), a5 = va_arg(ap, unsigned long);
  va_end(ap);
  const int result = FL_REAL(prctl)(option, a2, a3, a4, a5);
  if (FL_UNLIKELY(option == PR_SET_NAME && result == 0)) after_rename(on_main_thread());
  return result;
}

FL_EXPORT int pthread_setname_np(pthread_t thread, const char* name) noexcept {
  const int result = FL_REAL(pthread_setname_np)(thread, name);
  // Another thread's target may be the main thread: only a self-rename can be ruled out.
  if (FL_UNLIKELY(result == 0))
    after_rename(!pthread_equal(thread, pthread_self()) || on_main_thread());
  return result;
}
