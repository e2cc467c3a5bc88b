// `git commit` under `faultline explore --powercut`, the durability issue's acceptance test: a
// power cut anywhere in a commit (before and after each fsync, rename and unlink under the
// repository's .git) must leave a repository `git fsck --strict` accepts. Each run copies a
// prepared repository (one file staged) into its own directory and makes the copy durable with
// sync(1) before committing, so that only the commit's own changes can be lost.
//
// With its default settings git 2.39 makes no fsync in this commit at all (explore finds only
// its renames and unlinks): every cut then reverts the whole commit, which is trivially
// consistent. The repository here sets core.fsync = all and core.fsyncMethod = fsync
// (git >= 2.36), so that objects, the index and the refs become durable one after the other and
// the cuts land between them: the states in which git promises a consistent repository.
#include <string>

#include "explore_report.h"
#include "harness.h"

namespace fltest {
namespace {

const char* const kGit = "/usr/bin/git";

class DurabilityGitTest : public IntegrationTest {
 protected:
  std::string state() const { return path("state"); }

  void SetUp() override {
    IntegrationTest::SetUp();
    RunOptions o;
    o.cwd = dir_.path();
    const std::string repo = path("template");
    for (const std::vector<std::string>& argv : std::vector<std::vector<std::string>>{
             {kGit, "init", "-q", repo},
             {kGit, "-C", repo, "config", "user.email", "t@example.com"},
             {kGit, "-C", repo, "config", "user.name", "t"},
             {kGit, "-C", repo, "config", "core.fsync", "all"},
             {kGit, "-C", repo, "config", "core.fsyncMethod", "fsync"},
             {kGit, "-C", repo, "config", "gc.auto", "0"}}) {
      const RunResult r = run(argv, o);
      ASSERT_EQ(r.status(), 0) << describe(argv, r);
    }
    ASSERT_TRUE(write_file(repo + "/file", "first\n"));
    ASSERT_EQ(run({kGit, "-C", repo, "add", "file"}, o).status(), 0);
    ASSERT_EQ(run({kGit, "-C", repo, "commit", "-q", "-m", "first"}, o).status(), 0);
    ASSERT_TRUE(write_file(repo + "/file", "second\n"));
    ASSERT_EQ(run({kGit, "-C", repo, "add", "file"}, o).status(), 0);
  }
};

TEST_F(DurabilityGitTest, CutDuringCommitLeavesARepositoryFsckAccepts) {
  // `*` crosses '/': every run's r/.git and everything under it (its directories are points
  // too: git fsyncs them after its renames).
  ASSERT_TRUE(write_file(
      path("git.toml"), "version = 1\n[durability]\npath = \"" + state() + "/runs/*/r/.git/*\"\n"));
  const std::string command =
      "cp -a " + path("template") + " r && /bin/sync && " + kGit + " -C r commit -q -m second";
  RunOptions o;
  o.timeout = 120s;
  o.cwd = dir_.path();
  const RunResult r =
      faultline({"explore", "--state", state(), "-p", path("git.toml"), "--powercut", "--check",
                 std::string(kGit) + " -C r fsck --strict --no-progress", "-j", "2", "-q", "--",
                 "/bin/sh", "-c", command},
                o);
  EXPECT_EQ(r.status(), 0) << r.err << r.out;
  EXPECT_NE(r.out.find("No findings: every cut was survived."), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("Finding"), std::string::npos) << r.out;
  // git's fsyncs of objects, refs, the index and their directories: every one was cut at.
  EXPECT_GE(powercut_points_found(r.out), 20u) << r.out;
  EXPECT_GE(powercut_runs_made(r.out), 2 * powercut_points_found(r.out))
      << r.out;  // before and after
}

}  // namespace
}  // namespace fltest
