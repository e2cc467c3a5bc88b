// Bad pointers and counts (docs/reliability.md, "Caller memory"): every vectored I/O call with
// a NULL, wild or unmapped iovec/msghdr/mmsghdr, or a count the kernel refuses, must get the
// kernel's own answer under any armed fault, matching or not — never a SIGSEGV in the shim.
// fl_wild_iovec prints "name ret errno" per call; the run under faultline must print the same.
// Also: `short` on a kernel-side copy (copy_file_range with cp's SSIZE_MAX count) halves the
// bytes really copied.
#include <gtest/gtest.h>

#include <map>
#include <sstream>
#include <string>

#include "harness.h"

namespace fltest {
namespace {

const std::string kWild = std::string(FL_PROGRAMS_DIR) + "/fl_wild_iovec";
const std::string kCopy = std::string(FL_PROGRAMS_DIR) + "/fl_copy_range";
const std::string kFaults = std::string(FL_PROGRAMS_DIR) + "/fl_iovec_faults";

struct Line {
  long ret = -2;
  int bits = -1;
  int intact = -1;
};

// fl_iovec_faults' "name ret bits intact" lines by name.
std::map<std::string, Line> parse_lines(const std::string& out) {
  std::map<std::string, Line> lines;
  for (const std::string& text : split_lines(out)) {
    std::istringstream in(text);
    std::string name;
    Line l;
    in >> name >> l.ret >> l.bits >> l.intact;
    lines[name] = l;
  }
  return lines;
}

class HostileIovecTest : public IntegrationTest {
 protected:
  // Runs fl_wild_iovec under `policy` and natively; the outputs must be equal. Returns the
  // run's stderr.
  std::string expect_same_as_native(const std::string& tag, const std::string& policy,
                                    const std::string& mode = "") {
    EXPECT_TRUE(write_file(path(tag + ".toml"), policy));
    std::vector<std::string> program{kWild, dir_.path()};
    if (!mode.empty()) program.push_back(mode);
    const RunResult native = run(program);
    EXPECT_EQ(native.status(), 0) << describe(program, native);
    EXPECT_NE(native.out.find("done"), std::string::npos);
    std::vector<std::string> args{"run", "-s", session(tag), "-p", path(tag + ".toml"), "--"};
    args.insert(args.end(), program.begin(), program.end());
    const RunResult r = faultline(args);
    const std::string why = describe(args, r);
    EXPECT_EQ(r.status(), 0) << why;
    EXPECT_EQ(r.out, native.out) << why;
    return r.err;
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

[[fault]]
name = "o"
calls = ["@open"]
path = "/nonexistent/*"
error = "EIO"
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

[[fault]]
name = "refused"
calls = ["connect"]
error = "ECONNREFUSED"

# Every open after the program's own first one (its scratch file): only wild paths follow.
[[fault]]
name = "badopen"
calls = ["open", "open64", "openat", "openat64", "creat"]
error = "EIO"
after = 1
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

// A seccomp profile that refuses process_vm_readv (ENOSYS): the shim cannot read caller
// arrays safely, so it passes those calls through (even a good writev under a matching
// `short`) and says so once.
TEST_F(HostileIovecTest, WithoutProcessVmReadvCallsPassThroughAndItIsSaid) {
  const std::string err = expect_same_as_native("seccomp", R"(version = 1
[[fault]]
name = "files"
calls = ["@write", "@read"]
short = "50%"

[[fault]]
name = "net"
calls = ["@net"]
corrupt = 3
)",
                                                "seccomp");
  EXPECT_EQ(count_substr(err, "process_vm_readv is not permitted here (ENOSYS)"), 1u) << err;
}

// Good vectors under matching short/corrupt: shortened and corrupted through the shim's own
// copies, the caller's iovec array and buffers untouched.
TEST_F(HostileIovecTest, ShortAndCorruptOnGoodVectors) {
  struct Case {
    std::string tag, calls, action;
  };
  const Case cases[] = {
      {"wshort", R"("writev", "pwritev")", R"(short = "50%")"},
      {"wcorrupt", R"("writev", "pwritev")", "corrupt = 3"},
      {"rshort", R"("readv", "preadv")", R"(short = "50%")"},
      {"rcorrupt", R"("readv", "preadv")", "corrupt = 3"},
      {"nshort", R"("sendmsg", "recvmsg")", R"(short = "50%")"},
      {"ncorrupt", R"("sendmsg", "recvmsg")", "corrupt = 3"},
  };
  for (const Case& c : cases) {
    ASSERT_TRUE(write_file(
        path(c.tag + ".toml"),
        "version = 1\n[[fault]]\nname = \"f\"\ncalls = [" + c.calls + "]\n" + c.action + "\n"));
    const std::vector<std::string> args{"run", "-s",    session(c.tag), "-p", path(c.tag + ".toml"),
                                        "--",  kFaults, dir_.path()};
    const RunResult r = faultline(args);
    const std::string why = describe(args, r);
    ASSERT_EQ(r.status(), 0) << why;
    auto lines = parse_lines(r.out);
    const bool is_short = c.action.rfind("short", 0) == 0;
    const std::vector<std::string> all{"writev", "pwritev", "readv",
                                       "preadv", "sendmsg", "recvmsg"};
    std::vector<std::string> faulted, clean;
    for (const std::string& name : all)
      (c.calls.find('"' + name + '"') != std::string::npos ? faulted : clean).push_back(name);
    for (const std::string& name : faulted) {
      const Line l = lines[name];
      EXPECT_EQ(l.intact, 1) << name << "\n" << why;
      if (is_short) {
        EXPECT_EQ(l.ret, 30) << name << "\n" << why;
        EXPECT_EQ(l.bits, 0) << name << "\n" << why;
      } else {
        EXPECT_EQ(l.ret, 60) << name << "\n" << why;
        // 3 draws: 3 bits flipped, or 1 when two draws hit the same bit.
        EXPECT_TRUE(l.bits == 1 || l.bits == 3) << name << "\n" << why;
      }
    }
    for (const std::string& name : clean) {
      const Line l = lines[name];
      EXPECT_EQ(l.ret, 60) << name << "\n" << why;
      EXPECT_EQ(l.bits, 0) << name << "\n" << why;
      EXPECT_EQ(l.intact, 1) << name << "\n" << why;
    }
    if (c.tag == "wshort") {
      EXPECT_EQ(lines["writev-file"].ret, 30) << why;
    }
    if (c.tag == "nshort") {
      EXPECT_EQ(lines["sendmsg-arrived"].ret, 30) << why;
    }
  }
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
