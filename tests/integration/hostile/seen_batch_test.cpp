// `seen` counted in batches (docs/policy.md, "seen"; shim/engine/engine.h, fd_call_quiet): the
// quiet path of an armed call adds to a per-thread count that reaches the session's counters
// later. Once the process tree has exited, the fault's `seen` must equal the calls exactly:
// none lost with a thread that ended, none counted twice by a forked child that inherited its
// parent's pending count, none left behind by the main thread at exit.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "harness.h"

namespace fltest {
namespace {

class HostileSeenBatchTest : public IntegrationTest {};

long json_number(const std::string& text, const std::string& key) {
  const std::string needle = "\"" + key + "\":";
  const auto at = text.find(needle);
  if (at == std::string::npos) return -1;
  return std::stol(text.substr(at + needle.size()));
}

TEST_F(HostileSeenBatchTest, SeenIsExactAfterThreadsForkAndExit) {
  const std::string policy = path("policy.toml");
  ASSERT_TRUE(write_file(policy, R"(version = 1
[[fault]]
name = "elsewhere"
calls = ["write"]
path = "/nonexistent/*"
error = "EIO"
)"));
  const std::string summary = path("summary.json");
  const std::vector<std::string> args{"run",
                                      "-p",
                                      policy,
                                      "--json-summary",
                                      summary,
                                      "--",
                                      std::string(FL_PROGRAMS_DIR) + "/fl_seen_batch"};
  const RunResult r = faultline(args);
  ASSERT_EQ(r.status(), 0) << describe(args, r);
  const auto at = r.out.find("writes=");
  ASSERT_NE(at, std::string::npos) << describe(args, r);
  const long writes = std::stol(r.out.substr(at + 7));
  EXPECT_EQ(writes, 101 + 1000 + 1037 + 1074 + 1111 + 29 + 77 + 45);
  const auto json = read_file(summary);
  ASSERT_TRUE(json.has_value());
  const std::string& text = *json;
  EXPECT_EQ(json_number(text, "seen"), writes) << text;
  EXPECT_EQ(json_number(text, "matched"), 0) << text;
}

}  // namespace
}  // namespace fltest
