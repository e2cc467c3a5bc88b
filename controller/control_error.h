// The one error type of the controller code that both the `faultline` command and the C++ API
// (include/faultline/faultline.hpp) run: launching a program under a session (launcher.h),
// reading a session (inspect.h) and editing it (edits.h). It carries the exit status the CLI
// ends with (docs/cli.md: 0 done, 1 nothing to act on, 2 bad usage or input; 126/127 as a
// shell reports a command it cannot run) and a kind the API maps onto its public error codes,
// so the two front ends report the same failure the same way without a second implementation.
#pragma once

#include <stdexcept>
#include <string>

namespace faultline {

inline constexpr int kStatusOk = 0;
inline constexpr int kStatusNothing = 1;
inline constexpr int kStatusUsage = 2;
inline constexpr int kStatusCannotExecute = 126;
inline constexpr int kStatusNotFound = 127;

enum class ErrorKind {
  kUsage,            // bad arguments or input (a bad KEY=VALUE, a bad session name, ...)
  kBadPolicy,        // the policy or snippet does not compile (message: file:line:col: ...)
  kNoSession,        // no such session
  kNoFault,          // no such fault in the session
  kCommandNotFound,  // the command does not exist (status 127)
  kCannotExecute,    // it exists but cannot be run (status 126)
  kUnreachable,      // statically linked, set-id or another architecture: no preload reaches it
  kNoShim,           // libfaultline.so not found or unusable
  kSession,          // the session block cannot be created or used
  kSystem,           // a system call failed (fork, pipe, waitpid)
};

class ControlError : public std::runtime_error {
 public:
  ControlError(ErrorKind kind, int status, const std::string& message)
      : std::runtime_error(message), kind_(kind), status_(status) {}
  ErrorKind kind() const { return kind_; }
  int status() const { return status_; }

 private:
  ErrorKind kind_;
  int status_;
};

[[noreturn]] inline void throw_control_error(ErrorKind kind, int status,
                                             const std::string& message) {
  throw ControlError(kind, status, message);
}

}  // namespace faultline
