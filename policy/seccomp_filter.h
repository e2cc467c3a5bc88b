// The seccomp backend's side of the policy (policy.md, "Reaching the program"): which system
// calls stand for which interposed calls of calls/calls.def, which of them a policy needs
// trapped, what a fault may ask for that a filter cannot deliver, and the BPF program itself.
//
// The filter traps by family: every system call of a family one of the policy's faults names
// (enabled or not: `enable` must reach it later) goes to the supervisor, everything else runs
// untouched. A filter cannot change after exec, so the trapped families are written into the
// block (ControlHeader::seccomp_families) and `faultline add` refuses a fault outside them.
#pragma once

#include <linux/filter.h>
#include <linux/seccomp.h>

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "faultline/control_block.h"
#include "policy/policy.h"

namespace faultline::seccomp {

// How the supervisor reads a system call's arguments into a CallArgs.
enum class Args : std::uint8_t {
  kFdSize,     // (fd, buf, count, ...): write, read, pwrite64, pread64
  kFdVec,      // (fd, iov, iovcnt, ...): writev, readv, pwritev, preadv
  kFd,         // (fd, ...): fsync, fdatasync, sync_file_range, accept, accept4, recvmsg...
  kPath,       // (path, ...): open, creat
  kDirPath,    // (dirfd, path, ...): openat, openat2
  kNone,       // socket
  kConnect,    // (fd, addr, len)
  kSendTo,     // (fd, buf, len, flags, addr, addrlen)
  kRecvFrom,   // (fd, buf, len, flags, ...)
  kFdMsg,      // (fd, msghdr, flags): sendmsg, recvmsg
  kPaths,      // (oldpath, newpath): rename, link
  kDirPaths,   // (olddirfd, oldpath, newdirfd, newpath, ...): renameat, renameat2, linkat
  kSymlink,    // (target, linkpath): the link path first, its target second (as the shim)
  kSymlinkAt,  // (target, newdirfd, linkpath)
};

struct SyscallRow {
  int nr;                  // x86-64 system call number
  std::uint32_t call;      // the interposed call it stands for (calls.def id)
  std::uint32_t families;  // the families that reach it (read/write on sockets: @net too)
  Args args;
};

std::span<const SyscallRow> syscall_rows();
// The call id the supervisor decides system call `row` as, given its arguments: the row's own,
// except unlinkat with AT_REMOVEDIR, which removes a directory: rmdir's (docs/policy.md).
std::uint32_t call_of(const SyscallRow& row, const seccomp_data& data);
// The row of system call `nr`, nullptr when the backend never traps it.
const SyscallRow* find_syscall(int nr);

// The families whose system calls the program's filter must trap for `policy`.
std::uint32_t trapped_families(const Policy& policy);

// @fs names one operation several ways (rename, renameat, renameat2; Go's os.Rename is
// renameat at the system call level): under the seccomp backend a fault naming any name of
// such a group names them all, so `calls = ["rename"]` reaches the program's renameat. Applied
// to a fault before it is published to a seccomp session's block; idempotent.
void widen_calls(FaultSpec& spec);

// Why `spec` cannot run under the seccomp backend ("fault 'x': ..."), or nullopt.
std::optional<std::string> refusal(const FaultSpec& spec);

// The BPF program: x86-64 only (other ABIs, i386 and x32, get ENOSYS rather than passing
// unseen), the trapped families' system calls to user notification, everything else allowed.
std::vector<sock_filter> build_filter(std::uint32_t families);

}  // namespace faultline::seccomp
