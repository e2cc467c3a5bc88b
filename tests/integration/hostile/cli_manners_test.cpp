// Names and manners of the CLI (docs/cli.md): a `faultline` process run with the shim in its
// own environment and a fault without selectors still works (it never injects into itself);
// `sessions` run from another pid namespace keeps the sessions it cannot see into; errno names
// the C library knows (EPROTO, ENOLINK) and numbers reach the program; a fault without an
// action fails with its calls' natural error; `help`, a mistyped command or option, `-p -`,
// `validate -` and a write error on stdout are answered as the contract says.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <string>
#include <thread>
#include <vector>

#include "harness.h"

namespace fltest {
namespace {

const std::string kCountWrites = std::string(FL_PROGRAMS_DIR) + "/fl_count_writes";

class CliMannersTest : public IntegrationTest {
 protected:
  std::string policy(const std::string& body, const std::string& name = "policy.toml") {
    const std::string file = path(name);
    EXPECT_TRUE(write_file(file, "version = 1\n" + body));
    return file;
  }
  RunResult shell(const std::string& script) {
    return run({"/bin/sh", "-c", script, cli()});  // "$0" is the CLI
  }
};

TEST_F(CliMannersTest, TheControllerNeverInjectsIntoItself) {
  // Every write fails, and the fault has no selector: today's container with LD_PRELOAD set.
  const std::string pol =
      policy("[[fault]]\nname = \"all\"\ncalls = [\"@write\"]\nerror = \"EIO\"\n");
  const std::string name = session("self");
  RunOptions options;
  options.env = {{"LD_PRELOAD", shim()}, {"FAULTLINE_POLICY", pol}, {"FAULTLINE_SESSION", name}};
  const RunResult validate = run({cli(), "validate", pol}, options);
  EXPECT_EQ(validate.status(), 0) << validate.err;
  EXPECT_NE(validate.out.find("ok"), std::string::npos) << validate.out;
  const RunResult sessions = run({cli(), "sessions", "--json"}, options);
  EXPECT_EQ(sessions.status(), 0) << sessions.err;
  struct stat st;
  EXPECT_NE(stat(("/dev/shm/faultline." + name).c_str(), &st), 0)
      << "the controller joined (created) the session of its own environment";
}

TEST_F(CliMannersTest, SessionsFromAnotherPidNamespaceKeepsWhatItCannotSee) {
  if (run({"/usr/bin/unshare", "--pid", "--fork", "--mount-proc", "/bin/true"}).status() != 0)
    GTEST_SKIP() << "no pid namespaces here (unshare --pid refused)";
  const std::string name = session("pidns");
  Background program;
  ASSERT_TRUE(
      program.start({cli(), "run", "-q", "-s", name, "--", "/bin/sh", "-c", "echo up && read x"}));
  ASSERT_EQ(program.read_line(15s).value_or("<nothing>"), "up") << program.err();
  // Past the 2 s grace a dead-looking session is removed after.
  std::this_thread::sleep_for(2500ms);
  const RunResult other =
      run({"/usr/bin/unshare", "--pid", "--fork", "--mount-proc", cli(), "sessions", "--json"});
  EXPECT_EQ(other.status(), 0) << other.err;
  EXPECT_NE(other.out.find("\"" + name + "\""), std::string::npos) << other.out;
  const RunResult status = faultline({"status", name});
  EXPECT_EQ(status.status(), 0) << "removed from another pid namespace: " << status.err;
  EXPECT_TRUE(program.write_stdin("\n"));
  EXPECT_EQ(program.stop(10s).status(), 0);
}

TEST_F(CliMannersTest, ErrnoNamesNumbersAndTheNaturalError) {
  struct Case {
    const char* keys;
    const char* expected;
  };
  for (const Case& c :
       {Case{"error = \"EPROTO\"\n", "errno=71"}, Case{"error = \"ENOLINK\"\n", "errno=67"},
        Case{"error = 74\n", "errno=74"}, Case{"", "errno=5"}}) {
    SCOPED_TRACE(c.keys);
    const std::string pol = policy(
        "[[fault]]\nname = \"w\"\ncalls = [\"write\"]\npath = \"*/x.dat\"\n" + std::string(c.keys));
    const RunResult r = faultline({"run", "-q", "-p", pol, "--", kCountWrites, path("x.dat"), "2"});
    EXPECT_EQ(r.status(), 0) << r.err;
    EXPECT_EQ(r.out, std::string("writes=2 failed=2 ") + c.expected + "\n") << r.err;
  }
  const std::string natural =
      policy("[[fault]]\nname = \"w\"\ncalls = [\"@fsync\"]\n", "natural.toml");
  const RunResult v = faultline({"validate", natural});
  EXPECT_EQ(v.status(), 0) << v.err;
  EXPECT_NE(v.out.find("w: no action given: error = \"EIO\""), std::string::npos) << v.out;
}

TEST_F(CliMannersTest, HelpTyposStdinAndWriteErrors) {
  const RunResult help = faultline({"help", "status"});
  EXPECT_EQ(help.status(), 0) << help.err;
  EXPECT_EQ(help.out, faultline({"status", "--help"}).out);
  EXPECT_EQ(faultline({"help"}).out, faultline({"--help"}).out);

  const RunResult typo = faultline({"statsu"});
  EXPECT_EQ(typo.status(), 2);
  EXPECT_NE(typo.err.find("unknown command 'statsu' (did you mean 'status'?)"), std::string::npos)
      << typo.err;
  const RunResult option = faultline({"status", "--jsno"});
  EXPECT_EQ(option.status(), 2);
  EXPECT_NE(option.err.find("unknown option '--jsno' (did you mean '--json'?)"), std::string::npos)
      << option.err;

  const std::string snippet =
      "version = 1\n[[fault]]\nname = \"w\"\ncalls = [\"write\"]\n"
      "path = \"*/x.dat\"\nerror = \"ENOSPC\"\n";
  RunOptions from_stdin;
  from_stdin.stdin_text = snippet;
  const RunResult validate = faultline({"validate", "-"}, from_stdin);
  EXPECT_EQ(validate.status(), 0) << validate.err;
  const RunResult piped =
      faultline({"run", "-q", "-p", "-", "--", kCountWrites, path("x.dat"), "1"}, from_stdin);
  EXPECT_EQ(piped.out, "writes=1 failed=1 errno=28\n") << piped.err;

  const RunResult full = shell("\"$0\" validate - > /dev/full <<'EOF'\nversion = 1\nEOF\n");
  EXPECT_EQ(full.status(), 2) << full.err;
  EXPECT_NE(full.err.find("cannot write to standard output"), std::string::npos) << full.err;
  const RunResult full_help = shell("\"$0\" --help > /dev/full");
  EXPECT_EQ(full_help.status(), 2) << full_help.err;
}

}  // namespace
}  // namespace fltest
