// A C++ program without a shared C++ runtime (fl_stack_static, linked -static-libstdc++): the
// shim has no demangler of its own (docs/performance.md, "Size") and finds none in the program,
// so its frames are named by the shim's small fallback. A `stack` glob written with the name a
// dynamically linked build would show must still select the same call, and the shim says once
// that it demangles without the C++ runtime (docs/limits.md).
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "harness.h"

namespace fltest {
namespace {

class HostileStackStaticTest : public IntegrationTest {
 protected:
  RunResult run_with_stack(const std::string& glob) {
    const std::string policy = path("policy.toml");
    EXPECT_TRUE(write_file(policy,
                           "version = 1\n[[fault]]\nname = \"s\"\ncalls = [\"write\"]\n"
                           "path = \"*/out.log\"\nerror = \"EIO\"\nstack = \"" +
                               glob + "\"\n"));
    args_ = {"run",          "-p", policy, "--", std::string(FL_PROGRAMS_DIR) + "/fl_stack_static",
             path("out.log")};
    return faultline(args_);
  }
  std::vector<std::string> args_;
};

TEST_F(HostileStackStaticTest, DemangledMemberNameWithParametersStillMatches) {
  const RunResult r = run_with_stack("journal::Writer::append(int, char const*) const");
  EXPECT_EQ(r.status(), 0) << describe(args_, r);
  EXPECT_EQ(r.out, "append err 5\nplain ok\n") << describe(args_, r);
  EXPECT_NE(r.err.find("no shared C++ runtime to demangle with"), std::string::npos)
      << describe(args_, r);
}

TEST_F(HostileStackStaticTest, GlobOnAFreeFunctionAndOnTheMangledName) {
  RunResult r = run_with_stack("plain_write(*)");
  EXPECT_EQ(r.out, "append ok\nplain err 5\n") << describe(args_, r);
  r = run_with_stack("_ZNK7journal6Writer6append*");
  EXPECT_EQ(r.out, "append err 5\nplain ok\n") << describe(args_, r);
}

}  // namespace
}  // namespace fltest
