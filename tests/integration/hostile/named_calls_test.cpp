// A call no fault names, in an armed family (docs/performance.md, "Issue 12's targets"):
// under a fault naming only `write`, pwrite goes to the real call on the shim's process-local
// copy of the calls some fault names (shim/engine/engine.h, call_named_by_none). The copy is
// keyed by the rules generation: a live edit that starts naming pwrite must fail the very
// next pwrite, which the program makes after the command returned. The tests check what the
// program saw: 200 pwrites that succeeded, then one that failed with EIO.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "harness.h"

namespace fltest {
namespace {

class HostileNamedCallsTest : public IntegrationTest {
 protected:
  static std::string program() { return std::string(FL_PROGRAMS_DIR) + "/fl_named_calls"; }

  // Runs the program under `policy` in session `name`, applies `edits` in order once it is
  // ready, and expects its next pwrite to fail.
  void expect_next_pwrite_fails(const std::string& policy, const std::string& name,
                                const std::vector<std::vector<std::string>>& edits) {
    Background target;
    ASSERT_TRUE(
        target.start({cli(), "run", "-s", name, "-p", policy, "--", program(), dir_.path()}));
    bool ready = false;
    target.read_until("ready", ready, 30s);
    ASSERT_TRUE(ready) << target.err();
    for (const auto& edit : edits) {
      const RunResult r = faultline(edit);
      ASSERT_EQ(r.status(), 0) << r.out << r.err;
    }
    ASSERT_TRUE(target.write_stdin("go\n"));
    const auto line = target.read_line(20s);
    ASSERT_TRUE(line.has_value()) << target.err();
    EXPECT_EQ(*line, "before=OK after=EIO") << target.err();
    const RunResult done = target.stop(10s);
    EXPECT_EQ(done.status(), 0) << done.err;
  }

  // A policy file: the fault naming only `write` (it arms @write, so pwrite is in an armed
  // family and named by none), then `more`.
  std::string write_only_policy(const std::string& file, const std::string& more = "") {
    const std::string at = path(file);
    EXPECT_TRUE(write_file(at, std::string(R"(version = 1
[[fault]]
name = "write-only"
calls = ["write"]
path = "/nonexistent/*"
error = "EIO"
)") + more));
    return at;
  }

  // A fault snippet for `faultline add`: pwrite on a.log fails.
  std::string pwrite_snippet() {
    const std::string at = path("pwrite.toml");
    EXPECT_TRUE(write_file(at, R"([[fault]]
name = "pwrite-a"
calls = ["pwrite", "pwrite64"]
path = "*/a.log"
error = "EIO"
)"));
    return at;
  }
};

// `faultline add` of a fault naming pwrite moves the generation: the copy the 200 pwrites
// used is stale at once.
TEST_F(HostileNamedCallsTest, LiveAddNamingPwriteFailsTheNextPwrite) {
  const std::string policy = write_only_policy("write-only.toml");
  const std::string name = session("named-add");
  expect_next_pwrite_fails(policy, name, {{"add", name, "-p", pwrite_snippet()}});
}

// A disabled fault naming pwrite; `enable` turns it on: the next pwrite fails. (A fault names
// its calls while disabled too: the copy says "named" here, and the edit must still reach the
// call through decide.)
TEST_F(HostileNamedCallsTest, LiveEnableOfAFaultNamingPwriteFailsTheNextPwrite) {
  const std::string policy = write_only_policy("disabled.toml", R"(
[[fault]]
name = "pwrite-a"
calls = ["pwrite", "pwrite64"]
path = "*/a.log"
error = "EIO"
enabled = false
)");
  const std::string name = session("named-enable");
  expect_next_pwrite_fails(policy, name, {{"enable", name, "pwrite-a"}});
}

// After a `remove` of the only fault naming pwrite, pwrite is named by none again; an `add`
// brings it back at once (the generation moved twice: the copy follows both).
TEST_F(HostileNamedCallsTest, LiveRemoveThenAddNamingPwriteFailsTheNextPwrite) {
  const std::string policy = write_only_policy("both.toml", R"(
[[fault]]
name = "pwrite-b"
calls = ["pwrite", "pwrite64"]
path = "*/b.log"
error = "EIO"
)");
  const std::string name = session("named-remove");
  expect_next_pwrite_fails(policy, name,
                           {{"remove", name, "pwrite-b"}, {"add", name, "-p", pwrite_snippet()}});
}

}  // namespace
}  // namespace fltest
