// The @fs family under the seccomp backend (policy/seccomp_filter.cpp's @fs rows): a Go
// program's os.Rename, os.Remove, os.Mkdir, File.Truncate and File.Close, and a static C
// program's rename and unlink, which no preload reaches. Every assertion is on what the
// program printed (Go's own error text, the C library's strerror) or on the files it left.
#include <sys/stat.h>

#include <string>
#include <vector>

#include "seccomp_fixture.h"

namespace fltest {
namespace {

using namespace std::chrono_literals;

const std::string kStatic = FL_STATIC_IO;
#ifdef FL_GO_FSCHECK
const std::string kGoFs = FL_GO_FSCHECK;
#define SKIP_WITHOUT_GO() (void)0
#else
const std::string kGoFs;
#define SKIP_WITHOUT_GO() GTEST_SKIP() << "go is not installed: the Go programs were not built"
#endif

bool exists(const std::string& file) {
  struct stat st;
  return stat(file.c_str(), &st) == 0;
}

class SeccompFsTest : public SeccompFixture {
 protected:
  // A fresh directory for one run of a program.
  std::string fresh_dir() {
    const std::string dir = path("d" + std::to_string(++dirs_));
    mkdir(dir.c_str(), 0755);
    return dir;
  }
  // Always the seccomp backend (a Go program would choose it anyway; this says so).
  RunResult run_seccomp(const std::string& policy, const std::vector<std::string>& command) {
    return run_under(policy, command, {"--backend", "seccomp"});
  }
  // fscheck in a fresh directory under `policy`; the directory in `dir`.
  RunResult go_fs(const std::string& policy, std::string& dir) {
    dir = fresh_dir();
    return run_seccomp(policy, {kGoFs, dir});
  }
  static bool has(const RunResult& r, const std::string& line) {
    return r.out.find(line + "\n") != std::string::npos;
  }
  // A [[fault]] table: `name`, `calls` (the TOML array's contents), then the `more` lines.
  static std::string fault(const std::string& name, const std::string& calls,
                           const std::string& more = "") {
    return "[[fault]]\nname = \"" + name + "\"\ncalls = [" + calls + "]\n" + more;
  }
  // fscheck in `dir` under a policy of `faults`: it must exit 0 and print each of `lines`.
  RunResult expect_go_fs(const std::string& dir, const std::string& faults,
                         const std::vector<std::string>& lines) {
    const RunResult r = run_seccomp("version = 1\n" + faults, {kGoFs, dir});
    EXPECT_EQ(r.status(), 0) << r.out << r.err;
    for (const std::string& line : lines)
      EXPECT_TRUE(has(r, line)) << line << "\n" << r.out << r.err;
    return r;
  }
  int dirs_ = 0;
};

TEST_F(SeccompFsTest, GoProgramUnfaultedDoesEveryStep) {
  SKIP_WITHOUT_GO();
  std::string d;
  const RunResult r =
      go_fs("version = 1\n" + fault("never", R"("rename")", "path = \"*/no-such-file\"\n"), d);
  EXPECT_EQ(r.status(), 0) << r.out << r.err;
  EXPECT_EQ(r.out,
            "mkdir: ok\ntruncate: ok\nclose: ok\nrename: ok\nrename other: ok\nremove: ok\n"
            "rmdir: ok\n")
      << r.err;
  EXPECT_TRUE(exists(d + "/kept.txt"));
}

// calls = ["rename"] reaches Go's renameat; `path` matches the old path, and the other rename
// (no path of it matches) is untouched.
TEST_F(SeccompFsTest, GoRenameFailsWithGosOwnErrorOnlyForTheMatchingPath) {
  SKIP_WITHOUT_GO();
  const std::string d = fresh_dir();
  const RunResult r = expect_go_fs(
      d, fault("ren", R"("rename")", "path = \"*/a.txt\"\n"),
      {"rename: rename " + d + "/a.txt " + d + "/b.txt: input/output error", "rename other: ok"});
  EXPECT_TRUE(exists(d + "/a.txt"));  // the rename never ran
  EXPECT_NE(r.err.find("the system calls of @fs are trapped"), std::string::npos) << r.err;
  EXPECT_TRUE(exists(d + "/kept.txt"));
}

// `path` matches either path of a rename: here the new one.
TEST_F(SeccompFsTest, GoRenameMatchesTheNewPathToo) {
  SKIP_WITHOUT_GO();
  const std::string d = fresh_dir();
  expect_go_fs(d, fault("ren", R"("renameat2")", "path = \"*/kept.txt\"\nerror = \"EROFS\"\n"),
               {"rename: ok", "rename other: rename " + d + "/keep.txt " + d +
                                  "/kept.txt: read-only file system"});
  EXPECT_TRUE(exists(d + "/keep.txt"));
}

TEST_F(SeccompFsTest, GoMkdirTruncateAndRemove) {
  SKIP_WITHOUT_GO();
  const std::string d = fresh_dir();
  expect_go_fs(d,
               fault("ro", R"("mkdir")", "error = \"EROFS\"\n") +
                   fault("trunc", R"("ftruncate")", "path = \"*/a.txt\"\n") +
                   fault("unl", R"("unlink")", "path = \"*/b.txt\"\n"),
               {"mkdir: mkdir " + d + "/sub: read-only file system",
                "truncate: truncate " + d + "/a.txt: input/output error",
                "remove: remove " + d + "/b.txt: input/output error"});
  EXPECT_TRUE(exists(d + "/b.txt"));
  EXPECT_FALSE(exists(d + "/sub"));
}

// unlinkat with AT_REMOVEDIR (Go's os.Remove of a directory) is rmdir; removing a file is not.
TEST_F(SeccompFsTest, GoRemoveOfADirectoryIsRmdir) {
  SKIP_WITHOUT_GO();
  const std::string d = fresh_dir();
  expect_go_fs(d, fault("rm", R"("rmdir")"),
               {"remove: ok", "rmdir: remove " + d + "/sub: input/output error"});
  EXPECT_TRUE(exists(d + "/sub"));
}

// close: a delay is delivered (the call then runs: the fd is closed); an error is refused,
// since the fd could not be closed with it.
TEST_F(SeccompFsTest, CloseErrorIsRefusedAndADelayRuns) {
  SKIP_WITHOUT_GO();
  std::string d;
  const RunResult refused = go_fs("version = 1\n" + fault("c", R"("close")"), d);
  EXPECT_EQ(refused.status(), 2) << refused.out << refused.err;
  EXPECT_NE(refused.err.find("`error` on close"), std::string::npos) << refused.err;
  EXPECT_EQ(refused.out, "");

  const auto start = std::chrono::steady_clock::now();
  const RunResult delayed = go_fs(
      "version = 1\n" + fault("c", R"("close")", "path = \"*/a.txt\"\ndelay = \"200ms\"\n"), d);
  EXPECT_GE(std::chrono::steady_clock::now() - start, 200ms);  // the close was held
  EXPECT_EQ(delayed.status(), 0) << delayed.out << delayed.err;
  EXPECT_TRUE(has(delayed, "close: ok")) << delayed.out << delayed.err;
  EXPECT_TRUE(has(delayed, "rename: ok")) << delayed.out;
}

TEST_F(SeccompFsTest, CrashBeforeRename) {
  SKIP_WITHOUT_GO();
  std::string d;
  const RunResult r = go_fs(
      "version = 1\n" + fault("boom", R"("rename")", "path = \"*/a.txt\"\ncrash = \"SIGKILL\"\n"),
      d);
  EXPECT_NE(r.status(), 0) << r.out << r.err;
  EXPECT_TRUE(has(r, "close: ok")) << r.out << r.err;
  EXPECT_EQ(r.out.find("rename"), std::string::npos) << r.out;
  EXPECT_TRUE(exists(d + "/a.txt"));  // it died before the rename ran
}

TEST_F(SeccompFsTest, StaticProgramRenameAndUnlinkFail) {
  const std::string d1 = fresh_dir();
  const RunResult ren = run_seccomp(
      "version = 1\n" + fault("ren", R"("renameat")", "path = \"*/b\"\n"), {kStatic, "fs", d1});
  EXPECT_EQ(ren.status(), 0) << ren.out << ren.err;
  EXPECT_EQ(ren.out, "rename: Input/output error\nunlink: No such file or directory\n") << ren.err;
  EXPECT_TRUE(exists(d1 + "/a"));

  const std::string d2 = fresh_dir();
  const RunResult unl = run_seccomp(
      "version = 1\n" + fault("unl", R"("unlinkat")", "error = \"EROFS\"\n"), {kStatic, "fs", d2});
  EXPECT_EQ(unl.status(), 0) << unl.out << unl.err;
  EXPECT_EQ(unl.out, "rename: ok\nunlink: Read-only file system\n") << unl.err;
  EXPECT_TRUE(exists(d2 + "/b"));
}

TEST_F(SeccompFsTest, LiveEnableAndDisableReachTheStaticProgram) {
  const std::string name = session("seccomp-fs-live");
  const std::string d = fresh_dir();
  Background program;
  ASSERT_TRUE(start_live(program, name,
                         "version = 1\n" + fault("f", R"("rename")", "enabled = false\n"),
                         {kStatic, "fsloop", d}, {"--backend", "seccomp"}));
  auto next = [&] { return next_step(program, "rename"); };
  EXPECT_EQ(next(), "ok") << program.err();
  control({"enable", name, "f"});
  EXPECT_EQ(next(), "Input/output error") << program.err();
  control({"disable", name, "f"});
  EXPECT_EQ(next(), "ok");
  control({"enable", name, "f"});
  control({"set", name, "f", "error=EROFS"});
  EXPECT_EQ(next(), "Read-only file system");
  // An error on close cannot be added live either.
  ASSERT_TRUE(write_file(path("close.toml"), R"([[fault]]
name = "c"
calls = ["close"]
error = "EIO"
)"));
  const RunResult add = faultline({"add", name, "-p", path("close.toml")});
  EXPECT_EQ(add.status(), 2) << add.out << add.err;
  EXPECT_NE(add.err.find("`error` on close"), std::string::npos) << add.err;
  EXPECT_EQ(next(), "Read-only file system");
  program.close_stdin();
  const RunResult end = program.stop(10s);
  EXPECT_EQ(end.status(), 0) << end.err;
}

}  // namespace
}  // namespace fltest
