// Bad input gets a clear error, never a hang, an overflow or a silently wrong run: a policy
// "file" that is a FIFO, a device, a directory or far too big, at every entrance that reads
// one (validate, run -p, add -p, the shim's FAULTLINE_POLICY), and an event log path too long
// for the control block (run --log, FAULTLINE_LOG). Each run has a short deadline: before the
// fix, the FIFO hung and /dev/zero was read until memory ran out.
#include <sys/stat.h>

#include <filesystem>
#include <string>
#include <vector>

#include "harness.h"

namespace fltest {
namespace {

constexpr const char* kGoodPolicy = R"(version = 1
[[fault]]
name = "f"
calls = ["write"]
path = "*/never-written"
error = "EIO"
)";

class HostileInputTest : public IntegrationTest {
 protected:
  // A FIFO nobody writes to: opening it for a blocking read waits forever.
  std::string fifo() {
    const std::string p = path("policy.fifo");
    EXPECT_EQ(mkfifo(p.c_str(), 0600), 0);
    return p;
  }
  // A valid policy padded with comments past 2 MiB: it compiles, but is refused by size.
  std::string huge_policy() {
    std::string text = kGoodPolicy;
    const std::string comment = "# " + std::string(98, 'x') + "\n";
    while (text.size() < (2u << 20)) text += comment;
    EXPECT_TRUE(write_file(path("huge.toml"), text));
    return path("huge.toml");
  }
  static RunOptions quick() {
    RunOptions options;
    options.timeout = 10s;
    return options;
  }
  // `faultline validate FILE`: exit 2 within the deadline, the file named, `why` said.
  void expect_validate_refuses(const std::string& file, const std::string& why) {
    const std::vector<std::string> args{"validate", file};
    const RunResult r = faultline(args, quick());
    const std::string what = describe(args, r);
    EXPECT_FALSE(r.timed_out) << what;
    EXPECT_EQ(r.status(), 2) << what;
    EXPECT_NE(r.err.find(file), std::string::npos) << what;
    EXPECT_NE(r.err.find(why), std::string::npos) << what;
  }
  // A program under plain LD_PRELOAD with FAULTLINE_POLICY=`policy` runs to completion
  // unfaulted, and its stderr says why nothing was armed.
  void expect_preload_runs_unfaulted(const std::string& policy, const std::string& why) {
    const std::string out = path("out.txt");
    RunOptions options = quick();
    options.env = {{"LD_PRELOAD", shim()}, {"FAULTLINE_POLICY", policy}};
    const std::vector<std::string> argv{"/bin/sh", "-c", "echo hi > " + out};
    const RunResult r = run(argv, options);
    const std::string what = describe(argv, r);
    EXPECT_FALSE(r.timed_out) << what;
    EXPECT_EQ(r.status(), 0) << what;
    EXPECT_EQ(read_file(out).value_or("<missing>"), "hi\n") << what;
    EXPECT_NE(r.err.find(policy), std::string::npos) << what;
    EXPECT_NE(r.err.find(why), std::string::npos) << what;
    EXPECT_NE(r.err.find("no faults armed"), std::string::npos) << what;
  }
};

// ---- policy files that are not regular files, or too big ---------------------------------

TEST_F(HostileInputTest, ValidateRefusesAFifoNobodyWrites) {
  expect_validate_refuses(fifo(), "not a regular file (it is a FIFO)");
}

TEST_F(HostileInputTest, ValidateRefusesDevZero) {
  expect_validate_refuses("/dev/zero", "not a regular file (it is a character device)");
}

TEST_F(HostileInputTest, ValidateRefusesADirectory) {
  expect_validate_refuses(dir_.path(), "not a regular file (it is a directory)");
}

TEST_F(HostileInputTest, ValidateRefusesAPolicyOver1MiB) {
  expect_validate_refuses(huge_policy(), "over the limit of 1 MiB");
}

TEST_F(HostileInputTest, ValidateReadsStdinBoundedTo1MiB) {
  RunOptions options = quick();
  options.stdin_text = kGoodPolicy;
  const RunResult good = faultline({"validate", "-"}, options);
  EXPECT_EQ(good.status(), 0) << describe({"validate", "-"}, good);
  EXPECT_NE(good.out.find("ok"), std::string::npos) << describe({"validate", "-"}, good);

  std::string text = kGoodPolicy;
  while (text.size() < (2u << 20)) text += "# " + std::string(98, 'x') + "\n";
  options.stdin_text = text;
  const RunResult big = faultline({"validate", "-"}, options);
  EXPECT_FALSE(big.timed_out) << describe({"validate", "-"}, big);
  EXPECT_EQ(big.status(), 2) << describe({"validate", "-"}, big);
  EXPECT_NE(big.err.find("1 MiB"), std::string::npos) << describe({"validate", "-"}, big);
}

TEST_F(HostileInputTest, RunRefusesAFifoPolicyBeforeTheProgramRuns) {
  const std::string marker = path("marker");
  const std::string policy = fifo();
  const std::vector<std::string> args{"run",     "-p", policy,           "--",
                                      "/bin/sh", "-c", "touch " + marker};
  const RunResult r = faultline(args, quick());
  const std::string what = describe(args, r);
  EXPECT_FALSE(r.timed_out) << what;
  EXPECT_EQ(r.status(), 2) << what;
  EXPECT_NE(r.err.find("not a regular file"), std::string::npos) << what;
  EXPECT_FALSE(file_exists(marker)) << what;
}

TEST_F(HostileInputTest, AddRefusesDevZeroSnippet) {
  const std::vector<std::string> args{"add", session("add"), "-p", "/dev/zero"};
  const RunResult r = faultline(args, quick());
  const std::string what = describe(args, r);
  EXPECT_FALSE(r.timed_out) << what;
  EXPECT_EQ(r.status(), 2) << what;
  EXPECT_NE(r.err.find("not a regular file (it is a character device)"), std::string::npos) << what;
}

TEST_F(HostileInputTest, PreloadWithDevZeroPolicyRunsUnfaulted) {
  expect_preload_runs_unfaulted("/dev/zero", "not a regular file (it is a character device)");
}

TEST_F(HostileInputTest, PreloadWithFifoPolicyRunsUnfaulted) {
  expect_preload_runs_unfaulted(fifo(), "not a regular file (it is a FIFO)");
}

// ---- an event log path the control block cannot hold ------------------------------------

// 600 characters: past the block's 512-byte field even before it is made absolute.
std::string long_log_name() { return std::string(600, 'l') + ".jsonl"; }

TEST_F(HostileInputTest, RunRefusesALogPathTooLongForTheBlock) {
  ASSERT_TRUE(write_file(path("policy.toml"), kGoodPolicy));
  const std::string marker = path("marker");
  const std::vector<std::string> args{
      "run",     "-p", path("policy.toml"), "--log", path(long_log_name()), "--",
      "/bin/sh", "-c", "touch " + marker};
  const RunResult r = faultline(args, quick());
  const std::string what = describe(args, r);
  EXPECT_EQ(r.status(), 2) << what;
  EXPECT_NE(r.err.find("--log is too long"), std::string::npos) << what;
  EXPECT_FALSE(file_exists(marker)) << what;
}

TEST_F(HostileInputTest, RunRefusesAFaultlineLogTooLongForTheBlock) {
  ASSERT_TRUE(write_file(path("policy.toml"), kGoodPolicy));
  const std::string marker = path("marker");
  RunOptions options = quick();
  options.env = {{"FAULTLINE_LOG", path(long_log_name())}};
  const std::vector<std::string> args{"run",     "-p", path("policy.toml"), "--",
                                      "/bin/sh", "-c", "touch " + marker};
  const RunResult r = faultline(args, options);
  const std::string what = describe(args, r);
  EXPECT_EQ(r.status(), 2) << what;
  EXPECT_NE(r.err.find("FAULTLINE_LOG is too long"), std::string::npos) << what;
  EXPECT_FALSE(file_exists(marker)) << what;
}

// Under plain LD_PRELOAD there is nobody to refuse to: the faults run as asked, the log that
// cannot be written is left out, and stderr says so once.
TEST_F(HostileInputTest, PreloadWithFaultlineLogTooLongInjectsWithoutALog) {
  ASSERT_TRUE(write_file(path("policy.toml"), R"(version = 1
[[fault]]
name = "x-eio"
calls = ["write"]
path = "*/x.txt"
error = "EIO"
)"));
  RunOptions options = quick();
  options.cwd = dir_.path();
  options.env = {{"LD_PRELOAD", shim()},
                 {"FAULTLINE_POLICY", path("policy.toml")},
                 {"FAULTLINE_SESSION", session("longlog")},
                 {"FAULTLINE_LOG", long_log_name()}};
  const std::vector<std::string> argv{"/bin/sh", "-c", "echo hi > x.txt"};
  const RunResult r = run(argv, options);
  const std::string what = describe(argv, r);
  EXPECT_NE(r.status(), 0) << "the write fault was not injected\n" << what;
  EXPECT_EQ(count_substr(r.err, "FAULTLINE_LOG is too long"), 1u) << what;
  EXPECT_NE(r.err.find("no event log is written"), std::string::npos) << what;
  // No log under a cut name either: only the policy and the target are in the directory.
  for (const auto& entry : std::filesystem::directory_iterator(dir_.path())) {
    const std::string name = entry.path().filename().string();
    EXPECT_TRUE(name == "policy.toml" || name == "x.txt") << "unexpected file " << name;
  }
}

}  // namespace
}  // namespace fltest
