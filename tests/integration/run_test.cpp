// The launcher and the library as a user meets them: bad policies refused before anything runs,
// plain LD_PRELOAD without the launcher, exit statuses passed through, programs no preload can
// reach refused, and the shim exporting exactly the interposed names.
#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <iterator>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "harness.h"

namespace fltest {
namespace {

constexpr const char* kPython = "/usr/bin/python3";

// Line 4, column 1 holds a misspelt key.
constexpr const char* kBadPolicy = R"(version = 1
[[fault]]
name = "f"
erorr = "EIO"
calls = ["write"]
)";

class RunTest : public IntegrationTest {};

// ---- 5. bad input -----------------------------------------------------------------------

TEST_F(RunTest, BadPolicyIsRefusedBeforeTheProgramRuns) {
  ASSERT_TRUE(write_file(path("bad.toml"), kBadPolicy));
  const std::string marker = path("marker");
  const std::vector<std::string> args{"run",     "-p", path("bad.toml"), "--",
                                      "/bin/sh", "-c", "touch " + marker};
  const RunResult r = faultline(args);
  const std::string why = describe(args, r);
  EXPECT_EQ(r.status(), 2) << why;
  EXPECT_NE(r.err.find("bad.toml:4:1:"), std::string::npos) << why;
  EXPECT_FALSE(file_exists(marker)) << "the program ran despite the bad policy\n" << why;
}

TEST_F(RunTest, ValidateReportsFileLineColumn) {
  ASSERT_TRUE(write_file(path("bad.toml"), kBadPolicy));
  ASSERT_TRUE(write_file(path("good.toml"), R"(version = 1
[[fault]]
name = "f"
error = "EIO"
calls = ["write"]
)"));
  const RunResult bad = faultline({"validate", path("bad.toml")});
  EXPECT_EQ(bad.status(), 2) << describe({"validate", "bad.toml"}, bad);
  EXPECT_NE((bad.out + bad.err).find("bad.toml:4:1:"), std::string::npos)
      << describe({"validate", "bad.toml"}, bad);
  const RunResult good = faultline({"validate", path("good.toml")});
  EXPECT_EQ(good.status(), 0) << describe({"validate", "good.toml"}, good);
}

TEST_F(RunTest, PlainPreloadWithBadPolicyLeavesTheProgramRunning) {
  ASSERT_TRUE(write_file(path("bad.toml"), kBadPolicy));
  const std::string file = path("hi.txt");
  RunOptions options;
  options.env = {{"LD_PRELOAD", shim()},
                 {"FAULTLINE_POLICY", path("bad.toml")},
                 {"FAULTLINE_SESSION", session("badpre")}};
  const std::vector<std::string> argv{"/bin/sh", "-c", "echo hi > " + file};
  const RunResult r = run(argv, options);
  const std::string why = describe(argv, r);
  EXPECT_EQ(r.status(), 0) << why;
  EXPECT_EQ(read_file(file).value_or("<missing>"), "hi\n") << why;
  EXPECT_NE(r.err.find("bad.toml:4:1:"), std::string::npos) << why;
}

TEST_F(RunTest, PlainPreloadWithGoodPolicyInjectsAndIsVisible) {
  ASSERT_TRUE(write_file(path("policy.toml"), R"(version = 1
[[fault]]
name = "x-eio"
calls = ["write"]
path = "*/x.log"
error = "EIO"
)"));
  ASSERT_TRUE(write_file(path("x.py"), R"PY(
import os, sys
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
try:
    os.write(fd, b"hello\n")
    print("ok", flush=True)
except OSError as e:
    print("err %d" % e.errno, flush=True)
os.close(fd)
sys.stdin.readline()  # stay alive until the test has looked at the session
print("bye", flush=True)
)PY"));
  const std::string name = session("goodpre");
  RunOptions options;
  options.env = {{"LD_PRELOAD", shim()},
                 {"FAULTLINE_POLICY", path("policy.toml")},
                 {"FAULTLINE_SESSION", name}};
  Background program;
  ASSERT_TRUE(program.start({kPython, path("x.py"), path("x.log")}, options));
  const auto first = program.read_line(15s);
  EXPECT_EQ(first.value_or("<nothing>"), "err 5") << program.err();

  // The session the shim created is reachable by the controller while the program runs.
  const RunResult sessions = faultline({"sessions"});
  EXPECT_EQ(sessions.status(), 0) << sessions.err;
  EXPECT_NE(sessions.out.find(name), std::string::npos) << sessions.out;
  const RunResult status = faultline({"status", name, "--json"});
  EXPECT_EQ(status.status(), 0) << status.err;
  EXPECT_EQ(status_json_injected(status.out, "x-eio").value_or(999), 1u) << status.out;

  EXPECT_TRUE(program.write_stdin("\n"));
  EXPECT_EQ(program.read_line(10s).value_or("<nothing>"), "bye");
  const RunResult end = program.stop(10s);
  EXPECT_EQ(end.status(), 0) << end.err;
  EXPECT_EQ(file_size(path("x.log")).value_or(99), 0u);
}

// ---- 6. exit statuses and unreachable programs ----------------------------------------------

TEST_F(RunTest, ExitStatusIsTheProgramsOwn) {
  const RunResult three = faultline({"run", "--", "/bin/sh", "-c", "exit 3"});
  EXPECT_EQ(three.status(), 3) << three.err;
  const RunResult killed = faultline({"run", "--", "/bin/sh", "-c", "kill -TERM $$"});
  EXPECT_EQ(killed.status(), 128 + 15) << killed.err;
}

// `cmake --install` lays out bin/faultline and lib/faultline/libfaultline.so; the installed
// CLI finds the installed shim (no FAULTLINE_SHIM, no build tree) and injects with it.
TEST_F(RunTest, InstalledPrefixFindsItsShim) {
  const std::string prefix = path("prefix");
  RunOptions slow;
  slow.timeout = 60s;
  const RunResult install =
      run({CMAKE_COMMAND, "--install", FAULTLINE_BINARY_DIR, "--prefix", prefix}, slow);
  ASSERT_EQ(install.status(), 0) << install.out << install.err;
  ASSERT_TRUE(file_exists(prefix + "/lib/faultline/libfaultline.so"));
  // The public API is faultline.hpp alone; the block's layout and helpers stay internal.
  ASSERT_TRUE(file_exists(prefix + "/include/faultline/faultline.hpp"));
  EXPECT_FALSE(file_exists(prefix + "/include/faultline/control_block.h"));
  ASSERT_TRUE(write_file(path("p.toml"),
                         "version = 1\n[[fault]]\nname = \"x\"\ncalls = [\"write\"]\n"
                         "path = \"*/x.log\"\nerror = \"ENOSPC\"\n"));
  const std::string script =
      "import os\n"
      "fd = os.open('" +
      path("x.log") +
      "', os.O_WRONLY | os.O_CREAT)\n"
      "try:\n    os.write(fd, b'x')\n    print('written')\n"
      "except OSError as e:\n    print('errno', e.errno)\n";
  const RunResult r = run({prefix + "/bin/faultline", "run", "-p", path("p.toml"), "--",
                           "/usr/bin/python3", "-c", script});
  EXPECT_EQ(r.status(), 0) << r.err;
  EXPECT_EQ(r.out, "errno 28\n") << r.err;
}

// The preload cannot reach it: `--backend preload` refuses it, `auto` runs it under seccomp.
TEST_F(RunTest, StaticallyLinkedProgramIsRefusedByThePreload) {
  ASSERT_TRUE(write_file(path("static.c"), R"(#include <fcntl.h>
int main(int argc, char** argv) {
  return argc > 1 && open(argv[1], O_CREAT | O_WRONLY, 0644) >= 0 ? 0 : 1;
}
)"));
  const std::string program = path("static");
  const RunResult cc = run({FAULTLINE_CC, "-static", "-o", program, path("static.c")});
  if (cc.status() != 0) GTEST_SKIP() << "cannot build a static program here: " << cc.err;
  const RunResult ldd = run({"/usr/bin/ldd", program});
  ASSERT_NE((ldd.out + ldd.err).find("not a dynamic executable"), std::string::npos)
      << "the test program is not static: " << ldd.out;
  // It runs fine on its own...
  ASSERT_EQ(run({program, path("direct")}).status(), 0);
  ASSERT_TRUE(file_exists(path("direct")));

  const std::string marker = path("marker");
  const std::vector<std::string> args{"run", "--backend", "preload", "--", program, marker};
  const RunResult r = faultline(args);
  const std::string why = describe(args, r);
  EXPECT_EQ(r.status(), 2) << why;
  EXPECT_NE(r.err.find("statically linked"), std::string::npos) << why;
  EXPECT_FALSE(file_exists(marker)) << "the static program ran unfaulted\n" << why;

  const std::vector<std::string> auto_args{"run", "--", program, marker};
  const RunResult a = faultline(auto_args);
  EXPECT_EQ(a.status(), 0) << describe(auto_args, a);
  EXPECT_NE(a.err.find("seccomp backend"), std::string::npos) << a.err;
  EXPECT_TRUE(file_exists(marker));
}

// ---- 7. symbol hygiene ----------------------------------------------------------------------

// The names of the rows of calls/calls.def (its one row macro, FL_CALL, TRACKED rows included),
// read by running the table through the C preprocessor the way every consumer of the table
// does, so continuation lines and comments are handled.
std::set<std::string> interposed_names(const std::string& dir) {
  std::set<std::string> names;
  const std::string source = dir + "/names.c";
  EXPECT_TRUE(write_file(source,
                         "#define FL_CALL(family, name, ...) FL_ROW_NAME name\n"
                         "#include \"calls/calls.def\"\n"));
  const std::string shim_dir = std::string(FAULTLINE_SOURCE_DIR);
  const RunResult cpp = run({FAULTLINE_CC, "-E", "-P", "-x", "c", "-I" + shim_dir,
                             "-I" + std::string(FAULTLINE_BINARY_DIR) + "/generated", source});
  EXPECT_EQ(cpp.status(), 0) << "preprocessing calls/calls.def failed: " << cpp.err;
  // A row kind this test does not know would be left unexpanded: fail rather than miss it.
  const std::regex unknown(R"(\bFL_[A-Z_]+\s*\()");
  EXPECT_FALSE(std::regex_search(cpp.out, unknown))
      << "calls.def has a row macro this test does not define:\n"
      << cpp.out;
  const std::regex row(R"(FL_ROW_NAME\s+(\w+))");
  for (auto it = std::sregex_iterator(cpp.out.begin(), cpp.out.end(), row);
       it != std::sregex_iterator(); ++it)
    names.insert((*it)[1]);
  return names;
}

TEST_F(RunTest, ShimExportsExactlyTheInterposedNames) {
  std::set<std::string> expected = interposed_names(dir_.path());
  ASSERT_GE(expected.size(), 10u) << "calls.def parsed to almost nothing";
  // The one export that is no libc call: the marker a second copy of the shim finds the first
  // by (shim/init.cpp), so that only one copy acts in a process.
  expected.insert("faultline_shim_instance");
  const RunResult nm = run({"/usr/bin/nm", "-D", "--defined-only", shim()});
  ASSERT_EQ(nm.status(), 0) << nm.err;
  std::set<std::string> exported;
  for (const auto& line : split_lines(nm.out)) {
    std::istringstream words(line);
    std::string address, type, name;
    if (!(words >> address >> type >> name)) continue;
    EXPECT_EQ(name.find('@'), std::string::npos) << "versioned export: " << name;
    exported.insert(name.substr(0, name.find('@')));
  }
  std::vector<std::string> missing, extra;
  std::set_difference(expected.begin(), expected.end(), exported.begin(), exported.end(),
                      std::back_inserter(missing));
  std::set_difference(exported.begin(), exported.end(), expected.begin(), expected.end(),
                      std::back_inserter(extra));
  EXPECT_TRUE(missing.empty()) << "interposed but not exported: "
                               << ::testing::PrintToString(missing);
  EXPECT_TRUE(extra.empty()) << "exported but not in calls.def: "
                             << ::testing::PrintToString(extra);
}

}  // namespace
}  // namespace fltest
