// The @fs family (docs/policy.md, "Families and calls"): real programs — coreutils mv, mkdir,
// rm, ln, truncate, util-linux fallocate, and two small C programs that close a file — meet
// faults on rename, mkdir, unlink, link, truncate, fallocate and close and report them in
// their own words. Also: `path` matches a relative path made absolute and either path of a
// rename; crash after a rename leaves it done; a @write quota counts preallocated space; a bad
// path pointer gets the kernel's EFAULT under any armed @fs fault (docs/reliability.md).
#include <sys/stat.h>

#include <chrono>
#include <string>
#include <vector>

#include "harness.h"

namespace fltest {
namespace {

std::string program(const std::string& name) {
  return std::string(FL_PROGRAMS_DIR) + "/fl_" + name;
}

class FsTest : public IntegrationTest {
 protected:
  // `faultline run -p POLICY -- argv...` in the test's directory (so relative paths resolve
  // there), with the policy written to NAME.toml.
  RunResult run_under(const std::string& name, const std::string& policy,
                      const std::vector<std::string>& argv) {
    EXPECT_TRUE(write_file(path(name + ".toml"), policy));
    std::vector<std::string> args{"run", "-s", session(name), "-p", path(name + ".toml"), "--"};
    args.insert(args.end(), argv.begin(), argv.end());
    RunOptions options;
    options.cwd = dir_.path();
    last_args_ = args;
    return faultline(args, options);
  }
  std::string why(const RunResult& r) const { return describe(last_args_, r); }
  // A fault on `calls` for paths under the test directory starting with `prefix`.
  std::string policy(const std::string& calls, const std::string& prefix,
                     const std::string& action) const {
    return "version = 1\n[[fault]]\nname = \"fs\"\ncalls = " + calls + "\npath = \"" + dir_.path() +
           "/" + prefix + "*\"\n" + action + "\n";
  }

  std::vector<std::string> last_args_;
};

TEST_F(FsTest, MvFailsWithItsOwnMessageOnAMatchingPathOnly) {
  ASSERT_TRUE(write_file(path("a1"), "a\n"));
  ASSERT_TRUE(write_file(path("b1"), "b\n"));
  const std::string p = policy(R"(["@fs"])", "a", R"(error = "EROFS")");
  RunResult r = run_under("mv-a", p, {"/usr/bin/mv", "a1", "a2"});
  EXPECT_EQ(r.status(), 1) << why(r);
  EXPECT_NE(r.err.find("mv: cannot move 'a1' to 'a2': Read-only file system"), std::string::npos)
      << why(r);
  EXPECT_TRUE(file_exists(path("a1"))) << "an injected error must leave the file where it was";
  EXPECT_FALSE(file_exists(path("a2")));
  EXPECT_EQ(summary_injected(r.err, "fs"), 1u) << why(r);

  // The same fault does not touch a rename whose paths it does not name.
  r = run_under("mv-b", p, {"/usr/bin/mv", "b1", "b2"});
  EXPECT_EQ(r.status(), 0) << why(r);
  EXPECT_TRUE(file_exists(path("b2")));
  EXPECT_EQ(summary_injected(r.err, "fs"), 0u) << why(r);

  // Either path of a rename matches: b2 -> a3 is caught by its new path.
  r = run_under("mv-to-a", p, {"/usr/bin/mv", "b2", "a3"});
  EXPECT_EQ(r.status(), 1) << why(r);
  EXPECT_NE(r.err.find("Read-only file system"), std::string::npos) << why(r);
  EXPECT_TRUE(file_exists(path("b2")));
}

TEST_F(FsTest, CoreutilsReportTheInjectedErrnoInTheirOwnWords) {
  ASSERT_TRUE(write_file(path("t-file"), "x\n"));
  const std::string p = policy(R"(["@fs"])", "t-", R"(error = "ENOSPC")");
  struct Case {
    std::vector<std::string> argv;
    std::string says;
  };
  const std::vector<Case> cases = {
      {{"/usr/bin/mkdir", "-p", "t-dir/sub"}, "mkdir: cannot create directory"},
      {{"/usr/bin/rm", "t-file"}, "rm: cannot remove 't-file'"},
      {{"/usr/bin/ln", "t-file", "t-hard"}, "ln: failed to create hard link 't-hard'"},
      {{"/usr/bin/ln", "-s", "t-file", "t-soft"}, "ln: failed to create symbolic link 't-soft'"},
      {{"/usr/bin/truncate", "-s", "10", "t-file"}, "truncate: failed to truncate 't-file'"},
      {{"/usr/bin/fallocate", "-l", "4096", "t-file"}, "fallocate: fallocate failed"},
  };
  int n = 0;
  for (const Case& c : cases) {
    const RunResult r = run_under("core" + std::to_string(n++), p, c.argv);
    EXPECT_EQ(r.status(), 1) << why(r);
    EXPECT_NE(r.err.find(c.says), std::string::npos) << why(r);
    EXPECT_NE(r.err.find("No space left on device"), std::string::npos) << why(r);
  }
  EXPECT_TRUE(file_exists(path("t-file")));
  EXPECT_FALSE(file_exists(path("t-dir")));
  EXPECT_FALSE(file_exists(path("t-hard")));
  EXPECT_FALSE(file_exists(path("t-soft")));
  EXPECT_EQ(file_size(path("t-file")), 2u);
}

TEST_F(FsTest, ANaturalErrorIsEioAndValidateNamesIt) {
  const std::string p = "version = 1\n[[fault]]\nname = \"fs\"\ncalls = [\"@fs\"]\n";
  ASSERT_TRUE(write_file(path("natural.toml"), p));
  const RunResult v = faultline({"validate", path("natural.toml")});
  EXPECT_EQ(v.status(), 0) << v.err << v.out;
  EXPECT_NE((v.out + v.err).find("EIO"), std::string::npos) << v.err << v.out;
  ASSERT_TRUE(write_file(path("n-file"), "x\n"));
  const RunResult r = run_under("natural", p, {"/usr/bin/rm", "n-file"});
  EXPECT_EQ(r.status(), 1) << why(r);
  EXPECT_NE(r.err.find("rm: cannot remove 'n-file': Input/output error"), std::string::npos)
      << why(r);
}

TEST_F(FsTest, CrashAfterARenameLeavesItDoneAndTheProcessKilled) {
  ASSERT_TRUE(write_file(path("c1"), "c\n"));
  const RunResult r = run_under("crash",
                                policy(R"(["rename", "renameat", "renameat2"])", "c",
                                       "crash = \"SIGKILL\"\nwhen = \"after\""),
                                {"/usr/bin/mv", "c1", "c2"});
  EXPECT_EQ(r.status(), 128 + 9) << why(r);
  EXPECT_FALSE(file_exists(path("c1"))) << "the rename must have happened before the crash";
  EXPECT_TRUE(file_exists(path("c2")));
  EXPECT_EQ(summary_injected(r.err, "fs"), 1u) << why(r);
}

TEST_F(FsTest, DelayOnUnlinkSlowsIt) {
  ASSERT_TRUE(write_file(path("d-file"), "x\n"));
  const auto start = std::chrono::steady_clock::now();
  const RunResult r =
      run_under("delay", policy(R"(["unlink", "unlinkat"])", "d-", R"(delay = "700ms")"),
                {"/usr/bin/rm", "d-file"});
  const auto took = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(r.status(), 0) << why(r);
  EXPECT_FALSE(file_exists(path("d-file")));
  EXPECT_GE(took, std::chrono::milliseconds(600)) << why(r);
  EXPECT_EQ(summary_injected(r.err, "fs"), 1u) << why(r);
}

TEST_F(FsTest, EventLinesNameBothPathsOfARename) {
  ASSERT_TRUE(write_file(path("e1"), "e\n"));
  const std::string p = "version = 1\n[log]\npath = \"" + path("events.jsonl") + "\"\n" +
                        policy(R"(["@fs"])", "e", R"(error = "EIO")").substr(12);
  const RunResult r = run_under("events", p, {"/usr/bin/mv", "e1", "e2"});
  EXPECT_EQ(r.status(), 1) << why(r);
  const auto log = read_file(path("events.jsonl"));
  ASSERT_TRUE(log.has_value()) << why(r);
  EXPECT_NE(log->find(R"("path":"e1 -> e2")"), std::string::npos) << *log;
  EXPECT_NE(log->find(R"("errno":"EIO")"), std::string::npos) << *log;
}

// A live session's `status --json` counts the @fs fault's calls: mv's rename seen, matched and
// injected, while the shell that ran it still waits on its stdin.
TEST_F(FsTest, StatusJsonCountsTheFaultsCalls) {
  ASSERT_TRUE(write_file(path("s1"), "s\n"));
  ASSERT_TRUE(write_file(path("live.toml"), policy(R"(["@fs"])", "s1", R"(error = "EIO")")));
  const std::string name = session("live");
  Background shell;
  RunOptions options;
  options.cwd = dir_.path();
  ASSERT_TRUE(shell.start({cli(), "run", "-s", name, "-p", path("live.toml"), "--", "/bin/sh", "-c",
                           "/usr/bin/mv s1 s2; echo moved; read x; exit 0"},
                          options));
  ASSERT_EQ(shell.read_line(), std::optional<std::string>("moved")) << shell.err();
  const RunResult status = faultline({"status", name, "--json"});
  EXPECT_EQ(status.status(), 0) << status.err;
  EXPECT_EQ(status_json_injected(status.out, "fs"), 1u) << status.out;
  // seen counts every @fs call of the session (the shell's closes too); matched only mv's.
  EXPECT_NE(status.out.find(R"("matched":1,"injected":1)"), std::string::npos) << status.out;
  EXPECT_NE(status.out.find(R"("calls":["@fs"])"), std::string::npos) << status.out;
  shell.close_stdin();
  const RunResult end = shell.stop();
  EXPECT_EQ(end.status(), 0) << end.err;
  EXPECT_TRUE(file_exists(path("s1")));
}

// docs/policy.md: a @write quota is a disk that fills up; preallocating on it fills it too.
TEST_F(FsTest, AWriteQuotaCountsSpaceThatFallocateAndTruncateReserve) {
  const std::string p = policy(R"(["@write"])", "q-", R"(quota = "1MiB")");
  RunResult r = run_under("q-small", p, {"/usr/bin/fallocate", "-l", "512KiB", "q-small"});
  EXPECT_EQ(r.status(), 0) << why(r);
  EXPECT_EQ(file_size(path("q-small")), 512u * 1024) << why(r);
  r = run_under("q-big", p, {"/usr/bin/fallocate", "-l", "2MiB", "q-big"});
  EXPECT_EQ(r.status(), 1) << why(r);
  EXPECT_NE(r.err.find("No space left on device"), std::string::npos) << why(r);
  r = run_under("q-trunc", p, {"/usr/bin/truncate", "-s", "2M", "q-trunc"});
  EXPECT_EQ(r.status(), 1) << why(r);
  EXPECT_NE(r.err.find("No space left on device"), std::string::npos) << why(r);
  // Shrinking reserves nothing; a path the fault does not name is not counted.
  r = run_under("q-other", p, {"/usr/bin/truncate", "-s", "2M", "other"});
  EXPECT_EQ(r.status(), 0) << why(r);
}

// posix_fallocate reports its error as its return value (errno untouched): Python's
// os.posix_fallocate raises it. 512 KiB fit a 1 MiB quota; growing the file to 2 MiB does not.
TEST_F(FsTest, PosixFallocateReturnsTheQuotasEnospc) {
  const std::string script =
      "import os\n"
      "fd = os.open('q-py', os.O_CREAT | os.O_WRONLY)\n"
      "os.posix_fallocate(fd, 0, 512 * 1024)\n"
      "print('small', os.fstat(fd).st_size)\n"
      "try:\n"
      "    os.posix_fallocate(fd, 0, 2 << 20)\n"
      "    print('big ok')\n"
      "except OSError as e:\n"
      "    print('big', e.strerror)\n";
  const RunResult r = run_under("q-py", policy(R"(["@write"])", "q-", R"(quota = "1MiB")"),
                                {"/usr/bin/python3", "-c", script});
  EXPECT_EQ(r.status(), 0) << why(r);
  EXPECT_EQ(r.out, "small 524288\nbig No space left on device\n") << why(r);
  EXPECT_EQ(file_size(path("q-py")), 512u * 1024);
}

class HostileFsTest : public FsTest {};

// close(2) under NFS: the deferred write-back fails at close with EIO. The program that ignores
// close's result says "saved"; the one that checks it reports the failure; in both, the fd is
// closed (Linux closes it whatever close reports).
TEST_F(HostileFsTest, CloseFailingWithEioIsSeenOnlyByTheProgramThatChecks) {
  const std::string p = policy(R"(["close"])", "rec", R"(error = "EIO")");
  RunResult r = run_under("ignorer", p, {program("close_ignorer"), "record"});
  EXPECT_EQ(r.status(), 0) << why(r);
  EXPECT_EQ(r.out, "saved\n") << why(r);
  EXPECT_EQ(summary_injected(r.err, "fs"), 1u) << "the close was failed, unnoticed\n" << why(r);

  r = run_under("checker", p, {program("close_checker"), "record"});
  EXPECT_EQ(r.status(), 1) << why(r);
  EXPECT_EQ(r.out, "fd closed\nclose failed: Input/output error\n") << why(r);
  EXPECT_EQ(summary_injected(r.err, "fs"), 1u) << why(r);

  // A close the fault's path does not name is untouched.
  r = run_under("checker-other", p, {program("close_checker"), "other"});
  EXPECT_EQ(r.status(), 0) << why(r);
  EXPECT_EQ(r.out, "fd closed\nsaved\n") << why(r);
}

// A delayed rename is not a cancellation point (glibc declares it __THROW): a cancel during
// the delay stays pending and the rename completes; a delayed close is cancelled, as the real
// close would be. Before: the rename's delay acted on the cancel.
TEST_F(HostileFsTest, ACancelEndsAHeldCloseButNotAHeldRename) {
  const std::string p = "version = 1\n[[fault]]\nname = \"r\"\ncalls = [\"rename\"]\npath = \"" +
                        dir_.path() + "/x\"\ndelay = \"400ms\"\n[[fault]]\nname = \"c\"\n" +
                        "calls = [\"close\"]\npath = \"" + dir_.path() +
                        "/z\"\ndelay = \"400ms\"\n";
  const RunResult r = run_under("cancel", p, {program("fs_cancel"), dir_.path()});
  EXPECT_EQ(r.status(), 0) << why(r);
  EXPECT_EQ(r.out, "rename: done\nclose: canceled\n") << why(r);
  EXPECT_TRUE(file_exists(path("y"))) << why(r);
  EXPECT_EQ(summary_injected(r.err, "r"), 1u) << why(r);
  EXPECT_EQ(summary_injected(r.err, "c"), 1u) << why(r);
}

// A NULL, wild or unmapped path in any position of the @fs path calls gets the kernel's own
// EFAULT under armed @fs faults, matching everything or nothing: never the injected error,
// never a SIGSEGV in the shim.
TEST_F(HostileFsTest, BadPathPointersGetTheKernelsEfault) {
  const std::vector<std::string> argv{program("fs_wild_paths"), dir_.path()};
  const RunResult native = run(argv);
  ASSERT_EQ(native.status(), 0) << describe(argv, native);
  ASSERT_NE(native.out.find("rename-old-null -1 14\n"), std::string::npos) << native.out;
  for (const std::string& glob : {std::string("*"), std::string("/nonexistent/*")}) {
    const std::string p = "version = 1\n[[fault]]\nname = \"fs\"\ncalls = [\"@fs\"]\npath = \"" +
                          glob + "\"\nerror = \"ENOSPC\"\n";
    const RunResult r = run_under("wild", p, argv);
    EXPECT_EQ(r.status(), 0) << why(r);
    EXPECT_EQ(r.out, native.out) << why(r);
  }
  // Without a path selector the path is never read to match, and still checked before an
  // injection: the kernel's EFAULT, not the fault's ENOSPC.
  const RunResult r = run_under(
      "wild-all", "version = 1\n[[fault]]\nname = \"fs\"\ncalls = [\"@fs\"]\nerror = \"ENOSPC\"\n",
      argv);
  EXPECT_EQ(r.status(), 0) << why(r);
  EXPECT_EQ(r.out, native.out) << why(r);
}

}  // namespace
}  // namespace fltest
