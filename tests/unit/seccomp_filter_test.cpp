// The seccomp backend's policy side (policy/seccomp_filter.h): which system calls a policy
// traps, what it refuses, and the BPF program run through the kernel's own interpreter
// (a forked child installs it and makes the calls: trapped ones fail with the filter's
// answer, the rest run).
#include "policy/seccomp_filter.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/seccomp.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>

#include "calls/calls.h"
#include "policy/policy.h"

namespace faultline::seccomp {
namespace {

Policy compile(std::string_view toml) {
  CompileResult result = compile_policy_string(toml, "p.toml");
  EXPECT_FALSE(result.error) << result.error->to_string();
  return result.policy.value_or(Policy{});
}

TEST(SeccompFilter, TrapsTheFamiliesTheFaultsName) {
  const Policy p = compile(R"(version = 1
[[fault]]
name = "a"
calls = ["fsync"]
error = "EIO"
[[fault]]
name = "b"
calls = ["connect"]
error = "ECONNREFUSED"
enabled = false
)");
  EXPECT_EQ(trapped_families(p), static_cast<std::uint32_t>(kFamFsync | kFamNet));
  ASSERT_NE(find_syscall(SYS_write), nullptr);
  EXPECT_EQ(find_syscall(SYS_write)->call, static_cast<std::uint32_t>(kCall_write));
  EXPECT_TRUE(find_syscall(SYS_write)->families & kFamNet);  // Go's socket I/O is write/read
  EXPECT_EQ(find_syscall(SYS_getpid), nullptr);
}

TEST(SeccompFilter, RefusesWhatItCannotDeliver) {
  auto refusal_of = [](std::string_view fault) {
    const Policy p =
        compile(std::string("version = 1\n[[fault]]\nname = \"x\"\n") + std::string(fault) + "\n");
    return p.faults.empty() ? std::optional<std::string>("no fault") : refusal(p.faults[0]);
  };
  EXPECT_FALSE(refusal_of("calls = [\"write\"]\nerror = \"EIO\"\npath = \"*/a\"\nsize = 10"));
  EXPECT_FALSE(refusal_of("calls = [\"@net\"]\naddr = \"127.0.0.1:*\"\ndelay = \"1s\""));
  EXPECT_FALSE(refusal_of("calls = [\"fsync\"]\ncrash = \"SIGKILL\""));
  EXPECT_TRUE(refusal_of("calls = [\"malloc\"]\nerror = \"ENOMEM\""));
  // Made on the program's behalf, or done to its socket (supervisor.cpp).
  EXPECT_FALSE(refusal_of("calls = [\"write\"]\nshort = \"50%\""));
  EXPECT_FALSE(refusal_of("calls = [\"read\"]\ncorrupt = 1"));
  EXPECT_FALSE(refusal_of("calls = [\"@net\"]\nreset = true"));
  EXPECT_FALSE(refusal_of("calls = [\"connect\"]\nblackhole = true"));
  EXPECT_FALSE(refusal_of("calls = [\"recvfrom\"]\neof = true"));
  EXPECT_FALSE(refusal_of("calls = [\"fsync\"]\nlie = true"));
  EXPECT_TRUE(refusal_of("calls = [\"write\"]\nquota = \"1MiB\""));
  EXPECT_TRUE(refusal_of("calls = [\"@net\"]\nreset = true\nafter_bytes = 100"));
  EXPECT_TRUE(refusal_of("calls = [\"write\"]\nerror = \"EIO\"\nstack = \"main\""));
  EXPECT_TRUE(refusal_of("calls = [\"fclose\"]\nerror = \"EIO\""));
}

// @fs: one operation's names are one group (Go's os.Rename is renameat), unlinkat removing a
// directory is rmdir, and an error on close is refused (it could not close the fd).
TEST(SeccompFilter, FsNamesAGroupAndRefusesAnErrorOnClose) {
  auto first = [](std::string_view fault) {
    const Policy p =
        compile(std::string("version = 1\n[[fault]]\nname = \"x\"\n") + std::string(fault) + "\n");
    return p.faults.empty() ? FaultSpec{} : p.faults[0];
  };
  auto names = [](const FaultSpec& spec, std::uint32_t call) {
    return ((spec.calls_mask[call / 64] >> (call % 64)) & 1) != 0;
  };
  FaultSpec rename = first("calls = [\"rename\"]");
  EXPECT_FALSE(names(rename, kCall_renameat));
  widen_calls(rename);
  EXPECT_TRUE(names(rename, kCall_renameat));
  EXPECT_TRUE(names(rename, kCall_renameat2));
  EXPECT_FALSE(names(rename, kCall_unlinkat));
  FaultSpec again = rename;
  widen_calls(again);
  EXPECT_EQ(again.calls_mask[0], rename.calls_mask[0]);
  EXPECT_EQ(again.calls_mask[1], rename.calls_mask[1]);
  FaultSpec rmdir = first("calls = [\"rmdir\"]");
  widen_calls(rmdir);
  EXPECT_FALSE(names(rmdir, kCall_unlinkat));  // unlinkat removing a file is not rmdir

  const SyscallRow* unlinkat = find_syscall(SYS_unlinkat);
  ASSERT_NE(unlinkat, nullptr);
  seccomp_data file{};
  file.nr = SYS_unlinkat;
  seccomp_data dir = file;
  dir.args[2] = AT_REMOVEDIR;
  EXPECT_EQ(call_of(*unlinkat, file), static_cast<std::uint32_t>(kCall_unlinkat));
  EXPECT_EQ(call_of(*unlinkat, dir), static_cast<std::uint32_t>(kCall_rmdir));
  ASSERT_NE(find_syscall(SYS_close), nullptr);
  EXPECT_EQ(find_syscall(SYS_close)->families, static_cast<std::uint32_t>(kFamFs));

  Policy p;
  p.faults.push_back(rename);
  EXPECT_EQ(trapped_families(p), static_cast<std::uint32_t>(kFamFs));
  EXPECT_FALSE(refusal(rename));
  EXPECT_FALSE(refusal(first("calls = [\"close\"]\ndelay = \"1s\"")));
  EXPECT_TRUE(refusal(first("calls = [\"close\"]\nerror = \"EIO\"")));
  EXPECT_TRUE(refusal(first("calls = [\"@fs\"]\nerror = \"EIO\"")));
  EXPECT_FALSE(refusal(first("calls = [\"mkdirat\", \"unlink\"]\nerror = \"EROFS\"")));
  EXPECT_TRUE(refusal(first("calls = [\"write\"]\nquota = \"1MiB\"")));
}

// Runs `calls` in a child under build_filter(families) without a listener: a trapped call
// then fails with ENOSYS (no one to notify), an untrapped one runs.
int child_errno_for(std::uint32_t families, long nr) {
  const std::vector<sock_filter> filter = build_filter(families);
  const pid_t pid = fork();
  if (pid == 0) {
    sock_fprog prog{static_cast<unsigned short>(filter.size()),
                    const_cast<sock_filter*>(filter.data())};
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) _exit(100);
    if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog) != 0) _exit(101);
    const long rc = nr == SYS_fsync ? syscall(SYS_fsync, 1) : syscall(SYS_getppid);
    _exit(rc < 0 ? (errno == ENOSYS ? 38 : 99) : 0);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

TEST(SeccompFilter, TheKernelRunsTheProgram) {
  EXPECT_EQ(child_errno_for(kFamFsync, SYS_fsync), 38);  // trapped: no listener, ENOSYS
  EXPECT_EQ(child_errno_for(kFamFsync, SYS_getppid), 0);
  // fsync on a pipe or terminal may fail on its own (EINVAL): anything but ENOSYS is "ran".
  EXPECT_NE(child_errno_for(kFamWrite, SYS_fsync), 38);
}

}  // namespace
}  // namespace faultline::seccomp
