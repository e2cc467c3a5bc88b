// The C++ API (include/faultline/faultline.hpp) as a test suite meets it: programs started under
// a policy given as text or file, readiness by stdout line and by port, live flips seen by the
// program itself, counters and events that agree with what it reported, every documented error,
// and cleanup (the process group killed, the session removed) when a test ends early. Last, a
// consumer project built against `cmake --install` output with find_package(faultline).
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <fstream>
#include <string>
#include <vector>

#include "faultline/faultline.hpp"
#include "harness.h"

namespace fltest {
namespace {

constexpr const char* kPython = "/usr/bin/python3";

// Appends to `path` every 20 ms (at most 500 times) until `stop` exists, printing "ok" or
// "err <errno>" for each write: what the program itself saw.
constexpr const char* kWriter = R"(
import os, sys, time
path, stop = sys.argv[1], sys.argv[2]
print("ready", flush=True)
for i in range(500):
    if os.path.exists(stop):
        break
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.write(fd, b"x\n")
        print("ok", flush=True)
    except OSError as e:
        print("err", e.errno, flush=True)
    os.close(fd)
    time.sleep(0.02)
print("done", flush=True)
)";

constexpr const char* kWriteFault = R"(version = 1
seed = 3
[[fault]]
name = "w"
calls = ["write"]
path = "*/data.log"
error = "EIO"
enabled = false
)";

bool session_block_exists(const std::string& name) {
  struct stat st;
  return ::stat(("/dev/shm/faultline." + name).c_str(), &st) == 0;
}

// Gone, or a zombie waiting for a reaper that is not us (reparented to init).
bool process_gone_now(pid_t pid) {
  if (kill(pid, 0) != 0) return errno == ESRCH;
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string text;
  std::getline(stat, text);
  const auto close = text.rfind(')');
  return close != std::string::npos && close + 2 < text.size() && text[close + 2] == 'Z';
}

// SIGKILL is delivered asynchronously: a process signalled a moment ago may still be on its
// way out. Gone within 5 s (bounded: 500 checks 10 ms apart).
bool process_gone(pid_t pid) {
  for (int i = 0; i < 500; ++i) {
    if (process_gone_now(pid)) return true;
    usleep(10'000);
  }
  return false;
}

class ApiTest : public IntegrationTest {
 protected:
  faultline::Options writer(const std::string& policy) {
    faultline::Options options;
    options.command = {kPython, "-c", kWriter, path("data.log"), path("stop")};
    options.policy = policy;
    return options;
  }
  void finish(faultline::Session& s) {
    ASSERT_TRUE(write_file(path("stop"), ""));
    EXPECT_EQ(s.wait(std::chrono::seconds(10)), 0) << s.stderr_text();
  }
};

TEST_F(ApiTest, LiveFlipsReachTheProgramAndTheCountersAgree) {
  faultline::Session s(writer(kWriteFault));
  s.wait_for_line("ready");
  EXPECT_EQ(s.wait_for_line("ok"), "ok");  // disabled: the writes go through
  EXPECT_EQ(s.counters("w").injected, 0u);

  s.enable("w");
  EXPECT_EQ(s.wait_for_line("err"), "err 5");  // EIO, as the program saw it
  s.set("w", "error", "ENOSPC");
  s.wait_for_line("err 28");
  s.panic();
  s.wait_for_line("ok");
  s.resume();
  s.wait_for_line("err 28");
  s.disable("w");
  s.wait_for_line("ok");
  finish(s);

  const std::string out = s.stdout_text();
  const std::uint64_t failed = count_substr(out, "err ");
  const faultline::FaultCounters c = s.counters("w");
  EXPECT_EQ(c.name, "w");
  EXPECT_FALSE(c.enabled);
  EXPECT_GE(failed, 3u) << out;
  EXPECT_EQ(c.injected, failed) << out;
  EXPECT_EQ(s.injected_total(), failed);
  // Every injection is in the ring, with the names the event log uses.
  const auto events = s.events();
  ASSERT_EQ(events.size(), failed);
  for (const auto& e : events) {
    EXPECT_EQ(e.fault, "w");
    EXPECT_EQ(e.call, "write");
    EXPECT_EQ(e.action, "error");
    EXPECT_TRUE(e.error == "EIO" || e.error == "ENOSPC") << e.error;
    EXPECT_EQ(e.path, path("data.log"));
    EXPECT_EQ(e.pid, s.pid());
  }
  EXPECT_EQ(events.front().error, "EIO");
  EXPECT_EQ(events.back().error, "ENOSPC");
  // The file holds exactly the writes that were let through.
  std::string expected;
  for (std::size_t i = 0; i < count_substr(out, "ok\n"); ++i) expected += "x\n";
  EXPECT_EQ(read_file(path("data.log")).value_or(""), expected);
}

TEST_F(ApiTest, PolicyFileSeedAndWaitForInjections) {
  ASSERT_TRUE(write_file(path("p.toml"), std::string(kWriteFault) + ""));
  faultline::Options options = writer("");
  options.policy_file = path("p.toml");
  options.seed = 99;
  faultline::Session s(options);
  EXPECT_EQ(s.seed(), 99u);
  EXPECT_EQ(s.name().rfind("fl-", 0), 0u) << s.name();
  s.wait_for_line("ready");
  s.set("w", {"enabled=true", "times=2"});  // `enabled` through set flips it live too
  const faultline::FaultCounters c = s.wait_for_injections("w", 2);
  EXPECT_EQ(c.injected, 2u);
  EXPECT_TRUE(c.enabled);
  finish(s);
  EXPECT_EQ(count_substr(s.stdout_text(), "err 5"), 2u) << s.stdout_text();
  EXPECT_EQ(s.counters("w").injected, 2u);
}

TEST_F(ApiTest, AddAndRemoveFaultsLive) {
  faultline::Session s(writer(""));  // no policy: nothing armed
  s.wait_for_line("ready");
  s.wait_for_line("ok");
  EXPECT_TRUE(s.faults().empty());
  s.add(R"([[fault]]
name = "late"
calls = ["write"]
path = "*/data.log"
error = "EROFS"
)");
  s.wait_for_line("err 30");
  ASSERT_EQ(s.faults().size(), 1u);
  EXPECT_GE(s.faults()[0].injected, 1u);
  s.remove("late");
  s.wait_for_line("ok");
  EXPECT_TRUE(s.faults().empty());
  finish(s);
}

TEST_F(ApiTest, ReadinessByPortAndByMatch) {
  faultline::Options options;
  options.command = {kPython,  "-u",        "-m",          "http.server", "0",
                     "--bind", "127.0.0.1", "--directory", dir_.path()};
  faultline::Session server(options);
  // "Serving HTTP on 127.0.0.1 port 40123 (http://127.0.0.1:40123/) ..."
  const auto match = server.wait_for_match(std::regex(R"(port (\d+))"));
  ASSERT_EQ(match.size(), 2u);
  const int port = std::stoi(match[1]);
  server.wait_for_port(static_cast<std::uint16_t>(port));
  EXPECT_TRUE(server.running());
  // SIGTERM ends http.server (status 128+15, or its own exit code after the handler).
  const int status = server.stop(std::chrono::seconds(5));
  EXPECT_FALSE(server.running());
  EXPECT_NE(status, 0);
  EXPECT_EQ(server.stop(), status);  // idempotent
}

// [target] io_uring = "deny" through the API: the same launcher installs the gate, so the
// liburing program falls back to write() and sees the injected error itself.
TEST_F(ApiTest, IoUringDenyMakesTheProgramFallBackToWhatTheFaultSees) {
  const std::string program = std::string(FAULTLINE_BINARY_DIR) + "/fl_uring_or_write";
  const RunResult native = run({program, path("native.out")});
  ASSERT_EQ(native.exit_code, 0) << native.err;
  if (native.out.find("path: io_uring") == std::string::npos)
    GTEST_SKIP() << "io_uring is not available here: " << native.out;
  faultline::Options options;
  options.command = {program, path("data.out")};
  options.policy =
      "version = 1\n[target]\nio_uring = \"deny\"\n[[fault]]\nname = \"w\"\n"
      "calls = [\"@write\"]\npath = \"*/data.out\"\nerror = \"ENOSPC\"\n";
  faultline::Session s(options);
  EXPECT_EQ(s.wait(std::chrono::seconds(10)), 1) << s.stderr_text();
  EXPECT_EQ(s.stdout_text(), "path: write (io_uring_setup: Function not implemented)\n");
  EXPECT_NE(s.stderr_text().find("No space left on device"), std::string::npos) << s.stderr_text();
  EXPECT_EQ(s.counters("w").injected, 1u);
}

// ---- errors ----------------------------------------------------------------------------------

template <class F>
faultline::Error caught(F&& f) {
  try {
    f();
  } catch (const faultline::Error& e) {
    return e;
  }
  ADD_FAILURE() << "no faultline::Error thrown";
  return faultline::Error(faultline::Errc::system, -1, "none");
}

TEST_F(ApiTest, BadPolicyIsRefusedWithItsPosition) {
  faultline::Options options = writer(
      "version = 1\n[[fault]]\nname = \"f\"\nerorr = \"EIO\"\n"
      "calls = [\"write\"]\n");
  const auto e = caught([&] { faultline::Session s(options); });
  EXPECT_EQ(e.code(), faultline::Errc::bad_policy);
  EXPECT_EQ(e.exit_status(), 2);
  EXPECT_NE(std::string(e.what()).find("<policy>:4:1:"), std::string::npos) << e.what();
  EXPECT_NE(std::string(e.what()).find("error"), std::string::npos) << e.what();  // suggestion
  EXPECT_FALSE(file_exists(path("data.log"))) << "the program ran";
}

// A policy file that is not a regular file is refused at once (a FIFO nobody writes to must
// not hang the caller), and a log path the session cannot hold is refused before anything runs.
TEST_F(ApiTest, BadInputFilesAndLogPathsAreRefused) {
  for (const std::string& file : {std::string("/dev/zero"), path("policy.fifo")}) {
    SCOPED_TRACE(file);
    if (file != "/dev/zero") {
      ASSERT_EQ(::mkfifo(file.c_str(), 0600), 0);
    }
    faultline::Options options = writer("");
    options.policy_file = file;
    const auto e = caught([&] { faultline::Session s(options); });
    EXPECT_EQ(e.code(), faultline::Errc::bad_policy) << e.what();
    EXPECT_NE(std::string(e.what()).find("not a regular file"), std::string::npos) << e.what();
  }
  faultline::Options options = writer(kWriteFault);
  options.log = path(std::string(600, 'l'));
  const auto e = caught([&] { faultline::Session s(options); });
  EXPECT_EQ(e.code(), faultline::Errc::bad_argument) << e.what();
  EXPECT_NE(std::string(e.what()).find("the 'log' option is too long"), std::string::npos)
      << e.what();
  EXPECT_FALSE(file_exists(path("data.log"))) << "the program ran";
}

TEST_F(ApiTest, CommandErrorsAreTheCliStatuses) {
  faultline::Options missing;
  missing.command = {"no-such-command-faultline"};
  auto e = caught([&] { faultline::Session s(missing); });
  EXPECT_EQ(e.code(), faultline::Errc::command_not_found) << e.what();
  EXPECT_EQ(e.exit_status(), 127);

  faultline::Options directory;
  directory.command = {dir_.path()};
  e = caught([&] { faultline::Session s(directory); });
  EXPECT_EQ(e.code(), faultline::Errc::cannot_execute) << e.what();
  EXPECT_EQ(e.exit_status(), 126);

  faultline::Options nothing;
  e = caught([&] { faultline::Session s(nothing); });
  EXPECT_EQ(e.code(), faultline::Errc::bad_argument) << e.what();

  faultline::Options both = writer(kWriteFault);
  both.policy_file = path("p.toml");
  e = caught([&] { faultline::Session s(both); });
  EXPECT_EQ(e.code(), faultline::Errc::bad_argument) << e.what();

  faultline::Options no_shim = writer(kWriteFault);
  no_shim.shim = path("nowhere/libfaultline.so");
  e = caught([&] { faultline::Session s(no_shim); });
  EXPECT_EQ(e.code(), faultline::Errc::no_shim) << e.what();
  EXPECT_NE(std::string(e.what()).find("nowhere"), std::string::npos) << e.what();
}

TEST_F(ApiTest, StaticProgramUnderEachBackend) {
  ASSERT_TRUE(write_file(path("static.c"), "int main(void) { return 0; }\n"));
  const RunResult cc = run({FAULTLINE_CC, "-static", "-o", path("static"), path("static.c")});
  if (cc.status() != 0) GTEST_SKIP() << "cannot build a static program here: " << cc.err;
  faultline::Options options;
  options.command = {path("static")};
  // `auto` (the default): the seccomp backend runs it (api_seccomp_test.cpp faults such programs).
  {
    faultline::Session s(options);
    EXPECT_EQ(s.wait(std::chrono::seconds(20)), std::optional<int>(0)) << s.stderr_text();
  }
  // The preload backend cannot reach it: refused, as `faultline run --backend preload` is.
  options.backend = "preload";
  const auto e = caught([&] { faultline::Session s(options); });
  EXPECT_EQ(e.code(), faultline::Errc::unreachable) << e.what();
  EXPECT_NE(std::string(e.what()).find("statically linked"), std::string::npos) << e.what();
}

TEST_F(ApiTest, EditErrorsChangeNothing) {
  faultline::Session s(writer(kWriteFault));
  s.wait_for_line("ready");
  auto e = caught([&] { s.enable("nope"); });
  EXPECT_EQ(e.code(), faultline::Errc::no_such_fault);
  EXPECT_EQ(e.exit_status(), 1);
  EXPECT_NE(std::string(e.what()).find("faults: w"), std::string::npos) << e.what();
  e = caught([&] { s.counters("nope"); });
  EXPECT_EQ(e.code(), faultline::Errc::no_such_fault);
  // A bad setting after a good one: neither is applied.
  e = caught([&] { s.set("w", {"probability=0.5", "probability=2"}); });
  EXPECT_EQ(e.code(), faultline::Errc::bad_argument) << e.what();
  EXPECT_NE(std::string(e.what()).find("probability=2"), std::string::npos) << e.what();
  e = caught([&] { s.add("[[fault]]\nname = \"w\"\ncalls = [\"write\"]\nerror = \"EIO\"\n"); });
  EXPECT_EQ(e.code(), faultline::Errc::bad_argument) << e.what();  // the name is taken
  e = caught([&] { s.add("[[fault]]\nname = \"x\"\ncalls = [\"nosuch\"]\nerror = \"EIO\"\n"); });
  EXPECT_EQ(e.code(), faultline::Errc::bad_policy) << e.what();
  EXPECT_NE(std::string(e.what()).find("<faults>:3:"), std::string::npos) << e.what();
  ASSERT_EQ(s.faults().size(), 1u);
  EXPECT_FALSE(s.faults()[0].enabled);
  s.wait_for_line("ok");  // still unfaulted
  finish(s);
  EXPECT_EQ(s.counters("w").injected, 0u);
}

TEST_F(ApiTest, WaitsEndWithTimeoutOrExit) {
  faultline::Options options;
  options.command = {"/bin/sh", "-c", "echo one; echo oops >&2; exit 3"};
  faultline::Session s(options);
  EXPECT_EQ(s.wait_for_line("one"), "one");
  auto e = caught([&] { s.wait_for_line("never", std::chrono::seconds(5)); });
  EXPECT_EQ(e.code(), faultline::Errc::exited) << e.what();
  EXPECT_NE(std::string(e.what()).find("status 3"), std::string::npos) << e.what();
  EXPECT_NE(std::string(e.what()).find("oops"), std::string::npos) << e.what();
  EXPECT_EQ(s.wait(std::chrono::seconds(5)), 3);

  faultline::Options quiet;
  quiet.command = {"/bin/sleep", "30"};
  faultline::Session sleeper(quiet);
  e = caught([&] { sleeper.wait_for_line("never", std::chrono::milliseconds(200)); });
  EXPECT_EQ(e.code(), faultline::Errc::timeout) << e.what();
  e = caught([&] { sleeper.wait_for_port(1, std::chrono::milliseconds(200)); });
  EXPECT_EQ(e.code(), faultline::Errc::timeout) << e.what();
  e = caught([&] { sleeper.wait_for_port(1, std::chrono::milliseconds(200), "localhost"); });
  EXPECT_EQ(e.code(), faultline::Errc::bad_argument) << e.what();
  EXPECT_EQ(sleeper.stop(std::chrono::seconds(5)), 128 + SIGTERM);
}

// RAII: a test that fails half-way (here: throws) leaves no process and no session behind,
// even a grandchild in the program's process group, even a program that ignores SIGTERM.
TEST_F(ApiTest, DestructorKillsTheGroupAndRemovesTheSession) {
  pid_t child = 0, grandchild = 0;
  std::string name;
  try {
    faultline::Options options;
    options.command = {"/bin/sh", "-c", "trap '' TERM; sleep 60 & echo $!; wait"};
    options.policy = kWriteFault;
    options.session = unique_session_name("api-raii");
    options.stop_grace = std::chrono::milliseconds(300);
    faultline::Session s(options);
    grandchild = std::stoi(s.wait_for_match(std::regex(R"(^(\d+)$)"))[1]);
    child = s.pid();
    name = s.name();
    EXPECT_EQ(name, options.session);
    EXPECT_TRUE(session_block_exists(name));
    throw std::runtime_error("the test failed here");
  } catch (const std::runtime_error&) {
  }
  ASSERT_GT(child, 0);
  EXPECT_TRUE(process_gone(child));
  EXPECT_TRUE(process_gone(grandchild));
  EXPECT_FALSE(session_block_exists(name));
}

// A moved Session owns the program; the moved-from one owns nothing and says so.
TEST_F(ApiTest, MovedSessionKeepsTheProgram) {
  faultline::Session first(writer(kWriteFault));
  first.wait_for_line("ready");
  faultline::Session second(std::move(first));
  second.enable("w");
  second.wait_for_line("err 5");
  const auto e = caught([&] { (void)first.name(); });  // NOLINT(bugprone-use-after-move)
  EXPECT_EQ(e.code(), faultline::Errc::bad_argument);
  finish(second);
}

// ---- the installed package ---------------------------------------------------------------

// `cmake --install`, then a project of a user's: find_package(faultline) and
// target_link_libraries(... faultline::faultline), built and run. The program injects with the
// libfaultline.so of the installed prefix (recorded by the package), not the build tree's.
TEST_F(ApiTest, ConsumerProjectBuildsAgainstTheInstalledPackage) {
  const std::string prefix = path("prefix");
  RunOptions slow;
  slow.timeout = std::chrono::seconds(90);
  const RunResult install =
      run({CMAKE_COMMAND, "--install", FAULTLINE_BINARY_DIR, "--prefix", prefix}, slow);
  ASSERT_EQ(install.status(), 0) << install.out << install.err;
  ASSERT_TRUE(file_exists(prefix + "/include/faultline/faultline.hpp"));

  const std::string project = path("consumer");
  ASSERT_EQ(mkdir(project.c_str(), 0755), 0);
  ASSERT_TRUE(write_file(project + "/CMakeLists.txt", R"(cmake_minimum_required(VERSION 3.20)
project(consumer CXX)
set(CMAKE_CXX_STANDARD 20)
find_package(faultline REQUIRED)
add_executable(consumer main.cpp)
target_link_libraries(consumer PRIVATE faultline::faultline)
file(WRITE ${CMAKE_BINARY_DIR}/shim.txt "${faultline_SHIM}")
)"));
  ASSERT_TRUE(write_file(project + "/main.cpp", R"(#include <faultline/faultline.hpp>
#include <fstream>
#include <iostream>
#include <string>
int main() {
  faultline::Options options;
  options.command = {"/bin/sh", "-c", "echo hi > /dev/full; echo wrote $?; sleep 30"};
  options.policy = R"toml(version = 1
[[fault]]
name = "full"
calls = ["write"]
path = "/dev/full"
error = "EIO"
)toml";
  try {
    faultline::Session s(options);
    s.wait_for_line("wrote");
    std::ifstream maps("/proc/" + std::to_string(s.pid()) + "/maps");
    std::string line, shim;
    while (std::getline(maps, line))
      if (line.find("libfaultline.so") != std::string::npos) shim = line.substr(line.find('/'));
    s.stop(std::chrono::milliseconds(100));
    std::cout << "shim " << shim << "\n" << "injected " << s.counters("full").injected << "\n";
    return shim.empty() ? 1 : 0;
  } catch (const faultline::Error& e) {
    std::cerr << faultline::to_string(e.code()) << ": " << e.what() << "\n";
    return 2;
  }
}
)"));
  RunOptions build_options;
  build_options.timeout = std::chrono::seconds(120);
  const RunResult configure = run({CMAKE_COMMAND, "-S", project, "-B", project + "/build",
                                   "-DCMAKE_PREFIX_PATH=" + prefix, "-DCMAKE_BUILD_TYPE=Release"},
                                  build_options);
  ASSERT_EQ(configure.status(), 0) << configure.out << configure.err;
  EXPECT_EQ(read_file(project + "/build/shim.txt").value_or(""),
            prefix + "/lib/faultline/libfaultline.so");
  const RunResult build = run({CMAKE_COMMAND, "--build", project + "/build"}, build_options);
  ASSERT_EQ(build.status(), 0) << build.out << build.err;
  const RunResult consumer = run({project + "/build/consumer"});
  EXPECT_EQ(consumer.status(), 0) << consumer.out << consumer.err;
  EXPECT_NE(consumer.out.find("shim " + prefix + "/lib/faultline/libfaultline.so"),
            std::string::npos)
      << consumer.out << consumer.err;
  EXPECT_NE(consumer.out.find("injected 1"), std::string::npos) << consumer.out;
}

}  // namespace
}  // namespace fltest
