// The session's life (docs/reliability.md, "The session's life"): the shim holds no fd of the
// program's, one copy of the shim acts however many are loaded, only the process that created
// a session removes it, a daemon that outlives `faultline run` keeps its session and stays
// reachable by `panic`, every process of a start-up race joins the session, and
// FAULTLINE_DISABLE never leaves a policy silently unarmed.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "harness.h"

extern char** environ;

namespace fltest {
namespace {

std::string program(const std::string& name) {
  return std::string(FL_PROGRAMS_DIR) + "/fl_" + name;
}

std::string shm_path(const std::string& session) { return "/dev/shm/faultline." + session; }

// Armed @open and @write faults that match none of the program's own files: the wrappers take
// their armed paths, and nothing is injected.
constexpr const char* kArmedElsewhere = R"(version = 1
[[fault]]
name = "open-elsewhere"
calls = ["open", "openat"]
path = "/nonexistent/*"
error = "EACCES"
[[fault]]
name = "write-elsewhere"
calls = ["write"]
path = "/nonexistent/*"
error = "EIO"
)";

class HostileLifecycleTest : public IntegrationTest {
 protected:
  // The fds the program gets with no preload at all: "3 4 5" unless the test runner itself
  // leaked a descriptor into the test (ctest may), which every run below inherits alike.
  std::string native_fds() {
    const RunResult r = run({program("fd_numbers")});
    EXPECT_EQ(r.status(), 0) << r.err;
    return r.out;
  }

  std::string policy(const std::string& name, const std::string& text) {
    const std::string file = path(name);
    EXPECT_TRUE(write_file(file, text));
    return file;
  }
};

// ---- the shim holds no fd ----------------------------------------------------------------------

TEST_F(HostileLifecycleTest, ProgramGetsTheLowestFdsUnderRun) {
  const std::string p = policy("p.toml", kArmedElsewhere);
  const std::string native = native_fds();
  ASSERT_EQ(split_lines(native).size(), 3u) << native;
  const std::vector<std::string> args{"run", "-q", "-p", p, "--", program("fd_numbers")};
  const RunResult r = faultline(args);
  EXPECT_EQ(r.status(), 0) << describe(args, r);
  EXPECT_EQ(r.out, native) << describe(args, r);

  // With an event log configured as well.
  const std::vector<std::string> logged{
      "run", "-q", "-p", p, "--log", path("events.jsonl"), "--", program("fd_numbers")};
  const RunResult l = faultline(logged);
  EXPECT_EQ(l.status(), 0) << describe(logged, l);
  EXPECT_EQ(l.out, native) << describe(logged, l);
}

TEST_F(HostileLifecycleTest, ProgramGetsTheLowestFdsUnderPlainPreload) {
  const std::string p = policy("p.toml", kArmedElsewhere);
  const std::string native = native_fds();
  ASSERT_EQ(split_lines(native).size(), 3u) << native;
  RunOptions options;
  // Once creating a session of its own (fl-<pid>), once creating a named one, once joining it.
  const std::string name = session("fds");
  for (const Env& env : {Env{{"LD_PRELOAD", shim()}, {"FAULTLINE_POLICY", p}},
                         Env{{"LD_PRELOAD", shim()},
                             {"FAULTLINE_POLICY", p},
                             {"FAULTLINE_SESSION", name},
                             {"FAULTLINE_LOG", path("events.jsonl")}},
                         Env{{"LD_PRELOAD", shim()}, {"FAULTLINE_SESSION", name}}}) {
    options.env = env;
    const RunResult r = run({program("fd_numbers")}, options);
    EXPECT_EQ(r.status(), 0) << describe({program("fd_numbers")}, r);
    EXPECT_EQ(r.out, native) << describe({program("fd_numbers")}, r);
    EXPECT_EQ(r.err.find("no faults armed"), std::string::npos) << r.err;
  }
}

// ---- one copy acts
// -------------------------------------------------------------------------------

// Every second write fails: a shim decided twice per call would fail them all.
constexpr const char* kEverySecondWrite = R"(version = 1
[[fault]]
name = "half"
calls = ["write"]
path = "*/count.dat"
error = "EIO"
every = 2
)";

TEST_F(HostileLifecycleTest, ASecondCopyOfTheShimStaysInert) {
  const std::string p = policy("half.toml", kEverySecondWrite);
  std::filesystem::create_directory(path("copy"));
  const std::string copy = path("copy/libfaultline.so");
  std::filesystem::copy_file(shim(), copy);

  // A user's LD_PRELOAD already names a copy; `faultline run` preloads its own in front.
  RunOptions options;
  options.env = {{"LD_PRELOAD", copy}};
  const std::vector<std::string> args{
      "run", "-p", p, "--", program("count_writes"), path("count.dat"), "10"};
  const RunResult r = faultline(args, options);
  ASSERT_EQ(r.status(), 0) << describe(args, r);
  EXPECT_EQ(r.out, "writes=10 failed=5 errno=5\n") << describe(args, r);
  EXPECT_EQ(summary_injected(r.err, "half").value_or(0), 5u) << describe(args, r);
  EXPECT_EQ(count_substr(r.err, "stays inert"), 1u) << describe(args, r);
  EXPECT_NE(r.err.find(copy), std::string::npos) << "the inert copy is not named\n"
                                                 << describe(args, r);

  // Plain LD_PRELOAD naming both: the first acts, whichever it is.
  options.env = {{"LD_PRELOAD", copy + ":" + shim()}, {"FAULTLINE_POLICY", p}};
  const std::vector<std::string> plain{program("count_writes"), path("count.dat"), "10"};
  const RunResult both = run(plain, options);
  EXPECT_EQ(both.out, "writes=10 failed=5 errno=5\n") << describe(plain, both);
  EXPECT_EQ(count_substr(both.err, "stays inert"), 1u) << describe(plain, both);
}

// ---- only the creator removes a session
// ----------------------------------------------------------

constexpr const char* kFailRcWrites = R"(version = 1
[[fault]]
name = "rc"
calls = ["write"]
path = "*/rc.dat"
error = "EIO"
)";

TEST_F(HostileLifecycleTest, ARawCloneChildDoesNotRemoveItsParentsSession) {
  const std::string p = policy("rc.toml", kFailRcWrites);
  RunOptions options;
  options.env = {{"LD_PRELOAD", shim()}, {"FAULTLINE_POLICY", p}};
  const std::vector<std::string> argv{program("raw_clone"), path("rc.dat")};
  const RunResult r = run(argv, options);
  ASSERT_EQ(r.status(), 0) << describe(argv, r);
  const std::string expected = "before=5 after=5 session=present name=fl-";
  EXPECT_EQ(r.out.substr(0, expected.size()), expected) << describe(argv, r);
  // The creator itself still removes the session it made under its default name.
  const std::size_t at = r.out.find("name=");
  ASSERT_NE(at, std::string::npos) << r.out;
  const std::string name = r.out.substr(at + 5, r.out.find('\n', at) - at - 5);
  EXPECT_FALSE(file_exists(shm_path(name))) << "the creator left " << name << " behind";
}

// ---- daemons stay reachable
// ----------------------------------------------------------------------

struct Tally {
  int pid = 0, failed = -1, ok = -1;
};

Tally read_tally(const std::string& file) {
  Tally t;
  const auto text = read_file(file);
  if (text) std::sscanf(text->c_str(), "pid %d failed %d ok %d", &t.pid, &t.failed, &t.ok);
  return t;
}

// Gone, or a zombie nobody reaped yet: it runs no code either way.
bool process_gone(pid_t pid) {
  if (kill(pid, 0) != 0) return true;
  const auto stat = read_file("/proc/" + std::to_string(pid) + "/stat");
  if (!stat) return true;
  const std::size_t paren = stat->rfind(')');
  return paren != std::string::npos && paren + 2 < stat->size() && (*stat)[paren + 2] == 'Z';
}

// Kills the daemon whatever happens to the test: nothing is left running.
struct DaemonReaper {
  std::string status_file;
  ~DaemonReaper() { stop(); }
  bool stop() const {
    const Tally t = read_tally(status_file);
    if (t.pid <= 0) return true;
    kill(t.pid, SIGKILL);
    const auto deadline = std::chrono::steady_clock::now() + 5s;
    while (!process_gone(t.pid) && std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(10ms);
    return process_gone(t.pid);
  }
};

template <class Predicate>
bool wait_until(Predicate&& done, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!done()) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(20ms);
  }
  return true;
}

class HostileLifecycleDaemonTest : public HostileLifecycleTest,
                                   public ::testing::WithParamInterface<const char*> {};

// "fork": fork, setsid, fork through the exported fork. "libc": glibc's daemon(3), whose fork
// is internal to libc and passes no wrapper.
TEST_P(HostileLifecycleDaemonTest, ADaemonKeepsItsSessionAndPanicReachesIt) {
  const std::string mode = GetParam();
  const std::string name = session("daemon");
  const std::string p = policy("daemon.toml", R"(version = 1
[[fault]]
name = "d"
calls = ["write"]
path = "*/daemon.dat"
error = "EIO"
)");
  const std::string status = path("status");
  const DaemonReaper reaper{status};
  // A shell that starts a daemon (fork, setsid, fork) and returns at once.
  const std::vector<std::string> args{"run",
                                      "-s",
                                      name,
                                      "-p",
                                      p,
                                      "--",
                                      "/bin/sh",
                                      "-c",
                                      program("daemon_writer") + " " + path("daemon.dat") + " " +
                                          status + " 10" + (mode == "libc" ? " libc" : "")};
  const RunResult r = faultline(args);
  ASSERT_EQ(r.status(), 0) << describe(args, r);
  EXPECT_NE(r.err.find("session " + name + " kept: 1 process still runs; `faultline panic " + name +
                       "` reaches it"),
            std::string::npos)
      << describe(args, r);

  // `run` has returned; the daemon is still faulted, and its session is still there.
  ASSERT_TRUE(wait_until([&] { return read_tally(status).failed >= 3; }, 5s))
      << "the daemon never reported faulted writes: " << read_file(status).value_or("<none>");
  EXPECT_EQ(read_tally(status).ok, 0) << "a write of the daemon got through before the panic";
  EXPECT_TRUE(file_exists(shm_path(name))) << "the session was removed under its daemon";
  const RunResult listed = faultline({"sessions"});
  EXPECT_NE(listed.out.find(name), std::string::npos) << listed.out << listed.err;

  const RunResult panic = faultline({"panic", name});
  EXPECT_EQ(panic.status(), 0) << describe({"panic", name}, panic);
  EXPECT_TRUE(wait_until([&] { return read_tally(status).ok >= 3; }, 5s))
      << "the daemon's writes still fail after panic: " << read_file(status).value_or("<none>");

  ASSERT_TRUE(reaper.stop()) << "the daemon could not be stopped";
  // Its last member gone, the session is swept (once older than the 2 s grace).
  RunResult swept;
  EXPECT_TRUE(wait_until(
      [&] {
        swept = faultline({"sessions"});
        return swept.status() == 0 && swept.out.find(name) == std::string::npos;
      },
      8s))
      << swept.out << swept.err;
  EXPECT_FALSE(file_exists(shm_path(name)));
}

INSTANTIATE_TEST_SUITE_P(Daemonize, HostileLifecycleDaemonTest, ::testing::Values("fork", "libc"));

// ---- every process of a start-up race joins
// ------------------------------------------------------

constexpr const char* kFailRaceWrites = R"(version = 1
[[fault]]
name = "race"
calls = ["write"]
path = "*/race-*.dat"
error = "EIO"
)";

// Starts `count` copies of argv[i] at the same moment (each held at a gate until all exist)
// and returns what each printed on stdout and stderr, in order. Bounded: a copy that has not
// finished within `timeout` is killed and reports "<timeout>".
std::vector<std::string> start_together(const std::vector<std::vector<std::string>>& argvs,
                                        const Env& extra, std::chrono::milliseconds timeout) {
  std::vector<std::string> env_strings;
  for (char** e = environ; *e != nullptr; ++e) {
    const std::string entry = *e;
    if (entry.rfind("LD_PRELOAD=", 0) == 0 || entry.rfind("FAULTLINE_", 0) == 0) continue;
    env_strings.push_back(entry);
  }
  for (const auto& [key, value] : extra) env_strings.push_back(key + "=" + value);
  std::vector<char*> envp;
  for (auto& s : env_strings) envp.push_back(s.data());
  envp.push_back(nullptr);
  std::vector<std::vector<std::string>> argv_copies = argvs;
  std::vector<std::vector<char*>> argv_pointers;
  for (auto& argv : argv_copies) {
    argv_pointers.emplace_back();
    for (auto& a : argv) argv_pointers.back().push_back(a.data());
    argv_pointers.back().push_back(nullptr);
  }

  int gate[2];
  if (pipe2(gate, O_CLOEXEC) != 0) return {};
  std::vector<pid_t> pids;
  std::vector<int> outs;
  for (auto& argv : argv_pointers) {
    int out[2];
    if (pipe2(out, O_CLOEXEC) != 0) break;
    const pid_t pid = fork();
    if (pid == 0) {  // async-signal-safe calls only until exec
      dup2(out[1], STDOUT_FILENO);
      dup2(out[1], STDERR_FILENO);  // a diagnostic of the shim is part of the result
      close(gate[1]);               // or the gate never reads end-of-file
      char c;
      while (read(gate[0], &c, 1) < 0 && errno == EINTR) {
      }
      execve(argv[0], argv.data(), envp.data());
      _exit(127);
    }
    close(out[1]);
    if (pid < 0) {
      close(out[0]);
      break;
    }
    pids.push_back(pid);
    outs.push_back(out[0]);
  }
  close(gate[0]);
  close(gate[1]);  // every copy reads end-of-file at once and execs

  std::vector<std::string> results(pids.size());
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (std::size_t i = 0; i < pids.size(); ++i) {
    bool done = false;
    while (!done) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      pollfd pfd{outs[i], POLLIN, 0};
      if (left.count() <= 0 || poll(&pfd, 1, static_cast<int>(left.count())) <= 0) {
        results[i] = "<timeout>";
        kill(pids[i], SIGKILL);
        break;
      }
      char buffer[256];
      const ssize_t n = read(outs[i], buffer, sizeof buffer);
      if (n > 0)
        results[i].append(buffer, static_cast<std::size_t>(n));
      else if (n == 0 || errno != EINTR)
        done = true;
    }
    close(outs[i]);
    int status = 0;
    waitpid(pids[i], &status, 0);
  }
  return results;
}

TEST_F(HostileLifecycleTest, EveryProcessOfAStartUpRaceJoins) {
  const std::string p = policy("race.toml", kFailRaceWrites);
  constexpr int kRounds = 50;
  constexpr int kProcesses = 16;
  const auto started = std::chrono::steady_clock::now();
  int unfaulted = 0;
  std::string first_failure;
  for (int round = 0; round < kRounds; ++round) {
    const std::string name = session("race" + std::to_string(round));
    std::vector<std::vector<std::string>> argvs;
    for (int i = 0; i < kProcesses; ++i)
      argvs.push_back({program("count_writes"), path("race-" + std::to_string(i) + ".dat"), "1"});
    const auto outputs = start_together(
        argvs, {{"LD_PRELOAD", shim()}, {"FAULTLINE_POLICY", p}, {"FAULTLINE_SESSION", name}}, 20s);
    ASSERT_EQ(outputs.size(), static_cast<std::size_t>(kProcesses));
    for (const std::string& out : outputs)
      if (out != "writes=1 failed=1 errno=5\n") {
        ++unfaulted;
        if (first_failure.empty()) first_failure = "round " + std::to_string(round) + ": " + out;
      }
    ::unlink(shm_path(name).c_str());
  }
  const auto took = std::chrono::duration_cast<std::chrono::milliseconds>(
      std::chrono::steady_clock::now() - started);
  std::cerr << kRounds << " rounds of " << kProcesses << " processes in " << took.count()
            << " ms\n";
  EXPECT_EQ(unfaulted, 0) << unfaulted << " of " << kRounds * kProcesses
                          << " processes ran unfaulted; first: " << first_failure;
}

// ---- FAULTLINE_DISABLE is never silent
// -----------------------------------------------------------

TEST_F(HostileLifecycleTest, RunRefusesAPolicyFaultlineDisableWouldLeaveUnarmed) {
  const std::string p = policy("p.toml", kFailRcWrites);
  const std::string marker = path("ran");
  const std::vector<std::string> args{"run", "-p", p, "--", "/bin/sh", "-c", "touch " + marker};
  RunOptions options;
  options.env = {{"FAULTLINE_DISABLE", "1"}};
  const RunResult r = faultline(args, options);
  EXPECT_EQ(r.status(), 2) << describe(args, r);
  EXPECT_NE(r.err.find("FAULTLINE_DISABLE=1"), std::string::npos) << describe(args, r);
  EXPECT_FALSE(file_exists(marker)) << "the program ran with its policy unarmed";

  // Without a policy there is nothing to refuse, but it is said.
  const std::vector<std::string> bare{"run", "--", "/bin/sh", "-c", "touch " + marker};
  const RunResult b = faultline(bare, options);
  EXPECT_EQ(b.status(), 0) << describe(bare, b);
  EXPECT_NE(b.err.find("FAULTLINE_DISABLE=1 is set"), std::string::npos) << describe(bare, b);

  // FAULTLINE_DISABLE=0 is no disable.
  options.env = {{"FAULTLINE_DISABLE", "0"}};
  const RunResult zero = faultline(args, options);
  EXPECT_EQ(zero.status(), 0) << describe(args, zero);
  EXPECT_TRUE(file_exists(marker));
}

}  // namespace
}  // namespace fltest
