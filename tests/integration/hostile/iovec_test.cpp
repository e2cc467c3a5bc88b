// Bad pointers and counts (docs/reliability.md, "Caller memory"): every vectored I/O call with
// a NULL, wild or unmapped iovec/msghdr/mmsghdr, or a count the kernel refuses, must get the
// kernel's own answer under any armed fault, matching or not — never a SIGSEGV in the shim.
// fl_wild_iovec prints "name ret errno" per call; the run under faultline must print the same.
// Also: `short` on a kernel-side copy (copy_file_range with cp's SSIZE_MAX count) halves the
// bytes really copied.
#include <gtest/gtest.h>

#include <string>

#include "harness.h"

namespace fltest {
namespace {

const std::string kWild = std::string(FL_PROGRAMS_DIR) + "/fl_wild_iovec";
const std::string kCopy = std::string(FL_PROGRAMS_DIR) + "/fl_copy_range";

class HostileIovecTest : public IntegrationTest {
 protected:
  // Runs fl_wild_iovec under `policy` and natively; the outputs must be equal.
  void expect_same_as_native(const std::string& tag, const std::string& policy) {
    ASSERT_TRUE(write_file(path(tag + ".toml"), policy));
    const RunResult native = run({kWild, dir_.path()});
    ASSERT_EQ(native.status(), 0) << describe({kWild}, native);
    ASSERT_NE(native.out.find("done"), std::string::npos);
    const std::vector<std::string> args{"run", "-s",  session(tag), "-p", path(tag + ".toml"),
                                        "--",  kWild, dir_.path()};
    const RunResult r = faultline(args);
    const std::string why = describe(args, r);
    EXPECT_EQ(r.status(), 0) << why;
    EXPECT_EQ(r.out, native.out) << why;
  }
};

TEST_F(HostileIovecTest, ArmedButNonMatchingFaultsLeaveTheKernelsAnswer) {
  expect_same_as_native("nomatch", R"(version = 1
[[fault]]
name = "w"
calls = ["@write"]
path = "/nonexistent/*"
error = "EIO"

[[fault]]
name = "r"
calls = ["@read"]
path = "/nonexistent/*"
error = "EIO"

[[fault]]
name = "n"
calls = ["@net"]
addr = "10.9.9.9:1"
error = "ECONNRESET"
)");
}

TEST_F(HostileIovecTest, MatchingShortLeavesTheKernelsAnswer) {
  expect_same_as_native("short", R"(version = 1
[[fault]]
name = "files"
calls = ["@write", "@read"]
short = "50%"

[[fault]]
name = "net"
calls = ["@net"]
short = "50%"
)");
}

TEST_F(HostileIovecTest, MatchingCorruptLeavesTheKernelsAnswer) {
  expect_same_as_native("corrupt", R"(version = 1
[[fault]]
name = "files"
calls = ["@write", "@read"]
corrupt = 3

[[fault]]
name = "net"
calls = ["@net"]
corrupt = 3
)");
}

// cp asks copy_file_range for SSIZE_MAX bytes; `short = "50%"` must copy half of what the
// file has (the kernel is given the shortened count), not 50% of 2^63, nor a wrapped 2%.
TEST_F(HostileIovecTest, ShortHalvesAKernelSideCopy) {
  const std::string in = path("in.dat");
  ASSERT_TRUE(write_file(in, std::string(100000, 'x')));
  ASSERT_TRUE(write_file(path("short.toml"), R"(version = 1
[[fault]]
name = "half"
calls = ["copy_file_range", "sendfile"]
short = "50%"
)"));
  for (const std::string mode : {"copy_file_range", "sendfile"}) {
    const std::string out = path("out-" + mode);
    const std::vector<std::string> args{
        "run", "-s", session("copy" + mode), "-p", path("short.toml"), "--", kCopy, mode, in, out};
    const RunResult r = faultline(args);
    const std::string why = describe(args, r);
    ASSERT_EQ(r.status(), 0) << why;
    // The program's own report of its one call, and the file it wrote.
    EXPECT_EQ(r.out, "copied 50000\n") << why;
    EXPECT_EQ(file_size(out).value_or(0), 50000u) << why;
  }
}

}  // namespace
}  // namespace fltest
