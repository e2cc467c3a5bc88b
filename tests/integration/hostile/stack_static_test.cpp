// A C++ program without a shared C++ runtime (fl_stack_static, linked -static-libstdc++): the
// shim has no demangler of its own (docs/performance.md, "Size") and finds none in the
// program, so it loads the system's libstdc++.so.6 beside it for its __cxa_demangle. A
// `stack` glob written with the name a dynamically linked build would show, a template's
// included, must select the same call, with no word about a fallback (the fallback, for an
// image without libstdc++.so.6, is StackDemangleSimple's in tests/unit/stack_test.cpp).
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
  EXPECT_EQ(r.out, "append err 5\nplain ok\ntyped ok\n") << describe(args_, r);
  EXPECT_EQ(r.err.find("no shared C++ runtime to demangle with"), std::string::npos)
      << describe(args_, r);
}

// A template's name is beyond the fallback: only a real demangler gives it.
TEST_F(HostileStackStaticTest, TemplateNameMatchesAsDemangled) {
  const RunResult r = run_with_stack(
      "int journal::typed_write<std::__cxx11::basic_string<*> >(int, std::__cxx11::basic_string<*> "
      "const&)");
  EXPECT_EQ(r.status(), 0) << describe(args_, r);
  EXPECT_EQ(r.out, "append ok\nplain ok\ntyped err 5\n") << describe(args_, r);
}

TEST_F(HostileStackStaticTest, GlobOnAFreeFunctionAndOnTheMangledName) {
  RunResult r = run_with_stack("plain_write(*)");
  EXPECT_EQ(r.out, "append ok\nplain err 5\ntyped ok\n") << describe(args_, r);
  r = run_with_stack("_ZNK7journal6Writer6append*");
  EXPECT_EQ(r.out, "append err 5\nplain ok\ntyped ok\n") << describe(args_, r);
}

}  // namespace
}  // namespace fltest
