// The per-fd verdict cache (docs/reliability.md, "A cached 'no fault here'"): a write that
// missed every fault because of its fd's path makes later writes on that fd skip the engine.
// The cached "no" must die with every event that can change the answer: a live edit of the
// fault (a new rules generation), the fd closed and its number reopened to another file, and
// dup2 onto it. Each test checks what the real program saw: its write to the file the fault
// now aims at failed with EIO.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "harness.h"

namespace fltest {
namespace {

class HostileVerdictCacheTest : public IntegrationTest {
 protected:
  std::string policy() {
    const std::string file = path("policy.toml");
    EXPECT_TRUE(write_file(file, R"(version = 1
[[fault]]
name = "b-log"
calls = ["write"]
path = "*/b.log"
error = "EIO"
)"));
    return file;
  }
  static std::string program() { return std::string(FL_PROGRAMS_DIR) + "/fl_verdict_cache"; }

  void expect_second_write_fails(const std::string& mode) {
    const std::vector<std::string> args{"run", "-p", policy(), "--", program(), mode, dir_.path()};
    const RunResult r = faultline(args);
    EXPECT_EQ(r.status(), 0) << describe(args, r);
    EXPECT_NE(r.out.find("first=OK second=EIO"), std::string::npos) << describe(args, r);
  }
};

TEST_F(HostileVerdictCacheTest, FdClosedAndReopenedToTheFaultedFileByNumber) {
  expect_second_write_fails("reopen");
}

TEST_F(HostileVerdictCacheTest, Dup2OfTheFaultedFileOntoACachedFd) {
  expect_second_write_fails("dup2");
}

TEST_F(HostileVerdictCacheTest, LiveSetPathTakesEffectOnAnAlreadyOpenFd) {
  const std::string name = session("verdict");
  Background target;
  ASSERT_TRUE(target.start(
      {cli(), "run", "-s", name, "-p", policy(), "--", program(), "live", dir_.path()}));
  bool ready = false;
  target.read_until("ready", ready, 30s);
  ASSERT_TRUE(ready) << target.err();
  // The fault moves to a.log, the file the program holds open with a cached "no".
  const RunResult set = faultline({"set", name, "b-log", "path=*/a.log"});
  ASSERT_EQ(set.status(), 0) << set.out << set.err;
  ASSERT_TRUE(target.write_stdin("go\n"));
  const auto line = target.read_line(20s);
  ASSERT_TRUE(line.has_value()) << target.err();
  EXPECT_EQ(*line, "first=OK second=EIO") << target.err();
  const RunResult r = target.stop(10s);
  EXPECT_EQ(r.status(), 0) << r.err;
}

// A fault that is disabled misses every call: the first writes to a.log cache "no fault
// here" (and count `seen` in the thread's batch). `faultline enable` must fail the very next
// write, which the program makes after the command returned.
TEST_F(HostileVerdictCacheTest, LiveEnableTakesEffectOnTheNextCallAfterACachedVerdict) {
  const std::string file = path("disabled.toml");
  ASSERT_TRUE(write_file(file, R"(version = 1
[[fault]]
name = "a-log"
calls = ["write"]
path = "*/a.log"
error = "EIO"
enabled = false

# Keeps @write armed while a-log is off: a.log's writes decide, miss, and are cached.
[[fault]]
name = "b-log"
calls = ["write"]
path = "*/b.log"
error = "EIO"
)"));
  const std::string name = session("verdict-enable");
  Background target;
  ASSERT_TRUE(
      target.start({cli(), "run", "-s", name, "-p", file, "--", program(), "live", dir_.path()}));
  bool ready = false;
  target.read_until("ready", ready, 30s);
  ASSERT_TRUE(ready) << target.err();
  const RunResult enable = faultline({"enable", name, "a-log"});
  ASSERT_EQ(enable.status(), 0) << enable.out << enable.err;
  ASSERT_TRUE(target.write_stdin("go\n"));
  const auto line = target.read_line(20s);
  ASSERT_TRUE(line.has_value()) << target.err();
  EXPECT_EQ(*line, "first=OK second=EIO") << target.err();
  const RunResult r = target.stop(10s);
  EXPECT_EQ(r.status(), 0) << r.err;
}

}  // namespace
}  // namespace fltest
