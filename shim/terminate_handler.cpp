// The shim's std::terminate handler. libstdc++'s default one (__gnu_cxx::__verbose_terminate_
// handler) names the uncaught exception's type with __cxa_demangle, and that alone linked the
// whole C++ demangler (47 KB) into every process the shim is preloaded into
// (docs/performance.md, "Size"). Defining the handler variable libsupc++'s std::terminate reads
// keeps the archive member that sets the verbose one, and with it the demangler, out of the
// link (a duplicate definition would fail the link, not pass silently). Terminating inside the
// shim ends the target either way; this says whose copy of the runtime it was.
#include <unistd.h>

#include <cstdlib>
#include <exception>

namespace {

[[noreturn]] void shim_terminate() noexcept {
  static constexpr char kMessage[] =
      "faultline: std::terminate called inside libfaultline.so (an uncaught exception or a "
      "noexcept violation in the shim)\n";
  (void)!write(STDERR_FILENO, kMessage, sizeof kMessage - 1);
  std::abort();
}

}  // namespace

// libsupc++'s own definition (eh_term_handler.cc) has this name and type.
namespace __cxxabiv1 {
std::terminate_handler __terminate_handler = shim_terminate;
}  // namespace __cxxabiv1
