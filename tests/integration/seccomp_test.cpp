// The seccomp backend (controller/seccomp/): programs no preload reaches — Go programs, which make
// their system calls themselves, and a statically linked C program — faulted through seccomp
// user notification. Every assertion is on what the program itself printed or how it ended:
// Go's own error texts, the C library's strerror, the exit status.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "seccomp_fixture.h"

namespace fltest {
namespace {

const std::string kStatic = FL_STATIC_IO;
#ifdef FL_GO_HTTPCHECK
const std::string kGoHttp = FL_GO_HTTPCHECK;
const std::string kGoFile = FL_GO_FILECHECK;
const std::string kGoDns = FL_GO_DNSCHECK;
const std::string kGoLoop = FL_GO_WRITELOOP;
#define SKIP_WITHOUT_GO() (void)0
#else
const std::string kGoHttp, kGoFile, kGoDns, kGoLoop;
#define SKIP_WITHOUT_GO() GTEST_SKIP() << "go is not installed: the Go programs were not built"
#endif

// Binds `fd` to 127.0.0.1 on a port the kernel picks: the port, or 0.
int bind_loopback(int fd) {
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof sa;
  if (bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0 ||
      getsockname(fd, reinterpret_cast<sockaddr*>(&sa), &len) != 0)
    return 0;
  return ntohs(sa.sin_port);
}

// A listening TCP socket on 127.0.0.1 (the kernel completes connects into its backlog).
class Listener {
 public:
  Listener() {
    fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    const int port = bind_loopback(fd_);
    if (port != 0 && listen(fd_, 16) == 0) port_ = port;
  }
  ~Listener() { close(fd_); }
  int port() const { return port_; }

 private:
  int fd_ = -1;
  int port_ = 0;
};

// A DNS server on 127.0.0.1 (UDP) that answers every A query with kDnsAnswer and any other
// query with no records: just enough of RFC 1035 for Go's resolver.
constexpr unsigned char kDnsAnswer[4] = {10, 1, 2, 3};
class DnsServer {
 public:
  DnsServer() {
    fd_ = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    const timeval tick{0, 100'000};  // so that the thread sees stop_ in time
    setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tick, sizeof tick);
    port_ = bind_loopback(fd_);
    thread_ = std::thread([this] { serve(); });
  }
  ~DnsServer() {
    stop_ = true;
    thread_.join();
    close(fd_);
  }
  int port() const { return port_; }
  int answered() const { return answered_; }

 private:
  void serve() {
    for (int round = 0; round < 1200 && !stop_; ++round) {  // at most 2 minutes
      unsigned char q[512];
      sockaddr_in peer{};
      socklen_t peer_len = sizeof peer;
      const ssize_t n =
          recvfrom(fd_, q, sizeof q, 0, reinterpret_cast<sockaddr*>(&peer), &peer_len);
      if (n < 12) continue;
      // The question: its name (labels up to a zero byte), then type and class.
      std::size_t end = 12;
      while (end < static_cast<std::size_t>(n) && q[end] != 0) end += q[end] + 1;
      end += 5;
      if (end > static_cast<std::size_t>(n)) continue;
      const bool type_a = q[end - 4] == 0 && q[end - 3] == 1;
      std::vector<unsigned char> r(q, q + end);
      r[2] = 0x81;  // a response, recursion desired
      r[3] = 0x80;  // recursion available, no error
      r[4] = 0, r[5] = 1;
      r[6] = 0, r[7] = type_a ? 1 : 0;
      r[8] = r[9] = r[10] = r[11] = 0;  // no authority, no additional (EDNS dropped)
      if (type_a) {
        const unsigned char rr[] = {0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4};
        r.insert(r.end(), rr, rr + sizeof rr);
        r.insert(r.end(), kDnsAnswer, kDnsAnswer + 4);
      }
      if (sendto(fd_, r.data(), r.size(), 0, reinterpret_cast<sockaddr*>(&peer), peer_len) > 0)
        ++answered_;
    }
  }
  int fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<int> answered_{0};
  std::thread thread_;
};

class SeccompTest : public SeccompFixture {};

// ---- Go -------------------------------------------------------------------------------------

TEST_F(SeccompTest, GoHttpConnectRefusedIsTheGoClientsOwnError) {
  SKIP_WITHOUT_GO();
  const RunResult plain = run_under("version = 1\n", {kGoHttp});
  EXPECT_EQ(plain.status(), 0) << plain.out << plain.err;
  EXPECT_EQ(plain.out, "ok: hello\n") << plain.err;

  const RunResult r = run_under(R"(version = 1
[[fault]]
name = "refused"
calls = ["connect"]
error = "ECONNREFUSED"
)",
                                {kGoHttp});
  EXPECT_EQ(r.status(), 1) << r.out << r.err;
  EXPECT_NE(r.out.find("connect: connection refused"), std::string::npos) << r.out << r.err;
  EXPECT_NE(r.err.find("seccomp backend"), std::string::npos) << r.err;
}

TEST_F(SeccompTest, GoHttpPartitionByAddrHitsOnlyThatPeer) {
  SKIP_WITHOUT_GO();
  const std::string fault = R"(version = 1
[[fault]]
name = "cut"
calls = ["connect"]
error = "ENETUNREACH"
addr = "ADDR"
)";
  auto with_addr = [&](const std::string& addr) {
    std::string policy = fault;
    policy.replace(policy.find("ADDR"), 4, addr);
    return run_under(policy, {kGoHttp});
  };
  const RunResult other = with_addr("10.0.0.1:*");
  EXPECT_EQ(other.status(), 0) << other.out << other.err;
  EXPECT_EQ(other.out, "ok: hello\n");
  const RunResult cut = with_addr("127.0.0.0/8");
  EXPECT_EQ(cut.status(), 1) << cut.out << cut.err;
  EXPECT_NE(cut.out.find("network is unreachable"), std::string::npos) << cut.out << cut.err;
}

TEST_F(SeccompTest, GoHttpDelayedConnectFiresTheClientsOwnTimeout) {
  SKIP_WITHOUT_GO();
  const auto start = std::chrono::steady_clock::now();
  const RunResult r = run_under(R"(version = 1
[[fault]]
name = "slow"
calls = ["connect"]
delay = "60s"
)",
                                {kGoHttp, "-timeout", "500ms"});
  const auto took = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(r.status(), 1) << r.out << r.err;
  EXPECT_NE(r.out.find("Client.Timeout exceeded"), std::string::npos) << r.out << r.err;
  // The program ended on its own timeout, not after the held call was answered.
  EXPECT_LT(took, 20s);
}

TEST_F(SeccompTest, GoHttpConnectLatencyFiresTheClientsOwnTimeout) {
  SKIP_WITHOUT_GO();
  const std::string policy = R"(version = 1
[[fault]]
name = "far"
calls = ["connect"]
latency = "LATENCY"
)";
  auto with = [&](const std::string& latency) {
    std::string p = policy;
    p.replace(p.find("LATENCY"), 7, latency);
    return run_under(p, {kGoHttp, "-timeout", "1s"});
  };
  const RunResult slow = with("3s");
  EXPECT_EQ(slow.status(), 1) << slow.out << slow.err;
  EXPECT_NE(slow.out.find("Client.Timeout exceeded"), std::string::npos) << slow.out;
  const RunResult fast = with("100ms");  // only slows it
  EXPECT_EQ(fast.status(), 0) << fast.out << fast.err;
  EXPECT_EQ(fast.out, "ok: hello\n");
}

// Go's scheduler moves goroutines between threads and preempts them with signals: the same
// seed still fails the same requests, counted in the order the program made them.
TEST_F(SeccompTest, GoHttpSeedReplaysTheSameRequests) {
  SKIP_WITHOUT_GO();
  const std::string policy = R"(version = 1
seed = 3
[[fault]]
name = "coin"
calls = ["connect"]
probability = 0.5
error = "ECONNREFUSED"
)";
  auto outcomes = [&]() {
    const RunResult r = run_under(policy, {kGoHttp, "-n", "60"});
    std::string pattern;
    for (const std::string& line : split_lines(r.out))
      pattern += line.starts_with("ok") ? 'o' : 'x';
    return pattern;
  };
  const std::string a = outcomes();
  EXPECT_EQ(a.size(), 60u);
  EXPECT_GT(std::count(a.begin(), a.end(), 'x'), 10);
  EXPECT_GT(std::count(a.begin(), a.end(), 'o'), 10);
  EXPECT_EQ(outcomes(), a);
}

TEST_F(SeccompTest, GoFileSyncEioIsGosInputOutputError) {
  SKIP_WITHOUT_GO();
  const RunResult r = run_under(R"(version = 1
[[fault]]
name = "eio"
calls = ["@fsync"]
path = "*/data.bin"
error = "EIO"
)",
                                {kGoFile, path("data.bin")});
  EXPECT_EQ(r.status(), 0) << r.out << r.err;
  EXPECT_EQ(r.out, "write: ok\nsync: sync " + path("data.bin") + ": input/output error\n") << r.err;
}

TEST_F(SeccompTest, GoFileWriteEnospcOnlyOnTheFileNamed) {
  SKIP_WITHOUT_GO();
  const std::string policy = R"(version = 1
[[fault]]
name = "full"
calls = ["write"]
path = "*/full.bin"
error = "ENOSPC"
)";
  const RunResult full = run_under(policy, {kGoFile, path("full.bin")});
  EXPECT_EQ(full.out, "write: write " + path("full.bin") + ": no space left on device\nsync: ok\n")
      << full.err;
  const RunResult other = run_under(policy, {kGoFile, path("other.bin")});
  EXPECT_EQ(other.out, "write: ok\nsync: ok\n") << other.err;
}

// @dns of a program with its own resolver is @net on the DNS server's address: Go's resolver
// (PreferGo) sends its queries on a UDP socket it connects to the server.
class SeccompDnsTest : public SeccompTest {
 protected:
  RunResult resolve(const std::string& fault, const std::vector<std::string>& flags = {}) {
    std::vector<std::string> command = {kGoDns, "-server", server_};
    command.insert(command.end(), flags.begin(), flags.end());
    command.push_back("db.faultline.test.");
    return run_under("version = 1\n" + fault, command);
  }
  std::string at(const std::string& addr, const std::string& action) {
    return "[[fault]]\nname = \"dns\"\ncalls = [\"@net\"]\naddr = \"" + addr + "\"\n" + action +
           "\n";
  }
  DnsServer dns_;
  const std::string server_ = "127.0.0.1:" + std::to_string(dns_.port());
};

TEST_F(SeccompDnsTest, UnfaultedTheGoResolverGetsTheAddress) {
  SKIP_WITHOUT_GO();
  ASSERT_NE(dns_.port(), 0);
  const RunResult r = resolve(at("10.9.9.9:53", "error = \"ECONNREFUSED\""));
  EXPECT_EQ(r.status(), 0) << r.out << r.err;
  EXPECT_EQ(r.out, "ok: 10.1.2.3\n") << r.err;
  EXPECT_GE(dns_.answered(), 1);
}

TEST_F(SeccompDnsTest, RefusedServerIsTheGoResolversOwnError) {
  SKIP_WITHOUT_GO();
  ASSERT_NE(dns_.port(), 0);
  const RunResult r = resolve(at(server_, "error = \"ECONNREFUSED\""));
  EXPECT_EQ(r.status(), 1) << r.out << r.err;
  EXPECT_TRUE(r.out.starts_with("error: lookup db.faultline.test")) << r.out << r.err;
  EXPECT_NE(r.out.find("connection refused"), std::string::npos) << r.out << r.err;
  EXPECT_EQ(dns_.answered(), 0);
}

TEST_F(SeccompDnsTest, DelayPastTheResolversDeadlineIsItsOwnTimeout) {
  SKIP_WITHOUT_GO();
  ASSERT_NE(dns_.port(), 0);
  const auto start = std::chrono::steady_clock::now();
  const RunResult r = resolve(at(server_, "delay = \"60s\""), {"-timeout", "700ms"});
  const auto took = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(r.status(), 1) << r.out << r.err;
  EXPECT_TRUE(r.out.starts_with("error: lookup db.faultline.test")) << r.out << r.err;
  EXPECT_NE(r.out.find("i/o timeout"), std::string::npos) << r.out << r.err;
  EXPECT_LT(took, 20s);  // it gave up on its own deadline, not when the call was answered
}

// The recipe docs/policy.md gives for a real resolver: any server on port 53. The program asks
// 127.0.0.1:53, where nothing of ours listens; the fault answers before anything is sent.
TEST_F(SeccompDnsTest, AnyServerOnPort53) {
  SKIP_WITHOUT_GO();
  const RunResult r = run_under("version = 1\n" + at("*:53", "error = \"ENETUNREACH\""),
                                {kGoDns, "-server", "127.0.0.1:53", "db.faultline.test."});
  EXPECT_EQ(r.status(), 1) << r.out << r.err;
  EXPECT_NE(r.out.find("network is unreachable"), std::string::npos) << r.out << r.err;
}

// ---- the TTL and panic reach a Go program ----------------------------------------------------

TEST_F(SeccompTest, GoTtlEndsTheInjectedFailures) {
  SKIP_WITHOUT_GO();
  const RunResult r = run_under(R"(version = 1
[safety]
ttl = "3s"
[[fault]]
name = "eio"
calls = ["write"]
path = "*/ttl.dat"
error = "EIO"
)",
                                {kGoLoop, "-n", "60", "-every", "100ms", path("ttl.dat")});
  EXPECT_EQ(r.status(), 0) << r.out << r.err;
  const std::vector<std::string> lines = split_lines(r.out);
  ASSERT_EQ(lines.size(), 60u) << r.out << r.err;
  // Failures first, then only successes: the TTL ended them and nothing brought them back.
  std::size_t first_ok = lines.size();
  for (std::size_t i = 0; i < lines.size(); ++i)
    if (lines[i].ends_with(": ok")) {
      first_ok = i;
      break;
    }
  EXPECT_GE(first_ok, 1u) << r.out;   // about 30 writes fall inside the first 3 s
  EXPECT_LE(first_ok, 50u) << r.out;  // and the TTL did end them
  for (std::size_t i = 0; i < lines.size(); ++i) {
    const std::string prefix = "write " + std::to_string(i) + ": ";
    EXPECT_TRUE(lines[i].starts_with(prefix)) << lines[i];
    if (i < first_ok)
      EXPECT_EQ(lines[i], prefix + "write " + path("ttl.dat") + ": input/output error");
    else
      EXPECT_EQ(lines[i], prefix + "ok");
  }
}

TEST_F(SeccompTest, GoPanicReleasesAHeldWrite) {
  SKIP_WITHOUT_GO();
  const std::string name = session("seccomp-go-panic");
  Background program;
  ASSERT_TRUE(start_live(program, name, R"(version = 1
[[fault]]
name = "hold"
calls = ["write"]
path = "*/held.dat"
delay = "120s"
)",
                         {kGoLoop, "-n", "3", "-every", "10ms", path("held.dat")}));
  // Held: the first write does not come back.
  EXPECT_FALSE(program.read_line(1s).has_value()) << program.err();
  const auto start = std::chrono::steady_clock::now();
  const RunResult panic = faultline({"panic", name});
  EXPECT_EQ(panic.status(), 0) << panic.err;
  EXPECT_EQ(program.read_line(5s).value_or("<nothing>"), "write 0: ok") << program.err();
  EXPECT_LT(std::chrono::steady_clock::now() - start, 5s);  // long before the 120 s hold
  EXPECT_EQ(program.read_line(5s).value_or("<nothing>"), "write 1: ok");
  EXPECT_EQ(program.read_line(5s).value_or("<nothing>"), "write 2: ok");
  EXPECT_EQ(program.stop(10s).status(), 0) << program.err();
}

// ---- a statically linked C program ----------------------------------------------------------

TEST_F(SeccompTest, StaticWriteAndFsyncErrors) {
  const RunResult plain = run_under("version = 1\n", {kStatic, "file", path("a.txt")});
  EXPECT_EQ(plain.out, "write: ok\nfsync: ok\n") << plain.err;
  EXPECT_EQ(read_file(path("a.txt")).value_or(""), "hello\n");

  const RunResult r = run_under(R"(version = 1
[[fault]]
name = "w"
calls = ["write"]
path = "*/a.txt"
error = "EIO"
[[fault]]
name = "s"
calls = ["fsync"]
error = "EROFS"
)",
                                {kStatic, "file", path("a.txt")});
  EXPECT_EQ(r.status(), 0) << r.err;
  // The program's own output to stdout (a pipe) is a write too: only a.txt's was failed.
  EXPECT_EQ(r.out, "write: Input/output error\nfsync: Read-only file system\n") << r.err;
  EXPECT_EQ(read_file(path("a.txt")).value_or("?"), "");
}

TEST_F(SeccompTest, ProcessThreadAndSizeSelectorsSeeTheProgram) {
  auto with = [&](const std::string& selector) {
    return run_under(
               "version = 1\n[[fault]]\nname = \"s\"\ncalls = [\"write\"]\npath = "
               "\"*/sel.txt\"\nerror = \"EIO\"\n" +
                   selector + "\n",
               {kStatic, "file", path("sel.txt")})
        .out;
  };
  const std::string failed = "write: Input/output error\nfsync: ok\n";
  const std::string passed = "write: ok\nfsync: ok\n";
  EXPECT_EQ(with("process = \"fl_static_*\""), failed);
  EXPECT_EQ(with("process = \"someone-else\""), passed);
  EXPECT_EQ(with("thread = \"fl_static_io\""), failed);
  EXPECT_EQ(with("thread = \"worker-*\""), passed);
  EXPECT_EQ(with("size = 6"), failed);  // "hello\n"
  EXPECT_EQ(with("size = \"7..\""), passed);
}

TEST_F(SeccompTest, StaticConnectRefusedThenReal) {
  Listener server;
  ASSERT_NE(server.port(), 0);
  const std::string port = std::to_string(server.port());
  const RunResult plain = run_under("version = 1\n", {kStatic, "connect", port});
  EXPECT_EQ(plain.out, "connect: ok\n") << plain.err;
  const RunResult r = run_under(R"(version = 1
[[fault]]
name = "refused"
calls = ["@net"]
addr = "127.0.0.1:*"
error = "ECONNREFUSED"
)",
                                {kStatic, "connect", port});
  EXPECT_EQ(r.out, "connect: Connection refused\n") << r.err;
}

TEST_F(SeccompTest, StaticCrashBeforeFsyncEndsWithTheSignal) {
  const RunResult r = run_under(R"(version = 1
[[fault]]
name = "boom"
calls = ["fsync"]
crash = "SIGABRT"
)",
                                {kStatic, "file", path("c.txt")});
  EXPECT_EQ(r.status(), 128 + SIGABRT) << r.out << r.err;
  EXPECT_EQ(r.out, "write: ok\n") << r.err;  // it never saw fsync return
}

TEST_F(SeccompTest, StaticDelayHoldsOnlyTheCall) {
  const auto start = std::chrono::steady_clock::now();
  const RunResult r = run_under(R"(version = 1
[[fault]]
name = "slow"
calls = ["fsync"]
delay = "700ms"
)",
                                {kStatic, "file", path("d.txt")});
  const auto took = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(r.out, "write: ok\nfsync: ok\n") << r.err;
  EXPECT_GE(took, 650ms);
  EXPECT_LT(took, 10s);
}

TEST_F(SeccompTest, SeedReplaysTheSameCalls) {
  const std::string policy = R"(version = 1
seed = 7
[[fault]]
name = "coin"
calls = ["write"]
path = "*/coin.bin"
probability = 0.5
error = "EIO"
)";
  const RunResult a = run_under(policy, {kStatic, "writes", path("coin.bin"), "60"});
  const RunResult b = run_under(policy, {kStatic, "writes", path("coin.bin"), "60"});
  EXPECT_EQ(a.status(), 0) << a.err;
  EXPECT_EQ(count_substr(a.out, "\n"), 60u) << a.out;
  const std::size_t failed = count_substr(a.out, "Input/output error");
  EXPECT_GT(failed, 10u) << a.out;
  EXPECT_LT(failed, 50u) << a.out;
  EXPECT_EQ(a.out, b.out);
  const RunResult other =
      run_under(policy, {kStatic, "writes", path("coin.bin"), "60"}, {"--seed", "8"});
  EXPECT_NE(a.out, other.out);
}

TEST_F(SeccompTest, LiveEnableDisablePanicReachTheProgram) {
  const std::string name = session("seccomp-live");
  Background program;
  ASSERT_TRUE(start_live(program, name, R"(version = 1
[[fault]]
name = "f"
calls = ["fsync"]
error = "EIO"
enabled = false
)",
                         {kStatic, "loop", path("live.dat")}));
  auto next = [&] { return next_step(program, "fsync"); };
  EXPECT_EQ(next(), "ok") << program.err();
  control({"enable", name, "f"});
  EXPECT_EQ(next(), "Input/output error") << program.err();
  control({"panic", name});
  EXPECT_EQ(next(), "ok");
  control({"resume", name});
  EXPECT_EQ(next(), "Input/output error");
  control({"disable", name, "f"});
  EXPECT_EQ(next(), "ok");
  control({"enable", name, "f"});
  control({"set", name, "f", "error=ENOSPC"});
  EXPECT_EQ(next(), "No space left on device");

  const RunResult status = faultline({"status", name, "--json"});
  EXPECT_EQ(status.status(), 0) << status.err;
  EXPECT_EQ(status_json_injected(status.out, "f").value_or(0), 3u) << status.out;
  // The event ring the supervisor filled names the program, not faultline.
  const RunResult events = faultline({"events", name, "--json"});
  EXPECT_EQ(events.status(), 0) << events.err;
  EXPECT_EQ(count_substr(events.out, "\"call\":\"fsync\""), 3u) << events.out;
  EXPECT_EQ(count_substr(events.out, "\"process\":\"fl_static_io\""), 3u) << events.out;

  // The filter was fixed at exec: a family it does not trap is refused, not left silent.
  ASSERT_TRUE(write_file(path("net.toml"), R"([[fault]]
name = "n"
calls = ["connect"]
error = "ECONNREFUSED"
)"));
  const RunResult add = faultline({"add", name, "-p", path("net.toml")});
  EXPECT_EQ(add.status(), 2) << add.out << add.err;
  EXPECT_NE(add.err.find("does not trap"), std::string::npos) << add.err;

  // Nor can a live `set` give a fault what the backend cannot deliver; nothing is published.
  const RunResult set = faultline({"set", name, "f", "stack=main"});
  EXPECT_EQ(set.status(), 2) << set.out << set.err;
  EXPECT_NE(set.err.find("cannot unwind"), std::string::npos) << set.err;
  EXPECT_EQ(next(), "No space left on device");

  program.close_stdin();
  const RunResult end = program.stop(10s);
  EXPECT_EQ(end.status(), 0) << end.err;
}

// A held call (a delay) is released at once by panic and by disabling its fault: it then runs
// unfaulted, and the program goes on.
TEST_F(SeccompTest, PanicAndDisableReleaseAHeldCall) {
  const std::string name = session("seccomp-hold");
  Background program;
  ASSERT_TRUE(start_live(program, name, R"(version = 1
[[fault]]
name = "hold"
calls = ["fsync"]
delay = "60s"
error = "EIO"
)",
                         {kStatic, "loop", path("hold.dat")}));
  // Held: nothing comes back for a while.
  ASSERT_TRUE(program.write_stdin("go\n"));
  EXPECT_FALSE(program.read_line(700ms).has_value());
  auto start = std::chrono::steady_clock::now();
  control({"panic", name});
  EXPECT_EQ(program.read_line(10s).value_or("<nothing>"), "fsync 0: ok") << program.err();
  EXPECT_LT(std::chrono::steady_clock::now() - start, 5s);

  control({"resume", name});
  ASSERT_TRUE(program.write_stdin("go\n"));
  EXPECT_FALSE(program.read_line(700ms).has_value());
  start = std::chrono::steady_clock::now();
  control({"disable", name, "hold"});
  EXPECT_EQ(program.read_line(10s).value_or("<nothing>"), "fsync 1: ok") << program.err();
  EXPECT_LT(std::chrono::steady_clock::now() - start, 5s);

  program.close_stdin();
  EXPECT_EQ(program.stop(10s).status(), 0);
}

// A process of the tree that outlives CMD still carries the filter: its trapped calls must
// keep working (unfaulted) once `faultline run` has returned, never fail with ENOSYS.
TEST_F(SeccompTest, ProcessesThatOutliveTheRunKeepWorking) {
  const std::string late = path("late.txt");
  const RunResult r = run_under(
      R"(version = 1
[[fault]]
name = "w"
calls = ["write"]
path = "*/never-written"
error = "EIO"
)",
      // Its own session: the harness ends what is left of the run's process group.
      {"/bin/sh", "-c",
       "/usr/bin/setsid -f /bin/sh -c 'sleep 0.5; echo late > " + late + "; echo done >> " + late +
           "' >/dev/null 2>&1"},
      {"--backend", "seccomp"});
  EXPECT_EQ(r.status(), 0) << r.err;
  EXPECT_NE(r.err.find("still run under the seccomp filter"), std::string::npos) << r.err;
  for (int i = 0; i < 100 && read_file(late).value_or("").find("done") == std::string::npos; ++i)
    usleep(50'000);
  EXPECT_EQ(read_file(late).value_or("<none>"), "late\ndone\n");
}

TEST_F(SeccompTest, EventsNameTheProgram) {
  const RunResult r = run_under(R"(version = 1
[log]
path = "LOG"
[[fault]]
name = "s"
calls = ["fsync"]
error = "EIO"
)",
                                {kStatic, "file", path("e.txt")}, {"--log", path("events.jsonl")});
  EXPECT_EQ(r.out, "write: ok\nfsync: Input/output error\n") << r.err;
  const std::string log = read_file(path("events.jsonl")).value_or("");
  EXPECT_EQ(count_substr(log, "\n"), 1u) << log;
  EXPECT_NE(log.find("\"process\":\"fl_static_io\""), std::string::npos) << log;
  EXPECT_NE(log.find("\"path\":\"" + path("e.txt") + "\""), std::string::npos) << log;
  EXPECT_NE(log.find("\"call\":\"fsync\""), std::string::npos) << log;
}

// ---- what the backend refuses -------------------------------------------------------------

TEST_F(SeccompTest, RefusesWhatItCannotReach) {
  struct Case {
    const char* fault;
    const char* says;
  };
  const Case cases[] = {
      {"calls = [\"@memory\"]\nerror = \"ENOMEM\"", "@memory cannot be reached"},
      {"calls = [\"@dns\"]\nerror = \"EAI_AGAIN\"", "addr = \"*:53\""},
      {"calls = [\"write\"]\nquota = \"1MiB\"", "cannot deliver `quota`"},
      {"calls = [\"fsync\"]\ncrash = \"SIGABRT\"\nwhen = \"after\"", "when = \"before\""},
      {"calls = [\"fwrite\"]\nerror = \"EIO\"", "libc functions"},
      {"calls = [\"write\"]\nerror = \"EIO\"\n[durability]\npath = \"/tmp/fl-nowhere/*\"",
       "[durability] needs the preload backend"},
  };
  for (const Case& c : cases) {
    const RunResult r =
        run_under(std::string("version = 1\n[[fault]]\nname = \"x\"\n") + c.fault + "\n",
                  {kStatic, "file", path("r.txt")});
    EXPECT_EQ(r.status(), 2) << c.fault << "\n" << r.out << r.err;
    EXPECT_NE(r.err.find(c.says), std::string::npos) << c.fault << "\n" << r.err;
    EXPECT_EQ(r.out, "") << "the program must not run unfaulted";
  }
}

// Explore has the preload backend only (its stack sites need the preload; docs/limits.md):
// a static or Go program is refused, with a message that says where it can be faulted.
// Experiments and the C++ API run it under the seccomp backend (api_seccomp_test.cpp).
TEST_F(SeccompTest, ExploreSendsAStaticProgramToRun) {
  const RunResult x =
      faultline({"explore", "--state", path("explore"), "--", kStatic, "file", path("x.txt")});
  EXPECT_EQ(x.status(), 2) << x.out << x.err;
  EXPECT_NE(x.err.find("`faultline explore` has the preload backend only"), std::string::npos)
      << x.err;
  EXPECT_NE(x.err.find("Run it with `faultline run`"), std::string::npos) << x.err;
  EXPECT_FALSE(file_exists(path("x.txt"))) << "the program ran";
}

// An experiment's static service with [target] backend = "preload" is refused as `run` refuses
// it; by default (`auto`) it runs under the seccomp backend.
TEST_F(SeccompTest, ExperimentBackendFollowsThePolicy) {
  ASSERT_TRUE(write_file(path("preload.toml"), "version = 1\n[target]\nbackend = \"preload\"\n"));
  const auto experiment = [&](const std::string& policy_line) {
    return R"(version = 1
title = "a static service"
[[service]]
name = "static"
command = [")" +
           kStatic + R"(", "file", ")" + path("e.dat") + R"("]
)" + policy_line +
           R"(
[[probe]]
name = "p"
command = ["true"]
[steady_state]
p = { success_rate = 0.5, window = "1s" }
)";
  };
  ASSERT_TRUE(write_file(path("e.toml"), experiment("policy = \"" + path("preload.toml") + "\"")));
  const RunResult e = faultline({"experiment", "run", path("e.toml")});
  EXPECT_EQ(e.status(), 2) << e.out << e.err;
  EXPECT_NE((e.out + e.err).find("statically linked"), std::string::npos) << e.out << e.err;
  EXPECT_FALSE(file_exists(path("e.dat"))) << "the service ran";
  ASSERT_TRUE(write_file(path("e.toml"), experiment("")));
  const RunResult ok = faultline({"experiment", "run", path("e.toml")});
  EXPECT_TRUE(file_exists(path("e.dat"))) << "the service did not run: " << ok.out << ok.err;
}

TEST_F(SeccompTest, BackendChoice) {
  // The preload backend still refuses a static program, by flag or by policy.
  const RunResult flag =
      run_under("version = 1\n", {kStatic, "file", path("b.txt")}, {"--backend", "preload"});
  EXPECT_EQ(flag.status(), 2) << flag.err;
  EXPECT_NE(flag.err.find("statically linked"), std::string::npos) << flag.err;
  const RunResult policy =
      run_under("version = 1\n[target]\nbackend = \"preload\"\n", {kStatic, "file", path("b.txt")});
  EXPECT_EQ(policy.status(), 2) << policy.err;
  // The flag overrides the policy.
  const RunResult both = run_under("version = 1\n[target]\nbackend = \"preload\"\n",
                                   {kStatic, "file", path("b.txt")}, {"--backend", "seccomp"});
  EXPECT_EQ(both.status(), 0) << both.err;
  EXPECT_EQ(both.out, "write: ok\nfsync: ok\n");
  // A dynamically linked program forced under seccomp is faulted there too.
  const RunResult dynamic = run_under(R"(version = 1
[target]
backend = "seccomp"
[[fault]]
name = "s"
calls = ["fsync"]
error = "EIO"
)",
                                      {"/bin/sh", "-c", "exec sync " + path("b.txt")});
  EXPECT_NE(dynamic.status(), 0) << dynamic.err;
  EXPECT_NE(dynamic.err.find("Input/output error"), std::string::npos) << dynamic.err;
  // A bad value is a policy error with its position.
  ASSERT_TRUE(write_file(path("bad.toml"), "version = 1\n[target]\nbackend = \"ptrace\"\n"));
  const RunResult bad = faultline({"validate", path("bad.toml")});
  EXPECT_EQ(bad.status(), 2);
  EXPECT_NE((bad.out + bad.err).find("'backend' must be"), std::string::npos) << bad.out << bad.err;
}

}  // namespace
}  // namespace fltest
