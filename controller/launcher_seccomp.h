// The io_uring gate ([target] io_uring = "deny", docs/policy.md "Reaching the program"): a
// seccomp filter installed in the launched program just before its exec, answering
// io_uring_setup, io_uring_enter and io_uring_register with ENOSYS. Runtimes that use io_uring
// when they can (liburing users, some language runtimes) then fall back to read(), write() and
// the other calls the shim interposes. The filter is its own: other filters a launcher stacks
// in the same child (the seccomp backend's user notification) do not depend on it.
#pragma once

namespace faultline::launch {

// Sets no_new_privs (required to install a filter without CAP_SYS_ADMIN) and installs the
// filter in the calling process. Async-signal-safe (the child after fork). Returns 0, or the
// errno of the step that failed.
int deny_io_uring() noexcept;

}  // namespace faultline::launch
