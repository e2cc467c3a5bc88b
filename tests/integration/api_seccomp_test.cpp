// The C++ API (faultline::Session) and experiments under the seccomp backend: programs no
// preload reaches (a statically linked C program, Go programs) started through the API and
// faulted by their policy, live enable/disable reaching them, two seccomp sessions alive at
// once in this one process each faulted by its own policy only (each program has a server
// process of its own: controller/seccomp/serve_detached.h), no server process left once a
// Session ends, the `backend` option, and an experiment whose Go service a step faults.
#include <dirent.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "faultline/faultline.hpp"
#include "harness.h"

namespace fltest {
namespace {

using namespace std::chrono_literals;

const std::string kStatic = FL_STATIC_IO;

faultline::Error caught(const std::function<void()>& f) {
  try {
    f();
  } catch (const faultline::Error& e) {
    return e;
  }
  ADD_FAILURE() << "no faultline::Error thrown";
  return faultline::Error(faultline::Errc::system, 0, "none");
}

// The inode of the session's block (made under no name and linked into place: a mapping
// shows it by inode, not by its final name).
ino_t block_inode(const std::string& session) {
  struct stat st {};
  return ::stat(("/dev/shm/faultline." + session).c_str(), &st) == 0 ? st.st_ino : 0;
}

// The processes (other than this one) that map the block with inode `inode`: under the seccomp
// backend the program does not (nothing is preloaded), its server process does.
std::vector<pid_t> block_mappers(ino_t inode) {
  std::vector<pid_t> found;
  DIR* proc = opendir("/proc");
  if (proc == nullptr) return found;
  while (const dirent* entry = readdir(proc)) {
    const pid_t pid = static_cast<pid_t>(std::atoi(entry->d_name));
    if (pid <= 0 || pid == getpid()) continue;
    std::ifstream maps("/proc/" + std::to_string(pid) + "/maps");
    for (std::string line; std::getline(maps, line);) {
      // address perms offset dev inode path
      std::istringstream fields(line);
      std::string address, perms, offset, dev, path;
      unsigned long long ino = 0;
      fields >> address >> perms >> offset >> dev >> ino >> path;
      if (ino == inode && path.starts_with("/dev/shm/")) {
        found.push_back(pid);
        break;
      }
    }
  }
  closedir(proc);
  return found;
}

std::size_t count_of(const std::string& text, const std::string& needle) {
  std::size_t n = 0;
  for (auto at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1)) ++n;
  return n;
}

class ApiSeccompTest : public IntegrationTest {
 protected:
  faultline::Options options(std::vector<std::string> command, const std::string& policy) {
    faultline::Options o;
    o.command = std::move(command);
    o.policy = policy;
    o.session = session("api");
    o.shim = FAULTLINE_SHIM;
    o.stop_grace = 500ms;
    return o;
  }
  static std::string write_error(const std::string& glob, const std::string& error,
                                 bool enabled = true) {
    return "version = 1\nseed = 1\n[[fault]]\nname = \"w\"\ncalls = [\"write\"]\npath = \"" + glob +
           "\"\nerror = \"" + error + "\"\nenabled = " + (enabled ? "true" : "false") + "\n";
  }
};

// A statically linked C program: `auto` (the default) picks the seccomp backend, and the
// program's own write fails with the policy's error.
TEST_F(ApiSeccompTest, StaticProgramFaulted) {
  faultline::Session s(
      options({kStatic, "file", path("s.txt")}, write_error(path("s.txt"), "EIO")));
  ASSERT_EQ(s.wait(20s), std::optional<int>(0)) << s.stderr_text();
  EXPECT_EQ(s.stdout_text(), "write: Input/output error\nfsync: ok\n") << s.stderr_text();
  EXPECT_EQ(s.counters("w").injected, 1u);
  const auto events = s.events();
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].process, "fl_static_io");
  EXPECT_EQ(events[0].error, "EIO");
}

TEST_F(ApiSeccompTest, BackendOption) {
  // Not a backend: refused before anything starts.
  faultline::Options bad = options({kStatic, "file", path("b.txt")}, "version = 1\n");
  bad.backend = "ptrace";
  auto e = caught([&] { faultline::Session s(bad); });
  EXPECT_EQ(e.code(), faultline::Errc::bad_argument) << e.what();
  EXPECT_NE(std::string(e.what()).find("'ptrace'"), std::string::npos) << e.what();
  EXPECT_FALSE(file_exists(path("b.txt"))) << "the program ran";

  // The preload backend, by option or by the policy's [target] backend, cannot reach it.
  faultline::Options preload = options({kStatic, "file", path("b.txt")}, "version = 1\n");
  preload.backend = "preload";
  e = caught([&] { faultline::Session s(preload); });
  EXPECT_EQ(e.code(), faultline::Errc::unreachable) << e.what();
  EXPECT_NE(std::string(e.what()).find("statically linked"), std::string::npos) << e.what();
  faultline::Options by_policy =
      options({kStatic, "file", path("b.txt")}, "version = 1\n[target]\nbackend = \"preload\"\n");
  e = caught([&] { faultline::Session s(by_policy); });
  EXPECT_EQ(e.code(), faultline::Errc::unreachable) << e.what();
  EXPECT_FALSE(file_exists(path("b.txt"))) << "the program ran";

  // The option overrides the policy: seccomp it is, and the fault fires.
  faultline::Options both =
      options({kStatic, "file", path("c.txt")},
              "version = 1\n[target]\nbackend = \"preload\"\n[[fault]]\nname = \"f\"\ncalls = "
              "[\"fsync\"]\nerror = \"EIO\"\n");
  both.backend = "seccomp";
  faultline::Session s(both);
  ASSERT_EQ(s.wait(20s), std::optional<int>(0)) << s.stderr_text();
  EXPECT_EQ(s.stdout_text(), "write: ok\nfsync: Input/output error\n");
}

#ifdef FL_GO_WRITELOOP
const std::string kGoLoop = FL_GO_WRITELOOP;

// A Go program (its system calls are its own): faulted, then steered live through the API.
TEST_F(ApiSeccompTest, GoProgramSteeredLive) {
  faultline::Session s(options({kGoLoop, "-every", "30ms", "-n", "600", path("g.dat")},
                               write_error(path("g.dat"), "EIO", false)));
  s.wait_for_line("write 2: ok", 20s);
  EXPECT_EQ(s.counters("w").injected, 0u);
  s.enable("w");
  s.wait_for_match(std::regex(R"(write \d+: .*input/output error)"), 10s);
  s.disable("w");
  const auto after = s.counters("w").injected;
  EXPECT_GE(after, 1u);
  // Once disabled, the program's writes succeed again (a write already decided may still fail).
  s.wait_for_match(std::regex(R"(write \d+: ok$)"), 10s);
  s.wait_for_match(std::regex(R"(write \d+: ok$)"), 10s);
  EXPECT_LE(s.counters("w").injected, after + 1);
  EXPECT_TRUE(s.running());
  s.stop();
  const auto events = s.events();
  ASSERT_FALSE(events.empty());
  EXPECT_EQ(events[0].call, "write");
  EXPECT_EQ(events[0].path, path("g.dat"));
}

// Two seccomp sessions at once in this process, each program answered by its own server with
// its own policy: one sees EIO, the other ENOSPC, never the other's.
TEST_F(ApiSeccompTest, TwoSessionsEachFaultedByItsOwnPolicy) {
  faultline::Session a(options({kGoLoop, "-every", "20ms", "-n", "500", path("a.dat")},
                               write_error(path("*.dat"), "EIO")));
  faultline::Options bo = options({kGoLoop, "-every", "20ms", "-n", "20", path("b.dat")},
                                  write_error(path("*.dat"), "ENOSPC"));
  bo.session = session("b");
  faultline::Session b(bo);
  a.wait_for_line("write 0:", 20s);
  ASSERT_EQ(b.wait(30s), std::optional<int>(0)) << b.stderr_text();
  EXPECT_TRUE(a.running()) << "both must have run at the same time";
  a.wait_for_line("write 25:", 20s);
  a.stop();
  const std::string a_out = a.stdout_text(), b_out = b.stdout_text();
  EXPECT_EQ(count_of(b_out, "no space left on device"), 20u) << b_out;
  EXPECT_EQ(count_of(b_out, "input/output error"), 0u) << b_out;
  EXPECT_GE(count_of(a_out, "input/output error"), 26u) << a_out;
  EXPECT_EQ(count_of(a_out, "no space left on device"), 0u) << a_out;
  EXPECT_EQ(b.counters("w").injected, 20u);
}

// The server process lives as long as the program and no longer.
TEST_F(ApiSeccompTest, NoServerLeftAfterTheSessionEnds) {
  std::string name;
  ino_t inode = 0;
  {
    faultline::Session s(options({kGoLoop, "-every", "20ms", "-n", "1000", path("n.dat")},
                                 write_error(path("n.dat"), "EIO")));
    name = s.name();
    inode = block_inode(name);
    ASSERT_NE(inode, 0u);
    s.wait_for_line("write 1:", 20s);
    const auto servers = block_mappers(inode);
    ASSERT_EQ(servers.size(), 1u) << "the program's server process";
    std::ifstream comm("/proc/" + std::to_string(servers[0]) + "/comm");
    std::string text;
    std::getline(comm, text);
    EXPECT_EQ(text, "fl-seccomp");
  }
  // Bounded: 500 checks 10 ms apart.
  bool gone = false;
  for (int i = 0; i < 500 && !gone; ++i) {
    gone = block_mappers(inode).empty();
    if (!gone) usleep(10'000);
  }
  EXPECT_TRUE(gone) << "a server process of session " << name << " is still alive";
  EXPECT_FALSE(file_exists("/dev/shm/faultline." + name));
}
#endif

#ifdef FL_GO_HTTPSERVE
// An experiment whose service is a Go HTTP server: the step's fault (accept fails with EMFILE,
// as when the process is out of descriptors) reaches it under the seccomp backend, and the
// probe sees the service stop answering, then recover.
TEST_F(ApiSeccompTest, ExperimentStepFaultsAGoService) {
  const int port = 23000 + (getpid() % 800) * 10;
  const std::string service = session("go");
  const std::string address = "127.0.0.1:" + std::to_string(port);
  ASSERT_TRUE(write_file(path("svc.toml"),
                         "version = 1\n[[fault]]\nname = \"nofd\"\ncalls = [\"accept\", "
                         "\"accept4\"]\nerror = \"EMFILE\"\nenabled = false\n"));
  ASSERT_TRUE(write_file(path("exp.toml"),
                         "version = 1\ntitle = \"a Go service\"\nseed = 3\n"
                         "[[service]]\nname = \"" +
                             service + "\"\ncommand = [\"" + FL_GO_HTTPSERVE + "\", \"-addr\", \"" +
                             address + "\"]\npolicy = \"" + path("svc.toml") +
                             "\"\nready = { tcp = \"" + address +
                             "\", timeout = \"10s\" }\n"
                             "[[probe]]\nname = \"get\"\nhttp = \"http://" +
                             address +
                             "/\"\nevery = \"100ms\"\ntimeout = \"300ms\"\n"
                             "expect = { status = 200, body_contains = "
                             "\"hello\" }\n"
                             "[steady_state]\nget = { success_rate = 0.9, "
                             "window = \"1s\" }\n"
                             "[[step]]\nat = \"1s\"\nenable = [\"" +
                             service +
                             ":nofd\"]\n"
                             "[[step]]\nat = \"2.5s\"\ndisable = [\"" +
                             service + ":nofd\"]\n"));
  RunOptions ro;
  ro.timeout = 90s;
  const RunResult r = faultline({"experiment", "run", path("exp.toml"), "--json",
                                 path("journal.json"), "--logs", path("logs")},
                                ro);
  const auto text = read_file(path("journal.json"));
  ASSERT_TRUE(text) << r.out << r.err;
  const nlohmann::json j = nlohmann::json::parse(*text);
  ASSERT_EQ(j["faults"].size(), 1u) << r.out << r.err;
  EXPECT_GT(j["faults"][0]["injected"].get<int>(), 0) << "the step's fault never bit";
  int failed = 0, ok_after = 0;
  bool seen_failure = false;
  for (const auto& result : j["probes"][0]["results"]) {
    if (!result["ok"].get<bool>()) {
      ++failed;
      seen_failure = true;
    } else if (seen_failure) {
      ++ok_after;
    }
  }
  EXPECT_GT(failed, 0) << "the probe never saw the fault: " << r.out;
  EXPECT_GT(ok_after, 0) << "the service never recovered: " << r.out;
}
#endif

}  // namespace
}  // namespace fltest
