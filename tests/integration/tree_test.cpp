// Process trees: every process a `faultline run` starts (pipelines, exec, fork, posix_spawn,
// daemons) joins its session and shares its counters, and `process` picks members by name,
// including names they give themselves after fork. Also the two documented ways out: a
// program started with a cleared environment, and set-id programs, which `faultline run`
// refuses unless running them would not be a secure exec.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "targeting_util.h"

namespace fltest {
namespace {

class TreeTest : public TargetingTest {};

// ---- a shell pipeline -----------------------------------------------------------------------

// tee and cat both write to out* files; only cat is selected.
TEST_F(TreeTest, ShellPipelineMembersJoinAndOneIsSelected) {
  const std::string script =
      "seq 1 300 | tee " + path("out1") + " | cat > " + path("out2") + "; echo pipeline $?";
  const std::vector<std::string> argv{kShell, "-c", script};
  const RunResult r = run_under(header() +
                                    "[[fault]]\nname = \"cat-out\"\ncalls = [\"write\"]\n"
                                    "path = \"*/out*\"\nprocess = \"cat\"\n"
                                    "error = \"EIO\"\n",
                                argv);
  const std::string why = describe(argv, r);
  EXPECT_EQ(r.out, "pipeline 1\n") << why;
  EXPECT_NE(r.err.find("cat: write error: Input/output error"), std::string::npos) << why;
  EXPECT_EQ(split_lines(read_file(path("out1")).value_or("")).size(), 300u) << "tee is spared";
  EXPECT_EQ(file_size(path("out2")).value_or(99), 0u);
  const auto lines = log_lines_with(events(), {"\"fault\":\"cat-out\""});
  ASSERT_EQ(lines.size(), 1u) << events();
  EXPECT_NE(lines[0].find("\"process\":\"cat\""), std::string::npos) << lines[0];
}

// ---- a python3 subprocess tree --------------------------------------------------------------

// Each member writes five records to its own rec-<tag> file and prints what happened.
constexpr const char* kChildPy = R"PY(
import os, sys
d, tag = sys.argv[1], sys.argv[2]
results = []
for i in range(5):
    fd = os.open(os.path.join(d, "rec-" + tag), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.write(fd, b"%d\n" % i)
        results.append("ok")
    except OSError as e:
        results.append("e%d" % e.errno)
    os.close(fd)
print(tag, " ".join(results), flush=True)
)PY";

// One after the other, so that the shared counter's order is the members' order: exec through
// a name (python's subprocess: vfork + exec), posix_spawn (clone with CLONE_VM|CLONE_VFORK +
// exec), a fork that renames itself like a prefork worker, and the parent itself.
constexpr const char* kTreePy = R"PY(
import ctypes, os, subprocess, sys
d = sys.argv[1]
child = os.path.join(d, "child.py")
subprocess.run([os.path.join(d, "worker-a"), child, d, "worker-a"], check=True)
subprocess.run([os.path.join(d, "helper"), child, d, "helper"], check=True)
pid = os.posix_spawn(os.path.join(d, "worker-a"), ["worker-a", child, d, "worker-s"], os.environ)
os.waitpid(pid, 0)
pid = os.fork()
if pid == 0:
    ctypes.CDLL(None).prctl(15, b"worker-f", 0, 0, 0)
    sys.argv = [child, d, "worker-f"]
    exec(open(child).read())
    os._exit(0)
os.waitpid(pid, 0)
sys.argv = [child, d, "parent"]
exec(open(child).read())
)PY";

TEST_F(TreeTest, PythonSubprocessTreeSharesCounters) {
  ASSERT_TRUE(write_file(path("child.py"), kChildPy));
  ASSERT_TRUE(write_file(path("tree.py"), kTreePy));
  // A program's comm is the name it was exec'd as: worker-a and helper are python3.
  ASSERT_EQ(symlink(kPython, path("worker-a").c_str()), 0);
  ASSERT_EQ(symlink(kPython, path("helper").c_str()), 0);
  const std::vector<std::string> argv{kPython, path("tree.py"), dir_.path()};
  const RunResult r = run_under(header() +
                                    "[[fault]]\nname = \"workers\"\ncalls = [\"write\"]\n"
                                    "path = \"*/rec-*\"\nprocess = \"worker*\"\n"
                                    "error = \"EIO\"\nafter = 2\nevery = 3\n",
                                argv);
  const std::string why = describe(argv, r);
  ASSERT_EQ(r.status(), 0) << why;
  // One counter for the whole tree: the workers' 15 writes are n = 0..14 in order, and
  // n = 2, 5, 8, 11, 14 fail wherever they happen to fall.
  EXPECT_EQ(r.out,
            "worker-a ok ok e5 ok ok\n"
            "helper ok ok ok ok ok\n"
            "worker-s e5 ok ok e5 ok\n"
            "worker-f ok e5 ok ok e5\n"
            "parent ok ok ok ok ok\n")
      << why;
  EXPECT_EQ(counter("workers", "matched").value_or(0), 15u) << summary_;
  EXPECT_EQ(counter("workers", "injected").value_or(0), 5u) << summary_;
  EXPECT_EQ(log_lines_with(events(), {"\"process\":\"worker-f\""}).size(), 2u) << events();
}

// ---- a prefork server of ours ---------------------------------------------------------------

class PreforkTest : public TreeTest {
 protected:
  // One request on a fresh connection; the answer line, or "" on failure.
  static std::string request(int port, const std::string& line) {
    const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return "";
    timeval timeout{10, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<std::uint16_t>(port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    std::string answer;
    if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0) {
      const std::string text = line + "\n";
      if (write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size())) {
        char c;
        while (answer.size() < 256 && read(fd, &c, 1) == 1 && c != '\n') answer += c;
      }
    }
    close(fd);
    return answer;
  }
};

// The workers name themselves after fork; the fault selects them, not the parent, and its
// counter is shared: requests 0, 4 and 8 fail, whichever worker takes them.
TEST_F(PreforkTest, WorkersShareOneCounter) {
  const std::string name = session("prefork");
  ASSERT_TRUE(write_file(path("policy.toml"),
                         header() + "[[fault]]\nname = \"store\"\ncalls = [\"write\"]\n"
                                    "path = \"*.log\"\nprocess = \"worker-*\"\nerror = \"EIO\"\n"
                                    "every = 4\n"));
  Background server;
  ASSERT_TRUE(server.start({cli(), "run", "-q", "-s", name, "-p", path("policy.toml"), "--",
                            FL_PREFORK, dir_.path(), "3"}));
  const auto port_line = server.read_line(15s);
  ASSERT_TRUE(port_line && port_line->rfind("port ", 0) == 0) << server.err();
  const int port = std::stoi(port_line->substr(5));
  ASSERT_EQ(server.read_line(15s).value_or(""), "ready") << server.err();

  std::vector<std::string> answers;
  for (int i = 0; i < 12; ++i) answers.push_back(request(port, "PUT key" + std::to_string(i)));
  for (int i = 0; i < 12; ++i) {
    SCOPED_TRACE("request " + std::to_string(i));
    const std::string expected = i % 4 == 0 ? "ERR 5 " : "OK ";
    EXPECT_EQ(answers[i].rfind(expected, 0), 0u) << answers[i];
  }
  // Live, from the controller: one set of counters for the whole tree.
  const RunResult status = faultline({"status", name, "--json"});
  EXPECT_EQ(status.status(), 0) << status.err;
  EXPECT_EQ(fault_counter(status.out, "store", "matched").value_or(0), 12u) << status.out;
  EXPECT_EQ(fault_counter(status.out, "store", "injected").value_or(0), 3u) << status.out;

  const RunResult end = server.stop(10s);
  EXPECT_EQ(end.status(), 0) << end.err;
  // The parent wrote parent.log, matching path but not process: never faulted.
  EXPECT_EQ(read_file(path("parent.log")).value_or(""), "started\nstopped\n");
  std::string stored;
  for (int w = 1; w <= 3; ++w)
    stored += read_file(path("store-" + std::to_string(w) + ".log")).value_or("");
  EXPECT_EQ(split_lines(stored).size(), 9u) << stored;
  for (const auto& line : log_lines_with(events(), {"\"fault\":\"store\""}))
    EXPECT_NE(line.find("\"process\":\"worker-"), std::string::npos) << line;
}

// ---- daemons ---------------------------------------------------------------------------------

// Double fork, setsid, every fd closed, cwd /: still in the session (the shim needs no fd).
TEST_F(TreeTest, DaemonStaysInTheSession) {
  ASSERT_TRUE(write_file(path("daemon.py"), R"PY(
import os, sys, time
d = sys.argv[1]
result = os.path.join(d, "result")
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        os.chdir("/")
        os.closerange(0, 1024)
        fd = os.open(os.path.join(d, "daemon-data"), os.O_WRONLY | os.O_CREAT, 0o644)
        try:
            os.write(fd, b"payload\n")
            r = b"ok"
        except OSError as e:
            r = b"err %d" % e.errno
        os.close(fd)
        out = os.open(result + ".tmp", os.O_WRONLY | os.O_CREAT, 0o644)
        os.write(out, r)
        os.close(out)
        os.rename(result + ".tmp", result)
        os._exit(0)
    os._exit(0)
for _ in range(300):
    if os.path.exists(result):
        break
    time.sleep(0.05)
print(open(result).read() if os.path.exists(result) else "no result", flush=True)
)PY"));
  const std::vector<std::string> argv{kPython, path("daemon.py"), dir_.path()};
  const RunResult r = run_under(header() +
                                    "[[fault]]\nname = \"d\"\ncalls = [\"write\"]\n"
                                    "path = \"*/daemon-data\"\nerror = \"EIO\"\n",
                                argv);
  const std::string why = describe(argv, r);
  ASSERT_EQ(r.status(), 0) << why;
  EXPECT_EQ(r.out, "err 5\n") << why;
}

// The documented limit: a child started with an empty environment loses LD_PRELOAD and
// FAULTLINE_SESSION, so it runs outside the session, unfaulted.
TEST_F(TreeTest, AClearedEnvironmentLeavesTheSession) {
  const std::string script = "env -i /bin/sh -c 'echo cleared > " + path("out-cleared") +
                             "'; echo kept > " + path("out-kept") + " || echo kept failed";
  const std::vector<std::string> argv{kShell, "-c", script};
  const RunResult r = run_under(header() +
                                    "[[fault]]\nname = \"w\"\ncalls = [\"write\"]\n"
                                    "path = \"*/out-*\"\nerror = \"EIO\"\n",
                                argv);
  const std::string why = describe(argv, r);
  EXPECT_EQ(read_file(path("out-cleared")).value_or(""), "cleared\n") << why;
  EXPECT_EQ(read_file(path("out-kept")).value_or("<missing>"), "") << why;
  EXPECT_EQ(r.out, "kept failed\n") << why;
}

// ---- set-id programs --------------------------------------------------------------------------

class SetIdTest : public TreeTest {
 protected:
  void SetUp() override {
    TreeTest::SetUp();
    if (geteuid() != 0) GTEST_SKIP() << "needs root to make a set-id file owned by another user";
    // A private copy of a dynamically linked program that creates the file it is given.
    ASSERT_EQ(run({"/bin/cp", "/usr/bin/touch", path("prog")}).status(), 0);
  }
  RunResult run_prog(const std::string& marker) {
    return run_under(header() +
                         "[[fault]]\nname = \"o\"\ncalls = [\"@open\"]\n"
                         "path = \"*/marker*\"\nerror = \"EACCES\"\n",
                     {path("prog"), marker});
  }
};

TEST_F(SetIdTest, SetuidProgramOfAnotherUserIsRefused) {
  ASSERT_EQ(chown(path("prog").c_str(), 65534, 65534), 0);
  ASSERT_EQ(chmod(path("prog").c_str(), 04755), 0);
  const RunResult r = run_prog(path("marker"));
  EXPECT_EQ(r.status(), 2) << r.err;
  EXPECT_NE(r.err.find("is set-user-ID: the loader runs it in secure-execution mode"),
            std::string::npos)
      << r.err;
  EXPECT_FALSE(file_exists(path("marker"))) << "the program ran unfaulted";
}

TEST_F(SetIdTest, SetgidProgramOfAnotherGroupIsRefused) {
  ASSERT_EQ(chown(path("prog").c_str(), 0, 65534), 0);
  ASSERT_EQ(chmod(path("prog").c_str(), 02755), 0);
  const RunResult r = run_prog(path("marker"));
  EXPECT_EQ(r.status(), 2) << r.err;
  EXPECT_NE(r.err.find("is set-group-ID"), std::string::npos) << r.err;
  EXPECT_FALSE(file_exists(path("marker")));
}

// Root running a set-user-ID-root program changes no id: not a secure exec, so the preload
// reaches it, `faultline run` allows it, and the fault fires.
TEST_F(SetIdTest, SetuidRootProgramRunByRootIsFaulted) {
  ASSERT_EQ(chmod(path("prog").c_str(), 04755), 0);
  const RunResult r = run_prog(path("marker"));
  EXPECT_EQ(r.status(), 1) << r.err;
  EXPECT_NE(r.err.find("Permission denied"), std::string::npos) << r.err;
  EXPECT_FALSE(file_exists(path("marker")));
  EXPECT_EQ(counter("o", "injected").value_or(0), 1u) << summary_;
}

}  // namespace
}  // namespace fltest
