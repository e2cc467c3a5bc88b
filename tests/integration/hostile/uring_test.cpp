// [target] io_uring (docs/policy.md, "Reaching the program") and the never-silent hints of
// `faultline status` (docs/cli.md). fl_uring_or_write writes a file through io_uring when it
// can and with write() when io_uring_setup fails with ENOSYS: a @write fault on that file is
// not seen while the program uses io_uring, and is injected once the launcher's seccomp filter
// denies io_uring. While a program runs, `status` gives a fault that has seen no call the same
// hint `run`'s summary would give at the end.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>
#include <thread>

#include "harness.h"

namespace fltest {
namespace {

class HostileUringTest : public IntegrationTest {
 protected:
  static std::string program() { return std::string(FL_PROGRAMS_DIR) + "/fl_uring_or_write"; }

  std::string policy(const std::string& name, const std::string& text) {
    const std::string p = path(name);
    EXPECT_TRUE(write_file(p, "version = 1\n" + text));
    return p;
  }

  // A @write fault on the program's output file (ENOSPC, which the program reports itself),
  // with `target` appended as the policy's [target] table.
  std::string write_fault_policy(const std::string& name, const std::string& target) {
    return policy(name, "[[fault]]\nname = \"full\"\ncalls = [\"@write\"]\npath = \"" +
                            path("*.out") + "\"\nerror = \"ENOSPC\"\n" + target);
  }

  // Skips when this machine gives no io_uring to anyone (a container's seccomp profile,
  // kernel.io_uring_disabled): there is then nothing to deny.
  void require_io_uring() {
    const RunResult native = run({program(), path("native.out")});
    ASSERT_EQ(native.exit_code, 0) << describe({program()}, native);
    if (native.out.find("path: io_uring") == std::string::npos)
      GTEST_SKIP() << "io_uring is not available here: " << native.out;
  }
};

TEST_F(HostileUringTest, AllowedIoUringWritesPassUnseenAndTheSummarySaysWhy) {
  require_io_uring();
  const std::string p = write_fault_policy("allow.toml", "[target]\nio_uring = \"allow\"\n");
  const RunResult r = faultline({"run", "-p", p, "--", program(), path("a.out")});
  // The program wrote its file through the ring: the fault never had a chance.
  EXPECT_EQ(r.exit_code, 0) << describe({"run", "-p", p, "--", program()}, r);
  EXPECT_EQ(r.out, "path: io_uring\n");
  EXPECT_EQ(read_file(path("a.out")).value_or(""), "written by uring_or_write\n");
  EXPECT_EQ(summary_injected(r.err, "full"), 0u) << r.err;
  EXPECT_NE(r.err.find("faultline: full saw no call: fl_uring_or_write uses io_uring (links "
                       "liburing), whose I/O passes unseen: set [target] io_uring = \"deny\""),
            std::string::npos)
      << r.err;
}

TEST_F(HostileUringTest, DeniedIoUringFallsBackToWriteWhereTheFaultIsInjected) {
  require_io_uring();
  const std::string p = write_fault_policy("deny.toml", "[target]\nio_uring = \"deny\"\n");
  const RunResult r = faultline({"run", "-p", p, "--", program(), path("d.out")});
  EXPECT_EQ(r.exit_code, 1) << describe({"run", "-p", p, "--", program()}, r);
  EXPECT_EQ(r.out, "path: write (io_uring_setup: Function not implemented)\n");
  EXPECT_NE(r.err.find("uring_or_write: write " + path("d.out") + ": No space left on device"),
            std::string::npos)
      << r.err;
  EXPECT_EQ(summary_injected(r.err, "full"), 1u) << r.err;
  EXPECT_EQ(r.err.find("saw no call"), std::string::npos) << r.err;

  // The gate alone, with nothing armed: the fallback writes the file.
  const std::string gate = policy("gate.toml", "[target]\nio_uring = \"deny\"\n");
  const RunResult g = faultline({"run", "-q", "-p", gate, "--", program(), path("g.out")});
  EXPECT_EQ(g.exit_code, 0) << g.err;
  EXPECT_EQ(g.out, "path: write (io_uring_setup: Function not implemented)\n");
  EXPECT_EQ(read_file(path("g.out")).value_or(""), "written by uring_or_write\n");
}

TEST_F(HostileUringTest, DoctorNoticesLiburing) {
  const RunResult r = faultline({"doctor", "--json", "--", program()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto doc = nlohmann::json::parse(r.out);
  EXPECT_EQ(doc["io_uring"], "links liburing") << r.out;
  const RunResult text = faultline({"doctor", "--", program()});
  EXPECT_NE(text.out.find("io_uring:    links liburing"), std::string::npos) << text.out;
  EXPECT_NE(text.out.find("passes unseen unless [target] io_uring = \"deny\""), std::string::npos)
      << text.out;
}

TEST_F(HostileUringTest, BadValueIsRefusedWithItsPlaceAndTheChoices) {
  const std::string p = policy("bad.toml", "[target]\nio_uring = \"off\"\n");
  const RunResult v = faultline({"validate", p});
  EXPECT_EQ(v.exit_code, 2) << v.out << v.err;
  EXPECT_NE((v.out + v.err).find(p + ":3:12: 'io_uring' must be \"allow\" or \"deny\""),
            std::string::npos)
      << v.out << v.err;
  const RunResult r = faultline({"run", "-p", p, "--", program(), path("x.out")});
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_FALSE(file_exists(path("x.out")));
}

// Under plain LD_PRELOAD the shim cannot install the filter without setting no_new_privs on a
// program that did not ask for it (docs/limits.md): it says so instead of staying silent.
TEST_F(HostileUringTest, PlainPreloadWarnsThatItCannotDeny) {
  require_io_uring();
  const std::string p = write_fault_policy("deny.toml", "[target]\nio_uring = \"deny\"\n");
  RunOptions options;
  options.env = {{"LD_PRELOAD", shim()},
                 {"FAULTLINE_POLICY", p},
                 {"FAULTLINE_SESSION", session("uring-plain")}};
  const RunResult r = run({program(), path("p.out")}, options);
  EXPECT_EQ(r.exit_code, 0) << describe({program()}, r);
  EXPECT_NE(r.err.find("[target] io_uring = \"deny\" is applied only by `faultline run`"),
            std::string::npos)
      << r.err;
}

// ---- status while it runs ------------------------------------------------------------------

class HostileStatusHintTest : public HostileUringTest {
 protected:
  // `faultline status NAME` (or --json) once its output holds `needle`, trying for up to 10 s
  // (the program joins the session a moment after `run` created it); the last output otherwise.
  RunResult status_until(const std::string& name, const std::string& needle, bool json = false) {
    RunResult r;
    for (int i = 0; i < 100; ++i) {
      r = json ? faultline({"status", name, "--json"}) : faultline({"status", name});
      if (r.exit_code == 0 && r.out.find(needle) != std::string::npos) break;
      std::this_thread::sleep_for(100ms);
    }
    return r;
  }
};

TEST_F(HostileStatusHintTest, StatusSaysWhyAFaultOfARunningProgramSawNothing) {
  const std::string name = session("status-hint");
  const std::string p = policy("net.toml", R"([[fault]]
name = "net"
calls = ["@net"]
error = "ECONNRESET"

[[fault]]
name = "off"
calls = ["@net"]
enabled = false
error = "ECONNRESET"
)");
  Background bg;
  ASSERT_TRUE(bg.start({cli(), "run", "-q", "-s", name, "-p", p, "--", "/bin/sleep", "5"}));
  const RunResult r = status_until(name, "saw no call");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("\nnet saw no call: sleep imports none of @net: no such call of it can "
                       "reach the shim\n"),
            std::string::npos)
      << r.out;
  EXPECT_EQ(r.out.find("off saw no call"), std::string::npos) << r.out;  // disabled: no hint

  const RunResult j = status_until(name, "\"hint\"", true);
  ASSERT_EQ(j.exit_code, 0) << j.err;
  const auto doc = nlohmann::json::parse(j.out);
  EXPECT_EQ(doc["faults"][0]["hint"],
            "sleep imports none of @net: no such call of it can reach "
            "the shim")
      << j.out;
  EXPECT_FALSE(doc["faults"][1].contains("hint")) << j.out;
  bg.stop(1s);
}

TEST_F(HostileStatusHintTest, StatusGivesTheIoUringHintAndNoneToAFaultThatSeesCalls) {
  require_io_uring();
  // Allowed: the program writes through io_uring and then stays alive; its fault is silent.
  const std::string allowed = session("status-uring");
  const std::string p = write_fault_policy("allow.toml", "");
  Background a;
  ASSERT_TRUE(
      a.start({cli(), "run", "-q", "-s", allowed, "-p", p, "--", program(), path("a.out"), "5"}));
  ASSERT_EQ(a.read_line().value_or(""), "path: io_uring");
  const RunResult r = status_until(allowed, "saw no call");
  EXPECT_NE(r.out.find("full saw no call: fl_uring_or_write uses io_uring (links liburing), "
                       "whose I/O passes unseen: set [target] io_uring = \"deny\""),
            std::string::npos)
      << r.out;

  // Denied, with a fault on another file: the fallback write() is seen, so no hint, and the
  // filter is not mistaken for io_uring.
  const std::string denied = session("status-seen");
  const std::string q =
      policy("seen.toml", "[[fault]]\nname = \"other\"\ncalls = [\"@write\"]\npath = \"" +
                              path("elsewhere") +
                              "\"\nerror = \"EIO\"\n[target]\nio_uring = "
                              "\"deny\"\n");
  Background d;
  ASSERT_TRUE(
      d.start({cli(), "run", "-q", "-s", denied, "-p", q, "--", program(), path("d.out"), "5"}));
  ASSERT_EQ(d.read_line().value_or(""), "path: write (io_uring_setup: Function not implemented)");
  const RunResult s = faultline({"status", denied});
  EXPECT_EQ(s.exit_code, 0) << s.err;
  EXPECT_NE(s.out.find("other"), std::string::npos) << s.out;
  EXPECT_EQ(s.out.find("saw no call"), std::string::npos) << s.out;
  a.stop(1s);
  d.stop(1s);
}

}  // namespace
}  // namespace fltest
