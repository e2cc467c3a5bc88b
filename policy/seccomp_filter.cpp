// The system calls behind each family, the refusals, and the BPF program (filter.h).
#include "policy/seccomp_filter.h"

#include <fcntl.h>
#include <linux/audit.h>
#include <linux/seccomp.h>
#include <sys/syscall.h>

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <string_view>

#include "calls/calls.h"

namespace faultline::seccomp {
namespace {

// One row per system call; the interposed call is the libc function of the same name (what
// the shim would see for a dynamically linked program making the same call).
constexpr SyscallRow kRows[] = {
    {SYS_write, kCall_write, kFamWrite | kFamNet, Args::kFdSize},
    {SYS_pwrite64, kCall_pwrite64, kFamWrite, Args::kFdSize},
    {SYS_writev, kCall_writev, kFamWrite | kFamNet, Args::kFdVec},
    {SYS_pwritev, kCall_pwritev, kFamWrite, Args::kFdVec},
    {SYS_pwritev2, kCall_pwritev2, kFamWrite, Args::kFdVec},
    {SYS_read, kCall_read, kFamRead | kFamNet, Args::kFdSize},
    {SYS_pread64, kCall_pread64, kFamRead, Args::kFdSize},
    {SYS_readv, kCall_readv, kFamRead | kFamNet, Args::kFdVec},
    {SYS_preadv, kCall_preadv, kFamRead, Args::kFdVec},
    {SYS_preadv2, kCall_preadv, kFamRead, Args::kFdVec},
    {SYS_fsync, kCall_fsync, kFamFsync, Args::kFd},
    {SYS_fdatasync, kCall_fdatasync, kFamFsync, Args::kFd},
    {SYS_sync_file_range, kCall_sync_file_range, kFamFsync, Args::kFd},
    {SYS_open, kCall_open, kFamOpen, Args::kPath},
    {SYS_creat, kCall_creat, kFamOpen, Args::kPath},
    {SYS_openat, kCall_openat, kFamOpen, Args::kDirPath},
    {SYS_openat2, kCall_openat, kFamOpen, Args::kDirPath},
    {SYS_socket, kCall_socket, kFamNet, Args::kNone},
    {SYS_connect, kCall_connect, kFamNet, Args::kConnect},
    {SYS_accept, kCall_accept, kFamNet, Args::kFd},
    {SYS_accept4, kCall_accept4, kFamNet, Args::kFd},
    {SYS_sendto, kCall_sendto, kFamNet, Args::kSendTo},
    {SYS_sendmsg, kCall_sendmsg, kFamNet, Args::kFdMsg},
    {SYS_recvfrom, kCall_recvfrom, kFamNet, Args::kRecvFrom},
    {SYS_recvmsg, kCall_recvmsg, kFamNet, Args::kFdMsg},
    {SYS_rename, kCall_rename, kFamFs, Args::kPaths},
    {SYS_renameat, kCall_renameat, kFamFs, Args::kDirPaths},
    {SYS_renameat2, kCall_renameat2, kFamFs, Args::kDirPaths},
    {SYS_link, kCall_link, kFamFs, Args::kPaths},
    {SYS_linkat, kCall_linkat, kFamFs, Args::kDirPaths},
    {SYS_symlink, kCall_symlink, kFamFs, Args::kSymlink},
    {SYS_symlinkat, kCall_symlinkat, kFamFs, Args::kSymlinkAt},
    {SYS_unlink, kCall_unlink, kFamFs, Args::kPath},
    {SYS_unlinkat, kCall_unlinkat, kFamFs, Args::kDirPath},  // AT_REMOVEDIR: rmdir (call_of)
    {SYS_mkdir, kCall_mkdir, kFamFs, Args::kPath},
    {SYS_mkdirat, kCall_mkdirat, kFamFs, Args::kDirPath},
    {SYS_rmdir, kCall_rmdir, kFamFs, Args::kPath},
    {SYS_truncate, kCall_truncate, kFamFs, Args::kPath},
    {SYS_ftruncate, kCall_ftruncate, kFamFs, Args::kFd},
    {SYS_fallocate, kCall_fallocate, kFamFs, Args::kFd},
    {SYS_close, kCall_close, kFamFs, Args::kFd},
};

// The @fs names of one operation (widen_calls). unlinkat and rmdir are not one group: a
// fault naming rmdir must not catch unlinkat removing a file; unlinkat removing a directory
// is decided as rmdir (call_of).
constexpr std::uint32_t kNone = ~0u;
constexpr std::uint32_t kGroups[][4] = {
    {kCall_rename, kCall_renameat, kCall_renameat2, kNone},
    {kCall_link, kCall_linkat, kNone, kNone},
    {kCall_symlink, kCall_symlinkat, kNone, kNone},
    {kCall_unlink, kCall_unlinkat, kNone, kNone},
    {kCall_mkdir, kCall_mkdirat, kNone, kNone},
    {kCall_truncate, kCall_truncate64, kNone, kNone},
    {kCall_ftruncate, kCall_ftruncate64, kNone, kNone},
    {kCall_fallocate, kCall_fallocate64, kCall_posix_fallocate, kCall_posix_fallocate64},
};

bool names(const FaultSpec& spec, std::uint32_t call) {
  return (spec.calls_mask[call / 64] >> (call % 64)) & 1;
}

// What the backend delivers: the answer (an errno, or a value: lie, a blackholed send, eof),
// a later answer (delay; latency on the calls that wait for the peer; a blackholed connect or
// receive), a signal before the call, and what the supervisor does to the program's socket
// through its duplicate (reset, eof, blackhole's tarpit; short and corrupt, the call made for
// the program with its bytes read and written back: supervisor.cpp).
constexpr std::uint32_t kSupportedActions = kActError | kActDelay | kActCrash | kActLatency |
                                            kActReset | kActEof | kActLie | kActBlackhole |
                                            kActShort | kActCorrupt;

bool calls_mapped(const FaultSpec& spec) {
  FaultSpec wide = spec;
  widen_calls(wide);
  return names(wide, kCall_rmdir) ||
         std::any_of(std::begin(kRows), std::end(kRows),
                     [&](const SyscallRow& row) { return names(wide, row.call); });
}

}  // namespace

std::span<const SyscallRow> syscall_rows() { return kRows; }

std::uint32_t call_of(const SyscallRow& row, const seccomp_data& data) {
  if (row.nr == SYS_unlinkat && (data.args[2] & AT_REMOVEDIR)) return kCall_rmdir;
  return row.call;
}

void widen_calls(FaultSpec& spec) {
  for (const auto& group : kGroups) {
    const bool named = std::any_of(std::begin(group), std::end(group), [&](std::uint32_t call) {
      return call != kNone && names(spec, call);
    });
    if (!named) continue;
    for (const std::uint32_t call : group)
      if (call != kNone) spec.calls_mask[call / 64] |= 1ull << (call % 64);
  }
}

const SyscallRow* find_syscall(int nr) {
  for (const SyscallRow& row : kRows)
    if (row.nr == nr) return &row;
  return nullptr;
}

std::uint32_t trapped_families(const Policy& policy) {
  std::uint32_t families = 0;
  for (const FaultSpec& spec : policy.faults) families |= spec.families;
  return families & (kFamWrite | kFamRead | kFamFsync | kFamOpen | kFamNet | kFamFs);
}

std::optional<std::string> refusal(const FaultSpec& spec) {
  const std::string name = "fault '" + std::string(spec.name) + "': ";
  if (spec.families & kFamMemory)
    return name +
           "@memory cannot be reached by the seccomp backend: allocations are not system "
           "calls. Use --backend preload with a dynamically linked program";
  if (spec.families & kFamDns)
    return name +
           "@dns cannot be reached by the seccomp backend: lookups are not system calls. A "
           "program with its own resolver sends them to port 53: use @net with addr = \"*:53\"";
  if (spec.host[0])
    return name +
           "the `host` selector cannot be reached by the seccomp backend (a name being "
           "resolved is not a system call argument); use `addr`";
  if (spec.stack[0] || spec.site[0] || spec.record[0] || spec.log_stack)
    return name +
           "the seccomp backend cannot unwind the program's stack (`stack`, `site`, "
           "`record` and `log_stack` need the preload backend)";
  if (spec.after_bytes)
    return name +
           "`after_bytes` needs the preload backend (the seccomp backend does not count "
           "a connection's bytes)";
  if (spec.actions & kActPowercut)
    return name +
           "`powercut` needs the preload backend: what a power cut loses is tracked by the "
           "shim inside the program, which the seccomp backend does not load";
  if (const std::uint32_t extra = spec.actions & ~kSupportedActions) {
    const std::uint32_t bit = extra & -extra;
    return name + "the seccomp backend cannot deliver `" + std::string(action_name(bit)) +
           "` (it answers a system call, holds it, acts on the program's socket or makes the "
           "call for it). Use error, delay, latency, crash, reset, blackhole, eof, lie, short "
           "or corrupt, or --backend preload";
  }
  if ((spec.actions & kActCrash) && spec.crash_when == kCrashAfter)
    return name +
           "crash with when = \"after\" cannot be delivered by the seccomp backend: a "
           "signal sent once the call was let through can interrupt it before it is "
           "done. Use when = \"before\"";
  if ((spec.actions & kActError) && names(spec, kCall_close))
    return name +
           "`error` on close cannot be delivered honestly by the seccomp backend: Linux closes "
           "the descriptor even when close fails, and a filter can either let close run or "
           "answer it, never both (answering alone would leave the descriptor open). Name the "
           "@fs calls without close (e.g. calls = [\"rename\", \"unlink\"]), use delay or "
           "crash on close, or --backend preload";
  if (!calls_mapped(spec))
    return name +
           "its calls are libc functions that are no system call of their own; under "
           "the seccomp backend name the system calls (write, pwrite64, writev, read, "
           "fsync, openat, connect, sendto, recvfrom, renameat, unlinkat ...) or a family";
  return std::nullopt;
}

std::vector<sock_filter> build_filter(std::uint32_t families) {
  std::vector<int> trapped;
  for (const SyscallRow& row : kRows)
    if ((row.families & families) &&
        std::find(trapped.begin(), trapped.end(), row.nr) == trapped.end())
      trapped.push_back(row.nr);
  std::vector<sock_filter> prog;
  prog.push_back(BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, arch)));
  prog.push_back(BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0));
  prog.push_back(BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ENOSYS));
  prog.push_back(BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, nr)));
  prog.push_back(BPF_JUMP(BPF_JMP | BPF_JGE | BPF_K, 0x40000000u, 0, 1));  // __X32_SYSCALL_BIT
  prog.push_back(BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ENOSYS));
  const std::size_t n = trapped.size();
  for (std::size_t i = 0; i < n; ++i)
    prog.push_back(BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, static_cast<std::uint32_t>(trapped[i]),
                            static_cast<std::uint8_t>(n - i), 0));
  prog.push_back(BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW));
  prog.push_back(BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_USER_NOTIF));
  return prog;
}

}  // namespace faultline::seccomp
