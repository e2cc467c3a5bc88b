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
  int dirs_ = 0;
};

TEST_F(SeccompFsTest, GoProgramUnfaultedDoesEveryStep) {
  SKIP_WITHOUT_GO();
  std::string d;
  const RunResult r = go_fs(R"(version = 1
[[fault]]
name = "never"
calls = ["rename"]
path = "*/no-such-file"
)",
                            d);
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
  std::string d;
  const RunResult r = go_fs(R"(version = 1
[[fault]]
name = "ren"
calls = ["rename"]
path = "*/a.txt"
)",
                            d);
  EXPECT_EQ(r.status(), 0) << r.out << r.err;
  EXPECT_TRUE(has(r, "rename: rename " + d + "/a.txt " + d + "/b.txt: input/output error"))
      << r.out << r.err;
  EXPECT_TRUE(has(r, "rename other: ok")) << r.out;
  EXPECT_TRUE(exists(d + "/a.txt"));  // the rename never ran
  EXPECT_NE(r.err.find("the system calls of @fs are trapped"), std::string::npos) << r.err;
  EXPECT_TRUE(exists(d + "/kept.txt"));
}

// `path` matches either path of a rename: here the new one.
TEST_F(SeccompFsTest, GoRenameMatchesTheNewPathToo) {
  SKIP_WITHOUT_GO();
  std::string d;
  const RunResult r = go_fs(R"(version = 1
[[fault]]
name = "ren"
calls = ["renameat2"]
path = "*/kept.txt"
error = "EROFS"
)",
                            d);
  EXPECT_EQ(r.status(), 0) << r.out << r.err;
  EXPECT_TRUE(has(r, "rename: ok")) << r.out << r.err;
  EXPECT_TRUE(
      has(r, "rename other: rename " + d + "/keep.txt " + d + "/kept.txt: read-only file system"))
      << r.out << r.err;
  EXPECT_TRUE(exists(d + "/keep.txt"));
}

TEST_F(SeccompFsTest, GoMkdirTruncateAndRemove) {
  SKIP_WITHOUT_GO();
  std::string d;
  const RunResult r = go_fs(R"(version = 1
[[fault]]
name = "ro"
calls = ["mkdir"]
error = "EROFS"
[[fault]]
name = "trunc"
calls = ["ftruncate"]
path = "*/a.txt"
[[fault]]
name = "unl"
calls = ["unlink"]
path = "*/b.txt"
)",
                            d);
  EXPECT_EQ(r.status(), 0) << r.out << r.err;
  EXPECT_TRUE(has(r, "mkdir: mkdir " + d + "/sub: read-only file system")) << r.out << r.err;
  EXPECT_TRUE(has(r, "truncate: truncate " + d + "/a.txt: input/output error")) << r.out;
  EXPECT_TRUE(has(r, "remove: remove " + d + "/b.txt: input/output error")) << r.out;
  EXPECT_TRUE(exists(d + "/b.txt"));
  EXPECT_FALSE(exists(d + "/sub"));
}

// unlinkat with AT_REMOVEDIR (Go's os.Remove of a directory) is rmdir; removing a file is not.
TEST_F(SeccompFsTest, GoRemoveOfADirectoryIsRmdir) {
  SKIP_WITHOUT_GO();
  std::string d;
  const RunResult r = go_fs(R"(version = 1
[[fault]]
name = "rm"
calls = ["rmdir"]
)",
                            d);
  EXPECT_EQ(r.status(), 0) << r.out << r.err;
  EXPECT_TRUE(has(r, "remove: ok")) << r.out << r.err;
  EXPECT_TRUE(has(r, "rmdir: remove " + d + "/sub: input/output error")) << r.out;
  EXPECT_TRUE(exists(d + "/sub"));
}

// close: a delay is delivered (the call then runs: the fd is closed); an error is refused,
// since the fd could not be closed with it.
TEST_F(SeccompFsTest, CloseErrorIsRefusedAndADelayRuns) {
  SKIP_WITHOUT_GO();
  std::string d;
  const RunResult refused = go_fs(R"(version = 1
[[fault]]
name = "c"
calls = ["close"]
)",
                                  d);
  EXPECT_EQ(refused.status(), 2) << refused.out << refused.err;
  EXPECT_NE(refused.err.find("`error` on close"), std::string::npos) << refused.err;
  EXPECT_EQ(refused.out, "");

  const auto start = std::chrono::steady_clock::now();
  const RunResult delayed = go_fs(R"(version = 1
[[fault]]
name = "c"
calls = ["close"]
path = "*/a.txt"
delay = "200ms"
)",
                                  d);
  EXPECT_GE(std::chrono::steady_clock::now() - start, 200ms);  // the close was held
  EXPECT_EQ(delayed.status(), 0) << delayed.out << delayed.err;
  EXPECT_TRUE(has(delayed, "close: ok")) << delayed.out << delayed.err;
  EXPECT_TRUE(has(delayed, "rename: ok")) << delayed.out;
}

TEST_F(SeccompFsTest, CrashBeforeRename) {
  SKIP_WITHOUT_GO();
  std::string d;
  const RunResult r = go_fs(R"(version = 1
[[fault]]
name = "boom"
calls = ["rename"]
path = "*/a.txt"
crash = "SIGKILL"
)",
                            d);
  EXPECT_NE(r.status(), 0) << r.out << r.err;
  EXPECT_TRUE(has(r, "close: ok")) << r.out << r.err;
  EXPECT_EQ(r.out.find("rename"), std::string::npos) << r.out;
  EXPECT_TRUE(exists(d + "/a.txt"));  // it died before the rename ran
}

TEST_F(SeccompFsTest, StaticProgramRenameAndUnlinkFail) {
  const std::string d1 = fresh_dir();
  const RunResult ren = run_seccomp(R"(version = 1
[[fault]]
name = "ren"
calls = ["renameat"]
path = "*/b"
)",
                                    {kStatic, "fs", d1});
  EXPECT_EQ(ren.status(), 0) << ren.out << ren.err;
  EXPECT_EQ(ren.out, "rename: Input/output error\nunlink: No such file or directory\n") << ren.err;
  EXPECT_TRUE(exists(d1 + "/a"));

  const std::string d2 = fresh_dir();
  const RunResult unl = run_seccomp(R"(version = 1
[[fault]]
name = "unl"
calls = ["unlinkat"]
error = "EROFS"
)",
                                    {kStatic, "fs", d2});
  EXPECT_EQ(unl.status(), 0) << unl.out << unl.err;
  EXPECT_EQ(unl.out, "rename: ok\nunlink: Read-only file system\n") << unl.err;
  EXPECT_TRUE(exists(d2 + "/b"));
}

TEST_F(SeccompFsTest, LiveEnableAndDisableReachTheStaticProgram) {
  const std::string name = session("seccomp-fs-live");
  const std::string d = fresh_dir();
  ASSERT_TRUE(write_file(path("live.toml"), R"(version = 1
[[fault]]
name = "f"
calls = ["rename"]
enabled = false
)"));
  Background program;
  ASSERT_TRUE(program.start({cli(), "run", "--backend", "seccomp", "-s", name, "-p",
                             path("live.toml"), "--", kStatic, "fsloop", d}));
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
