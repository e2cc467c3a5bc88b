// What the shim brings into every target (docs/performance.md, "Start-up"): no libstdc++ or
// libm in its DT_NEEDED list (libgcc_s only, see below), and a dynamic symbol table that exports
// only the interposed libc names and faultline's own marker, so a C++ program's own libstdc++ never
// binds to the shim's private copy. And such a program, throwing and catching through its own
// libstdc++, runs under the shim unchanged, with a fault armed on its file writes.
#include <gtest/gtest.h>

#include <cstdio>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "harness.h"

namespace fltest {
namespace {

class HostileShimElfTest : public IntegrationTest {
 protected:
  // Output of a shell command (the tools are binutils', always there where we build).
  static std::string command_output(const std::string& command) {
    std::string out;
    if (FILE* pipe = popen(command.c_str(), "r")) {
      char buf[4096];
      std::size_t n;
      while ((n = fread(buf, 1, sizeof buf, pipe)) > 0) out.append(buf, n);
      pclose(pipe);
    }
    return out;
  }
};

// libgcc_s stays: glibc unwinds a cancelled thread with libgcc_s's unwinder, and the shim's
// frames (a thread cancelled in an injected delay) must be unwound by the same copy that runs
// their personality routine (a static libgcc_eh aborts there: HostileWaitsTest).
TEST_F(HostileShimElfTest, NeedsOnlyLibcLibgccSAndTheDynamicLinker) {
  const std::string dynamic = command_output("readelf -d '" + shim() + "'");
  ASSERT_NE(dynamic.find("(NEEDED)"), std::string::npos) << dynamic;
  std::set<std::string> needed;
  std::istringstream lines(dynamic);
  for (std::string line; std::getline(lines, line);) {
    if (line.find("(NEEDED)") == std::string::npos) continue;
    const auto open = line.find('['), close = line.find(']');
    if (open != std::string::npos && close != std::string::npos)
      needed.insert(line.substr(open + 1, close - open - 1));
  }
  for (const std::string& lib : needed)
    EXPECT_TRUE(lib == "libc.so.6" || lib == "ld-linux-x86-64.so.2" || lib == "libgcc_s.so.1")
        << "the shim needs " << lib << "\n"
        << dynamic;
}

TEST_F(HostileShimElfTest, ExportsOnlyTheInterposedCallsAndItsMarker) {
  std::set<std::string> allowed{"faultline_shim_instance"};
  // Every row of the call table, the tracked calls (fd bookkeeping) included.
#define FL_CALL(fam, name, ...) allowed.insert(#name);
#include "calls/calls.def"
  // Defined dynamic symbols only: what another object could bind to.
  const std::string symbols =
      command_output("nm -D --defined-only --format=posix '" + shim() + "'");
  ASSERT_FALSE(symbols.empty());
  std::istringstream lines(symbols);
  int exported = 0;
  for (std::string line; std::getline(lines, line);) {
    std::string name = line.substr(0, line.find(' '));
    name = name.substr(0, name.find('@'));  // a version suffix, if any
    ++exported;
    EXPECT_TRUE(allowed.count(name)) << "the shim exports " << name;
    EXPECT_NE(name.rfind("_Z", 0), 0u) << "a C++ symbol leaks: " << name;
  }
  EXPECT_GT(exported, 50);
}

TEST_F(HostileShimElfTest, CxxProgramWithItsOwnLibstdcxxThrowsAndCatches) {
  const std::string policy = path("policy.toml");
  // Armed on the program's writes, never matching: the ofstream write takes the armed path.
  ASSERT_TRUE(write_file(policy,
                         "version = 1\n[[fault]]\nname = \"elsewhere\"\n"
                         "calls = [\"@write\"]\npath = \"/nonexistent/*\"\n"
                         "error = \"EIO\"\n"));
  const std::vector<std::string> args{
      "run",          "-p", policy, "--", std::string(FL_PROGRAMS_DIR) + "/fl_cxx_exceptions",
      path("out.txt")};
  const RunResult r = faultline(args);
  EXPECT_EQ(r.status(), 0) << describe(args, r);
  EXPECT_NE(r.out.find("caught 4\nok\n"), std::string::npos) << describe(args, r);
  EXPECT_EQ(read_file(path("out.txt")).value_or(""), "line\n");
}

}  // namespace
}  // namespace fltest
