// `faultline doctor -- CMD` (what the preload can reach in a program, read from its ELF file)
// and the "never silent" end of `faultline run`: an enabled fault that saw no call at all gets a
// line saying why that is likely. The programs: /bin/true (dynamic glibc), a statically linked C
// program built here with `gcc -static`, fl_own_malloc (an executable with its own malloc),
// python3 when installed, and a name that is nowhere on PATH.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>

#include "harness.h"

namespace fltest {
namespace {

class HostileDoctorTest : public IntegrationTest {
 protected:
  std::string own_malloc() const { return std::string(FL_PROGRAMS_DIR) + "/fl_own_malloc"; }

  std::string policy(const std::string& name, const std::string& text) {
    const std::string p = path(name);
    EXPECT_TRUE(write_file(p, "version = 1\n" + text));
    return p;
  }
};

TEST_F(HostileDoctorTest, TrueIsDynamicGlibcAndReachedByThePreload) {
  const RunResult r = faultline({"doctor", "--", "true", "ignored-arg"});
  ASSERT_EQ(r.exit_code, 0) << describe({"doctor", "--", "true"}, r);
  EXPECT_NE(r.out.find("dynamically linked"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("(glibc)"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("preload (auto)"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("faultline can fault true with the preload"), std::string::npos) << r.out;

  const RunResult j = faultline({"doctor", "--json", "--", "true"});
  ASSERT_EQ(j.exit_code, 0) << j.err;
  const auto doc = nlohmann::json::parse(j.out);
  EXPECT_EQ(doc["static"], false);
  EXPECT_EQ(doc["libc"], "glibc");
  EXPECT_EQ(doc["go"], false);
  EXPECT_EQ(doc["backend"], "preload");
  EXPECT_EQ(doc["reachable"], true);
  EXPECT_EQ(doc["own_malloc"], false);
  // true writes (its --help) and allocates, and never resolves a name.
  EXPECT_EQ(doc["families"]["@memory"]["reachable"], true) << j.out;
  EXPECT_EQ(doc["families"]["@dns"]["reachable"], false) << j.out;
  EXPECT_TRUE(doc["families"]["@dns"]["imports"].empty()) << j.out;
}

TEST_F(HostileDoctorTest, StaticProgramGoesToTheSeccompBackend) {
  const std::string source = path("static.c");
  ASSERT_TRUE(write_file(source,
                         "#include <unistd.h>\nint main(void) { return write(1, \"x\", 1) "
                         "== 1 ? 0 : 1; }\n"));
  const std::string exe = path("static_prog");
  const RunResult cc = run({FAULTLINE_CC, "-static", "-o", exe, source});
  if (cc.exit_code != 0) GTEST_SKIP() << "gcc -static unavailable: " << cc.err;

  const RunResult r = faultline({"doctor", "--", exe});
  EXPECT_EQ(r.exit_code, 0) << describe({"doctor", "--", exe}, r);
  EXPECT_NE(r.out.find("statically linked"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("backend:     seccomp (auto)"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("faultline can fault static_prog with the seccomp backend"),
            std::string::npos)
      << r.out;

  const RunResult j = faultline({"doctor", "--json", "--", exe});
  EXPECT_EQ(j.exit_code, 0);
  const auto doc = nlohmann::json::parse(j.out);
  EXPECT_EQ(doc["static"], true);
  EXPECT_EQ(doc["backend"], "seccomp");
  EXPECT_EQ(doc["reachable"], true);
  EXPECT_EQ(doc["preload_reachable"], false);
  EXPECT_EQ(doc["families"]["@write"]["reachable"], true);
  EXPECT_EQ(doc["families"]["@fs"]["reachable"], true);  // rename, unlink... are system calls
  EXPECT_EQ(doc["families"]["@memory"]["reachable"], false);
}

TEST_F(HostileDoctorTest, OwnMallocIsSaidByDoctorAndByTheRunSummary) {
  const RunResult r = faultline({"doctor", "--json", "--", own_malloc()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto doc = nlohmann::json::parse(r.out);
  EXPECT_EQ(doc["own_malloc"], true) << r.out;
  EXPECT_EQ(doc["families"]["@memory"]["reachable"], false) << r.out;

  const std::string p = policy("mem.toml", R"([[fault]]
name = "oom"
calls = ["malloc"]
error = "ENOMEM"
)");
  const RunResult run = faultline({"run", "-p", p, "--", own_malloc()});
  EXPECT_EQ(run.exit_code, 0) << run.err;
  EXPECT_EQ(run.out, "ok\n");
  EXPECT_NE(run.err.find("faultline: oom saw no call: fl_own_malloc's malloc is its own"),
            std::string::npos)
      << run.err;
}

TEST_F(HostileDoctorTest, Python3ImportsNetAndDns) {
  if (!file_exists("/usr/bin/python3")) GTEST_SKIP() << "no /usr/bin/python3";
  const RunResult r = faultline({"doctor", "--json", "--", "/usr/bin/python3"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto doc = nlohmann::json::parse(r.out);
  // Its socket module may be a shared object loaded later; the interpreter or libpython it
  // needs imports the file calls at least.
  EXPECT_EQ(doc["families"]["@write"]["reachable"], true) << r.out;
  EXPECT_EQ(doc["families"]["@open"]["reachable"], true) << r.out;
  EXPECT_EQ(doc["backend"], "preload");
}

TEST_F(HostileDoctorTest, BadUsageExitsTwo) {
  const RunResult missing = faultline({"doctor", "--", "fl-no-such-command-anywhere"});
  EXPECT_EQ(missing.exit_code, 2) << missing.err;
  EXPECT_NE(missing.err.find("fl-no-such-command-anywhere: command not found"), std::string::npos)
      << missing.err;
  const RunResult none = faultline({"doctor"});
  EXPECT_EQ(none.exit_code, 2) << none.err;
  EXPECT_NE(none.err.find("no command"), std::string::npos) << none.err;
  const std::string script = path("script.sh");
  ASSERT_TRUE(write_file(script, "#!/bin/sh\nexit 0\n"));
  ASSERT_EQ(run({"/bin/chmod", "+x", script}).exit_code, 0);
  const RunResult not_elf = faultline({"doctor", "--", script});
  EXPECT_EQ(not_elf.exit_code, 2) << not_elf.err;
  EXPECT_NE(not_elf.err.find("not an ELF executable"), std::string::npos) << not_elf.err;
}

TEST_F(HostileDoctorTest, RunSummarySaysWhyAFaultSawNothing) {
  const std::string p = policy("dns.toml", R"([[fault]]
name = "nx"
calls = ["@dns"]
error = "EAI_NONAME"

[[fault]]
name = "local"
calls = ["@dns"]
host = "localhost"
error = "EAI_NONAME"
)");
  const RunResult r = faultline({"run", "-p", p, "--", "/bin/true"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("faultline: nx saw no call: true imports none of @dns"), std::string::npos)
      << r.err;
  EXPECT_NE(r.err.find("faultline: local saw no call: true imports none of @dns"),
            std::string::npos)
      << r.err;

  const RunResult j = faultline({"run", "--json", "-p", p, "--", "/bin/true"});
  EXPECT_EQ(j.exit_code, 0) << j.err;
  const auto doc = nlohmann::json::parse(j.err);
  ASSERT_EQ(doc["faults"].size(), 2u) << j.err;
  EXPECT_NE(doc["faults"][0]["hint"].get<std::string>().find("imports none of @dns"),
            std::string::npos);

  // curl imports getaddrinfo through libcurl but answers `localhost` itself: the known case.
  // Nothing listens on the port: curl is refused once it has resolved the name.
  if (file_exists("/usr/bin/curl")) {
    const std::string local = policy("local.toml", R"([[fault]]
name = "local"
calls = ["@dns"]
host = "localhost"
error = "EAI_NONAME"
)");
    const std::string url = "http://localhost:" + std::to_string(free_port()) + "/";
    const RunResult c =
        faultline({"run", "-p", local, "--", "/usr/bin/curl", "-sS", "--max-time", "10", url});
    EXPECT_EQ(c.exit_code, 7) << c.err;  // couldn't connect
    EXPECT_NE(c.err.find("faultline: local saw no call: curl never calls getaddrinfo for "
                         "`localhost`: it resolves that name itself"),
              std::string::npos)
        << c.err;
  }

  // A fault that saw calls gets no hint line.
  const std::string w = policy("write.toml", R"([[fault]]
name = "w"
calls = ["@write"]
path = "/nonexistent/*"
error = "EIO"
)");
  const RunResult seen = faultline({"run", "-p", w, "--", "/bin/echo", "hi"});
  EXPECT_EQ(seen.exit_code, 0) << seen.err;
  EXPECT_EQ(seen.err.find("saw no call"), std::string::npos) << seen.err;
}

}  // namespace
}  // namespace fltest
