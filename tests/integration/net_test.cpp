// @net and @dns with real, unmodified programs — curl, redis-server/redis-cli, python3 and
// netprobe (tests/programs: a non-blocking epoll/poll/select client, and the loopback server
// it talks to) — against servers the tests start on 127.0.0.1 with ports the OS chooses.
// Every outcome is what the program itself reports (curl's exit status and time_connect,
// redis-cli's message, Python's exception, the bytes received), cross-checked with the
// session's counters. Each test first shows the program succeeding without the fault, so a
// fault that did nothing fails the test.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "harness.h"

namespace fltest {
namespace {

constexpr const char* kPython = "/usr/bin/python3";
constexpr const char* kCurl = "/usr/bin/curl";
constexpr const char* kRedisServer = "/usr/bin/redis-server";
constexpr const char* kRedisCli = "/usr/bin/redis-cli";

std::vector<unsigned char> from_hex(const std::string& hex) {
  std::vector<unsigned char> out;
  for (std::size_t i = 0; i + 1 < hex.size(); i += 2)
    out.push_back(static_cast<unsigned char>(std::stoi(hex.substr(i, 2), nullptr, 16)));
  return out;
}

int bit_difference(const std::vector<unsigned char>& a, const std::vector<unsigned char>& b) {
  if (a.size() != b.size()) return -1;
  int bits = 0;
  for (std::size_t i = 0; i < a.size(); ++i) bits += __builtin_popcount(a[i] ^ b[i]);
  return bits;
}

// The value after `key=` in a netprobe/python result line ("reads=0 eagain=1 ..."), or "".
std::string field(const std::string& line, const std::string& key) {
  std::size_t at = line.find(key + "=");
  if (at == std::string::npos) return "";
  at += key.size() + 1;
  return line.substr(at, line.find(' ', at) - at);
}

class NetTest : public IntegrationTest {
 protected:
  // `faultline run -p POLICY -- ARGV...` with the policy written from text.
  RunResult run_under(const std::string& policy, const std::vector<std::string>& argv,
                      RunOptions options = {}) {
    const std::string file = path("policy-" + std::to_string(++policies_) + ".toml");
    EXPECT_TRUE(write_file(file, policy));
    std::vector<std::string> args{"run", "-p", file, "--"};
    args.insert(args.end(), argv.begin(), argv.end());
    return faultline(args, options);
  }

  // netprobe's loopback server ("echo" or "push"); returns its port, 0 on failure.
  int start_probe_server(Background& server, const char* mode) {
    if (!server.start({FL_NETPROBE, "serve", mode})) return 0;
    const std::string line = server.read_line(10s).value_or("");
    int port = 0;
    return std::sscanf(line.c_str(), "port %d", &port) == 1 ? port : 0;
  }

  // python3 -m http.server serving `dir` on bind:port (0 = the OS picks); returns the port.
  int start_http(Background& server, const std::string& dir, const std::string& bind,
                 int port = 0) {
    if (!server.start({kPython, "-u", "-m", "http.server", std::to_string(port), "--bind", bind,
                       "--directory", dir}))
      return 0;
    // "Serving HTTP on 127.0.0.1 port 40123 (http://127.0.0.1:40123/) ..."
    const std::string line = server.read_line(15s).value_or("");
    std::size_t at = line.find(" port ");
    return at == std::string::npos ? 0 : std::atoi(line.c_str() + at + 6);
  }

  std::string make_site(const std::string& name, const std::string& body) {
    const std::string dir = path(name);
    EXPECT_EQ(mkdir(dir.c_str(), 0755), 0);
    EXPECT_TRUE(write_file(dir + "/who.txt", body));
    return dir;
  }

  int policies_ = 0;
};

std::string fault_policy(const std::string& faults) { return "version = 1\nseed = 7\n" + faults; }

// ---- curl against python3's http.server ---------------------------------------------------

class CurlTest : public NetTest {
 protected:
  void SetUp() override {
    NetTest::SetUp();
    port_ = start_http(server_, make_site("site", "one\n"), "127.0.0.1");
    ASSERT_GT(port_, 0) << server_.err();
    url_ = "http://127.0.0.1:" + std::to_string(port_) + "/who.txt";
    const RunResult plain = run({kCurl, "-sS", url_});
    ASSERT_EQ(plain.status(), 0) << describe({kCurl, url_}, plain);
    ASSERT_EQ(plain.out, "one\n");
  }
  std::string addr() const { return "127.0.0.1:" + std::to_string(port_); }

  Background server_;
  int port_ = 0;
  std::string url_;
};

TEST_F(CurlTest, RefusedConnectExits7) {
  const RunResult r = run_under(fault_policy(R"(
[[fault]]
name = "refused"
calls = ["connect"]
addr = ")" + addr() + R"("
error = "ECONNREFUSED"
)"),
                                {kCurl, "-sS", url_});
  EXPECT_EQ(r.status(), 7) << r.err;  // CURLE_COULDNT_CONNECT
  EXPECT_NE(r.err.find("Couldn't connect to server"), std::string::npos) << r.err;
  EXPECT_EQ(summary_injected(r.err, "refused"), 1u) << r.err;
}

// curl 7.88 answers "localhost" itself (RFC 6761) without a lookup, so the name here is one
// only the resolver knows: a resolve_to fault makes it resolvable, and an EAI_NONAME fault
// placed before it (the first injecting fault wins) takes it away.
TEST_F(CurlTest, UnresolvableNameExits6) {
  const std::string mapping = R"(
[[fault]]
name = "map"
calls = ["@dns"]
host = "svc.faultline.test"
resolve_to = ["127.0.0.1"]
)";
  const std::string url = "http://svc.faultline.test:" + std::to_string(port_) + "/who.txt";
  const RunResult mapped = run_under(fault_policy(mapping), {kCurl, "-sS", url});
  ASSERT_EQ(mapped.status(), 0) << mapped.err;
  EXPECT_EQ(mapped.out, "one\n");

  const RunResult r = run_under(fault_policy(R"(
[[fault]]
name = "nx"
calls = ["@dns"]
host = "svc.faultline.test"
error = "EAI_NONAME"
)" + mapping),
                                {kCurl, "-sS", url});
  EXPECT_EQ(r.status(), 6) << r.err;  // CURLE_COULDNT_RESOLVE_HOST
  EXPECT_NE(r.err.find("Could not resolve host: svc.faultline.test"), std::string::npos) << r.err;
  EXPECT_EQ(summary_injected(r.err, "nx"), 1u) << r.err;
}

// The delay is what the test observes through curl's own clock: its connect phase takes at
// least the injected 300 ms (an outcome of the fault, not a performance bound).
TEST_F(CurlTest, ConnectDelayShowsInTimeConnect) {
  const RunResult r = run_under(fault_policy(R"(
[[fault]]
name = "slow"
calls = ["connect"]
addr = ")" + addr() + R"("
delay = "300ms"
)"),
                                {kCurl, "-sS", "-o", "/dev/null", "-w", "%{time_connect}", url_});
  ASSERT_EQ(r.status(), 0) << r.err;
  EXPECT_GE(std::atof(r.out.c_str()), 0.25) << "time_connect " << r.out;
  EXPECT_EQ(summary_injected(r.err, "slow"), 1u) << r.err;
}

TEST_F(CurlTest, BlackholeTimesOutWithMaxTime) {
  const RunResult r = run_under(fault_policy(R"(
[[fault]]
name = "partition"
calls = ["@net"]
addr = ")" + addr() + R"("
blackhole = true
)"),
                                {kCurl, "-sS", "--max-time", "2", url_});
  EXPECT_EQ(r.status(), 28) << r.err;  // CURLE_OPERATION_TIMEDOUT: curl's own timer fired
  EXPECT_NE(r.err.find("timed out"), std::string::npos) << r.err;
  EXPECT_GE(summary_injected(r.err, "partition").value_or(0), 1u) << r.err;
}

TEST_F(CurlTest, ResolveToSendsCurlToTheSecondServer) {
  Background second;
  // The second server: same port on another loopback address, different content.
  ASSERT_EQ(start_http(second, make_site("site2", "two\n"), "127.0.0.2", port_), port_)
      << second.err();
  const std::string url = "http://svc.faultline.test:" + std::to_string(port_) + "/who.txt";
  auto fetch = [&](const char* address) {
    return run_under(fault_policy(std::string(R"(
[[fault]]
name = "map"
calls = ["getaddrinfo"]
host = "svc.faultline.test"
resolve_to = [")") + address + R"("]
)"),
                     {kCurl, "-sS", url});
  };
  const RunResult first = fetch("127.0.0.1");
  ASSERT_EQ(first.status(), 0) << first.err;
  EXPECT_EQ(first.out, "one\n");
  const RunResult r = fetch("127.0.0.2");
  ASSERT_EQ(r.status(), 0) << r.err;
  EXPECT_EQ(r.out, "two\n");
}

// ---- redis ----------------------------------------------------------------------------------

class RedisTest : public NetTest {
 protected:
  // redis-server on 127.0.0.1, on a port the OS found free.
  bool start_redis() {
    port_ = free_port();
    if (!server_.start({kRedisServer, "--port", std::to_string(port_), "--bind", "127.0.0.1",
                        "--save", "", "--appendonly", "no"}))
      return false;
    for (int i = 0; i < 100; ++i) {  // bounded: 100 x 50 ms
      if (ping().out == "PONG\n") return true;
      std::this_thread::sleep_for(50ms);
    }
    return false;
  }
  RunResult ping() { return run({kRedisCli, "-p", std::to_string(port_), "ping"}); }
  void TearDown() override {
    run({kRedisCli, "-p", std::to_string(port_), "shutdown", "nosave"});
    server_.stop();
    NetTest::TearDown();
  }

  Background server_;
  int port_ = 0;
};

TEST_F(RedisTest, ResetOnTheClientSocket) {
  ASSERT_TRUE(start_redis()) << server_.err();
  const RunResult r = run_under(fault_policy(R"(
[[fault]]
name = "reset"
calls = ["write", "send"]
addr = "127.0.0.1:)" + std::to_string(port_) +
                                             R"("
reset = true
)"),
                                {kRedisCli, "-p", std::to_string(port_), "ping"});
  EXPECT_NE(r.status(), 0);
  EXPECT_NE((r.out + r.err).find("Connection reset by peer"), std::string::npos) << r.out << r.err;
  EXPECT_GE(summary_injected(r.err, "reset").value_or(0), 1u) << r.err;  // it may reconnect once
  // The server saw a connection reset and keeps serving everyone else.
  EXPECT_EQ(ping().out, "PONG\n");
}

TEST_F(RedisTest, ResetOnTheServersAcceptShowsInTheClient) {
  const std::string name = session("redis");
  const int port = free_port();
  // addr on the server's listening port: accept is matched by its local address.
  const std::string policy = fault_policy(R"([log]
path = ")" + path("events.jsonl") + R"("
[[fault]]
name = "reset-accepted"
calls = ["accept", "accept4"]
addr = "127.0.0.1:)" + std::to_string(port) +
                                          R"("
process = "redis-server*"
reset = true
)");
  const std::string file = path("redis-policy.toml");
  ASSERT_TRUE(write_file(file, policy));
  port_ = port;
  ASSERT_TRUE(server_.start({cli(), "run", "-s", name, "-p", file, "--", kRedisServer, "--port",
                             std::to_string(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no"}));
  // Every connection is accepted and reset by the server (redis-cli reconnects once and is
  // reset again): redis-cli reports the reset.
  RunResult first;
  for (int i = 0; i < 100; ++i) {  // until the server listens (bounded: 100 x 50 ms)
    first = ping();
    if ((first.out + first.err).find("Connection refused") == std::string::npos) break;
    std::this_thread::sleep_for(50ms);
  }
  EXPECT_NE((first.out + first.err).find("Connection reset by peer"), std::string::npos)
      << first.out << first.err << read_file(path("events.jsonl")).value_or("");
  const RunResult status = faultline({"status", name, "--json"});
  EXPECT_GE(status_json_injected(status.out, "reset-accepted").value_or(0), 1u) << status.out;
  // Lifted live, the same server process serves clients again.
  ASSERT_EQ(faultline({"disable", name, "reset-accepted"}).status(), 0);
  EXPECT_EQ(ping().out, "PONG\n");
}

// ---- python3 sockets ------------------------------------------------------------------------

// Sends 32 known bytes to the echo server, prints the first recv() and everything received.
constexpr const char* kEchoClientPy = R"PY(
import socket, sys
payload = bytes(range(65, 97))
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10)
s.sendall(payload)
first = s.recv(4096)
got = first
while len(got) < len(payload):
    chunk = s.recv(4096)
    if not chunk:
        break
    got += chunk
print("first=%s all=%s" % (first.hex(), got.hex()))
)PY";

class PythonSocketTest : public NetTest {
 protected:
  void SetUp() override {
    NetTest::SetUp();
    port_ = start_probe_server(server_, "echo");
    ASSERT_GT(port_, 0) << server_.err();
    ASSERT_TRUE(write_file(path("client.py"), kEchoClientPy));
  }
  RunResult client(const std::string& fault) {
    return run_under(fault_policy(fault), {kPython, path("client.py"), std::to_string(port_)});
  }
  std::string recv_fault(const std::string& action) {
    return "[[fault]]\nname = \"f\"\ncalls = [\"recv\"]\naddr = \"127.0.0.1:" +
           std::to_string(port_) + "\"\ntimes = 1\n" + action + "\n";
  }

  Background server_;
  int port_ = 0;
  const std::vector<unsigned char> payload_ = [] {
    std::vector<unsigned char> p;
    for (int c = 65; c < 97; ++c) p.push_back(static_cast<unsigned char>(c));
    return p;
  }();
};

TEST_F(PythonSocketTest, RecvShortIsByteExact) {
  const RunResult r = client(recv_fault("short = 5"));
  ASSERT_EQ(r.status(), 0) << r.err;
  const std::string line = split_lines(r.out).at(0);
  EXPECT_EQ(from_hex(field(line, "first")),
            std::vector<unsigned char>(payload_.begin(), payload_.begin() + 5))
      << line;
  EXPECT_EQ(from_hex(field(line, "all")), payload_) << line;  // the rest came next, intact
}

TEST_F(PythonSocketTest, RecvCorruptFlipsExactlyOneBit) {
  const RunResult r = client(recv_fault("corrupt = 1"));
  ASSERT_EQ(r.status(), 0) << r.err;
  const std::string line = split_lines(r.out).at(0);
  EXPECT_EQ(bit_difference(from_hex(field(line, "all")), payload_), 1) << line;
}

// Looks a name up the way Python programs do and prints what the program sees.
constexpr const char* kLookupPy = R"PY(
import socket, sys
how, name = sys.argv[1], sys.argv[2]
try:
    if how == "getaddrinfo":
        found = sorted(set(a[4][0] for a in socket.getaddrinfo(name, 80, socket.AF_INET)))
    else:
        found = sorted(socket.gethostbyname_ex(name)[2])
    print("resolved " + ",".join(found))
except socket.gaierror as e:
    print("gaierror %d %s" % (e.errno, "EAI_AGAIN" if e.errno == socket.EAI_AGAIN else
                               "EAI_NONAME" if e.errno == socket.EAI_NONAME else "?"))
except socket.herror as e:
    print("herror %d" % e.errno)
)PY";

class LookupTest : public NetTest {
 protected:
  void SetUp() override {
    NetTest::SetUp();
    ASSERT_TRUE(write_file(path("lookup.py"), kLookupPy));
    // Without faults, localhost resolves (from /etc/hosts, no network needed).
    const RunResult plain = run({kPython, path("lookup.py"), "getaddrinfo", "localhost"});
    ASSERT_EQ(plain.out, "resolved 127.0.0.1\n") << plain.err;
  }
  std::string lookup(const std::string& fault, const char* how, const char* name) {
    const RunResult r = run_under(fault_policy(fault), {kPython, path("lookup.py"), how, name});
    EXPECT_EQ(r.status(), 0) << r.err;
    return r.out;
  }
};

TEST_F(LookupTest, GetaddrinfoEaiAgainRaisesGaierror) {
  EXPECT_EQ(lookup(R"([[fault]]
name = "flaky-dns"
calls = ["getaddrinfo"]
host = "localhost"
error = "EAI_AGAIN"
)",
                   "getaddrinfo", "localhost"),
            "gaierror -3 EAI_AGAIN\n");
  EXPECT_EQ(lookup(R"([[fault]]
name = "nx"
calls = ["@dns"]
host = "local*"
error = "EAI_NONAME"
)",
                   "getaddrinfo", "localhost"),
            "gaierror -2 EAI_NONAME\n");
}

TEST_F(LookupTest, GethostbynameGetsHErrnoAndResolveTo) {
  // gethostbyname_ex is gethostbyname_r underneath: TRY_AGAIN comes back as h_errno 2.
  EXPECT_EQ(lookup(R"([[fault]]
name = "again"
calls = ["gethostbyname_r"]
error = "TRY_AGAIN"
)",
                   "gethostbyname", "localhost"),
            "herror 2\n");
  EXPECT_EQ(lookup(R"([[fault]]
name = "map"
calls = ["@dns"]
host = "*.faultline.test"
resolve_to = ["127.0.0.3", "127.0.0.2", "::1"]
)",
                   "gethostbyname", "db.faultline.test"),
            "resolved 127.0.0.2,127.0.0.3\n");  // the IPv4 ones: gethostbyname is IPv4
  EXPECT_EQ(lookup(R"([[fault]]
name = "map"
calls = ["getaddrinfo"]
resolve_to = ["127.0.0.9"]
)",
                   "getaddrinfo", "db.faultline.test"),
            "resolved 127.0.0.9\n");
}

// ---- netprobe: non-blocking sockets and epoll/poll/select, one test per action --------------

class ProbeTest : public NetTest {
 protected:
  void start(const char* mode) {
    port_ = start_probe_server(server_, mode);
    ASSERT_GT(port_, 0) << server_.err();
  }
  std::string addr() const { return "127.0.0.1:" + std::to_string(port_); }
  std::string fault(const std::string& calls, const std::string& action) const {
    return fault_policy("[[fault]]\nname = \"f\"\ncalls = " + calls + "\naddr = \"" + addr() +
                        "\"\n" + action + "\n");
  }
  RunResult probe(const std::vector<std::string>& args, const std::string& policy = "") {
    std::vector<std::string> argv{FL_NETPROBE};
    argv.insert(argv.end(), args.begin(), args.end());
    return policy.empty() ? run(argv) : run_under(policy, argv);
  }
  std::string port() const { return std::to_string(port_); }
  // What the server printed so far, after closing its stdin (it exits).
  std::string server_output() { return server_.stop().out; }

  Background server_;
  int port_ = 0;
};

TEST_F(ProbeTest, ErrorOnANonBlockingConnectComesThroughSoError) {
  start("echo");
  EXPECT_EQ(probe({"connect", port(), "2000"}).out, "connected\n");
  // The kernel's way: EINPROGRESS, then epoll reports writable+error, SO_ERROR names it.
  for (const char* err : {"ECONNREFUSED", "ETIMEDOUT", "EHOSTUNREACH"}) {
    const RunResult r = probe({"connect", port(), "2000"},
                              fault("[\"connect\"]", std::string("error = \"") + err + "\""));
    EXPECT_EQ(r.out, std::string("error ") + err + " (pollerr)\n") << r.err;
  }
  // An error the kernel reports synchronously comes back from connect() itself.
  const RunResult r =
      probe({"connect", port(), "2000"}, fault("[\"connect\"]", "error = \"EADDRNOTAVAIL\""));
  EXPECT_EQ(r.out, "error EADDRNOTAVAIL\n") << r.err;
}

TEST_F(ProbeTest, DelayedSendStillDelivers) {
  start("echo");
  const RunResult r =
      probe({"request", port(), "hello", "5000"}, fault("[\"send\"]", "delay = \"100ms\""));
  EXPECT_EQ(r.out, "reply 68656c6c6f\n") << r.err;
  EXPECT_EQ(summary_injected(r.err, "f"), 1u) << r.err;
}

TEST_F(ProbeTest, ShortRecvReturnsThePrefix) {
  start("echo");
  EXPECT_EQ(probe({"request", port(), "abcdefgh", "5000"}).out, "reply 6162636465666768\n");
  const RunResult r =
      probe({"request", port(), "abcdefgh", "5000"}, fault("[\"recv\"]", "short = 3"));
  EXPECT_EQ(r.out, "reply 616263\n") << r.err;
}

TEST_F(ProbeTest, CorruptSendReachesThePeerWithOneBitFlipped) {
  start("echo");
  const RunResult r =
      probe({"request", port(), "abcdefgh", "5000"}, fault("[\"send\"]", "corrupt = 1"));
  ASSERT_EQ(r.out.rfind("reply ", 0), 0u) << r.out << r.err;
  const std::string hex = r.out.substr(6, r.out.size() - 7);
  const std::string sent = "abcdefgh";
  EXPECT_EQ(bit_difference(from_hex(hex), std::vector<unsigned char>(sent.begin(), sent.end())), 1)
      << r.out;
}

TEST_F(ProbeTest, ResetAbortsTheConnectionAndThePeerSeesIt) {
  start("echo");
  const RunResult r =
      probe({"request", port(), "hello", "5000"}, fault("[\"send\"]", "reset = true"));
  EXPECT_EQ(r.out, "error ECONNRESET\n") << r.err;
  // The server's read failed with ECONNRESET: a real RST reached it. Wait for the server to
  // say so (bounded) rather than stopping it before it has handled the RST.
  bool seen = false;
  server_.read_until("reset", seen, 5s);
  EXPECT_TRUE(seen) << server_output();
}

TEST_F(ProbeTest, BlackholedConnectNeverCompletes) {
  start("echo");
  const RunResult r = probe({"connect", port(), "500"}, fault("[\"connect\"]", "blackhole = true"));
  // Never writable, no error, and a second connect says "already in progress": SYN_SENT.
  EXPECT_EQ(r.out, "timeout so_error=0 again=EALREADY\n") << r.err;
}

TEST_F(ProbeTest, BlackholedSendIsSwallowed) {
  start("echo");
  const RunResult r =
      probe({"request", port(), "lost", "500"}, fault("[\"send\"]", "blackhole = true"));
  EXPECT_EQ(r.out, "timeout sent=4\n") << r.err;  // "sent" as far as the program knows
  EXPECT_EQ(server_output().find("recv lost"), std::string::npos);  // the peer never got it
}

// Data the server pushed stays unread under a receive partition: level-triggered readiness is
// hidden, so the program's own timeout fires instead of a busy loop of EAGAIN.
TEST_F(ProbeTest, PartitionHidesReadinessFromEpollPollAndSelect) {
  start("push");
  for (const char* waiter : {"epoll", "poll", "select"}) {
    EXPECT_EQ(probe({"idle", waiter, port(), "200", "5"}).out,
              "reads=1 eagain=0 timeouts=4 data=PUSH\n")
        << waiter;
    const RunResult r =
        probe({"idle", waiter, port(), "200", "5"}, fault("[\"recv\"]", "blackhole = true"));
    // The first wait sees the data, recv is blackholed (EAGAIN); from then on nothing.
    EXPECT_EQ(r.out, "reads=0 eagain=1 timeouts=4 data=\n") << waiter << "\n" << r.err;
  }
}

// ---- blocking sockets (python3) ------------------------------------------------------------

// Blocking calls into a partition and on a reset unix socket, each printing what Python saw:
//   connect  : a blocking connect, no socket timeout
//   sndtimeo : a blocking connect with SO_SNDTIMEO = 0.3 s
//   rcvtimeo : connect, then a blocking recv with SO_RCVTIMEO = 0.3 s
//   unix DIR : a unix stream pair through DIR/srv.sock; the client sends, the server reads
constexpr const char* kBlockingPy = R"PY(
import errno, os, socket, struct, sys
def outcome(fn):
    try:
        r = fn()
        return "ok" if r is None else "ok %r" % (r,)
    except OSError as e:
        return "error %s" % errno.errorcode.get(e.errno, e.errno)
mode = sys.argv[1]
if mode == "unix":
    path = os.path.join(sys.argv[2], "srv.sock")
    if os.path.exists(path):
        os.unlink(path)
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(path)
    srv.listen(1)
    cli = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    cli.connect(path)
    conn, _ = srv.accept()
    print("client send", outcome(lambda: cli.send(b"hello")))
    print("server recv", outcome(lambda: conn.recv(16)))
    sys.exit(0)
port = int(sys.argv[2])
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
if mode == "sndtimeo":
    s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, struct.pack("ll", 0, 300000))
if mode == "rcvtimeo":
    s.connect(("127.0.0.1", port))
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, struct.pack("ll", 0, 300000))
    print(outcome(lambda: s.recv(16)))
else:
    print(outcome(lambda: s.connect(("127.0.0.1", port))))
)PY";

class BlockingTest : public NetTest {
 protected:
  void SetUp() override {
    NetTest::SetUp();
    port_ = start_probe_server(server_, "echo");
    ASSERT_GT(port_, 0) << server_.err();
    ASSERT_TRUE(write_file(path("blocking.py"), kBlockingPy));
  }
  std::string python(const std::string& mode, const std::string& policy = "") {
    std::vector<std::string> argv{kPython, path("blocking.py"), mode, std::to_string(port_)};
    const RunResult r = policy.empty() ? run(argv) : run_under(policy, argv);
    EXPECT_EQ(r.status(), 0) << r.err;
    return r.out;
  }
  std::string partition(const std::string& calls, const std::string& extra = "") const {
    return fault_policy("[[fault]]\nname = \"p\"\ncalls = " + calls + "\naddr = \"127.0.0.1:" +
                        std::to_string(port_) + "\"\nblackhole = true\n" + extra);
  }

  Background server_;
  int port_ = 0;
};

TEST_F(BlockingTest, ConnectIntoAPartitionTimesOut) {
  EXPECT_EQ(python("connect"), "ok\n");
  // No socket timeout: the fault's `timeout` stands in for the kernel's SYN retries.
  EXPECT_EQ(python("connect", partition("[\"connect\"]", "timeout = \"500ms\"\n")),
            "error ETIMEDOUT\n");
  // SO_SNDTIMEO first: Linux returns EINPROGRESS when it expires, and so does the shim.
  EXPECT_EQ(python("sndtimeo", partition("[\"connect\"]", "timeout = \"10s\"\n")),
            "error EINPROGRESS\n");
}

TEST_F(BlockingTest, ReceiveInAPartitionEndsAtTheSocketsTimeout) {
  EXPECT_EQ(python("rcvtimeo"), "error EAGAIN\n");  // the echo server sends nothing first
  EXPECT_EQ(python("rcvtimeo", partition("[\"recv\"]")), "error EAGAIN\n");
}

// A unix stream socket cannot send a reset: the peer reads EOF. `addr` selects the client's
// side by the server's path (the accepted side's peer is an unnamed socket).
TEST_F(BlockingTest, ResetOfAUnixSocketIsEofForThePeer) {
  const std::vector<std::string> argv{kPython, path("blocking.py"), "unix", dir_.path()};
  const RunResult plain = run(argv);
  ASSERT_EQ(plain.out, "client send ok 5\nserver recv ok b'hello'\n") << plain.err;
  const RunResult r = run_under(fault_policy(R"([[fault]]
name = "reset"
calls = ["send"]
addr = "unix:*/srv.sock"
reset = true
)"),
                                argv);
  EXPECT_EQ(r.out, "client send error ECONNRESET\nserver recv ok b''\n") << r.err;
}

// ---- the shipped examples -------------------------------------------------------------------

class NetExamplesTest : public NetTest {};

TEST_F(NetExamplesTest, ShippedPoliciesValidateAndSlowDnsAnswersTheStandby) {
  const std::string examples = std::string(FAULTLINE_SOURCE_DIR) + "/examples/";
  for (const char* name :
       {"flaky-network.toml", "partition.toml", "partial-partition.toml", "slow-dns.toml"}) {
    const RunResult r = faultline({"validate", examples + name});
    EXPECT_EQ(r.status(), 0) << name << ": " << r.err;
  }
  ASSERT_TRUE(write_file(path("lookup.py"), kLookupPy));
  // Seed 1 draws no EAI_AGAIN for this first lookup: db.internal is the standby, after 2 s.
  const RunResult r = faultline({"run", "--seed", "1", "-p", examples + "slow-dns.toml", "--",
                                 kPython, path("lookup.py"), "getaddrinfo", "db.internal"});
  EXPECT_EQ(r.out, "resolved 127.0.0.2\n") << r.err;
  EXPECT_EQ(summary_injected(r.err, "standby"), 1u) << r.err;
}

// ---- live: partition and heal a running client ----------------------------------------------

// A client loop over one connection: "r N" makes N request/reply rounds (0.3 s timeout each)
// and prints "done ok=X timeout=Y"; "q" quits. At most 200 rounds in all.
constexpr const char* kLoopClientPy = R"PY(
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10)
s.settimeout(0.3)
print("ready", flush=True)
budget = 200
while True:
    words = sys.stdin.readline().split()
    if not words or words[0] == "q":
        break
    n = min(int(words[1]), budget)
    budget -= n
    ok = timeout = 0
    for _ in range(n):
        s.sendall(b"ping\n")
        try:
            ok += s.recv(64) == b"ping\n"
        except socket.timeout:
            timeout += 1
    print("done ok=%d timeout=%d" % (ok, timeout), flush=True)
)PY";

class LivePartitionTest : public NetTest {
 protected:
  struct Batch {
    int ok = -1, timeout = -1;
  };
  Batch rounds(int n) {
    EXPECT_TRUE(client_.write_stdin("r " + std::to_string(n) + "\n"));
    const std::string line = client_.read_line(30s).value_or("");
    Batch b;
    std::sscanf(line.c_str(), "done ok=%d timeout=%d", &b.ok, &b.timeout);
    EXPECT_EQ(b.ok + b.timeout, n) << line << client_.err();
    return b;
  }
  std::uint64_t injected(const std::string& name) {
    const RunResult status = faultline({"status", name, "--json"});
    return status_json_injected(status.out, "partition").value_or(~0ull);
  }

  Background server_, client_;
};

TEST_F(LivePartitionTest, EnablePartitionsAndDisableHeals) {
  const int port = start_probe_server(server_, "echo");
  ASSERT_GT(port, 0) << server_.err();
  const std::string name = session("partition");
  ASSERT_TRUE(write_file(path("loop.py"), kLoopClientPy));
  ASSERT_TRUE(write_file(path("policy.toml"), fault_policy(R"([log]
path = ")" + path("events.jsonl") + R"("
[[fault]]
name = "partition"
calls = ["@net"]
addr = "127.0.0.1:)" + std::to_string(port) + R"("
blackhole = true
enabled = false
)")));
  ASSERT_TRUE(client_.start({cli(), "run", "-s", name, "-p", path("policy.toml"), "--", kPython,
                             path("loop.py"), std::to_string(port)}));
  ASSERT_EQ(client_.read_line(15s).value_or("<nothing>"), "ready") << client_.err();

  EXPECT_EQ(rounds(5).ok, 5) << "before the partition";

  ASSERT_EQ(faultline({"enable", name, "partition"}).status(), 0);
  const Batch cut = rounds(5);
  EXPECT_EQ(cut.timeout, 5) << "partitioned";
  // The client's own count of lost requests is the session's count of swallowed sends.
  EXPECT_EQ(injected(name), static_cast<std::uint64_t>(cut.timeout));

  ASSERT_EQ(faultline({"disable", name, "partition"}).status(), 0);
  EXPECT_EQ(rounds(5).ok, 5) << "healed";
  EXPECT_EQ(injected(name), 5u);

  ASSERT_EQ(faultline({"enable", name, "partition"}).status(), 0);
  EXPECT_EQ(rounds(3).timeout, 3) << "partitioned again";
  EXPECT_EQ(injected(name), 8u);
  ASSERT_EQ(faultline({"disable", name, "partition"}).status(), 0);
  EXPECT_EQ(rounds(3).ok, 3) << "healed again";

  client_.write_stdin("q\n");
  const RunResult done = client_.stop();
  EXPECT_EQ(done.status(), 0) << done.err;
  // Every injection is an event line naming the peer.
  const std::string events = read_file(path("events.jsonl")).value_or("");
  EXPECT_EQ(count_substr(events, "\"action\":\"blackhole\""), 8u) << events;
  EXPECT_EQ(count_substr(events, "\"addr\":\"127.0.0.1:" + std::to_string(port) + "\""), 8u);
}

// A non-blocking connect waiting at the tarpit completes once the partition is lifted live.
TEST_F(LivePartitionTest, LiftingThePartitionCompletesAWaitingConnect) {
  const int port = start_probe_server(server_, "echo");
  ASSERT_GT(port, 0) << server_.err();
  const std::string name = session("tarpit");
  ASSERT_TRUE(write_file(path("policy.toml"), fault_policy(R"([[fault]]
name = "partition"
calls = ["connect"]
addr = "127.0.0.1:)" + std::to_string(port) + R"("
blackhole = true
)")));
  ASSERT_TRUE(client_.start({cli(), "run", "-s", name, "-p", path("policy.toml"), "--", FL_NETPROBE,
                             "connect", std::to_string(port), "20000"}));
  // Wait (bounded) until the connect was blackholed, then lift the partition.
  for (int i = 0; i < 200 && injected(name) != 1; ++i) std::this_thread::sleep_for(25ms);
  ASSERT_EQ(injected(name), 1u);
  ASSERT_EQ(faultline({"disable", name, "partition"}).status(), 0);
  EXPECT_EQ(client_.read_line(15s).value_or("<nothing>"), "connected") << client_.err();
}

// ---- selector lists: a partial partition as one fault ------------------------------------------

// Tries each replica with a fresh connection and an HTTP request, one line per replica:
// "127.0.0.2 ok two" or "127.0.0.3 ECONNREFUSED" / "127.0.0.3 timeout". With "live", repeats
// that for each line read from stdin until "q".
constexpr const char* kReplicasPy = R"PY(
import errno, socket, sys
port = int(sys.argv[1])
def probe(ip):
    try:
        s = socket.create_connection((ip, port), timeout=1.5)
    except socket.timeout:
        return "timeout"
    except OSError as e:
        return errno.errorcode.get(e.errno, str(e.errno))
    try:
        s.sendall(b"GET /who.txt HTTP/1.0\r\n\r\n")
        data = b""
        while True:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
        return "ok " + data.split(b"\r\n\r\n", 1)[-1].decode().strip()
    except OSError as e:
        return errno.errorcode.get(e.errno, str(e.errno))
    finally:
        s.close()
def round():
    for ip in ("127.0.0.2", "127.0.0.3", "127.0.0.4"):
        print(ip, probe(ip), flush=True)
if sys.argv[2:] == ["live"]:
    print("ready", flush=True)
    for line in sys.stdin:
        if line.strip() == "q":
            break
        round()
else:
    round()
)PY";

class ReplicaTest : public NetTest {
 protected:
  // Three http.servers on 127.0.0.2, .3 and .4, all on one port, each answering its name.
  void SetUp() override {
    NetTest::SetUp();
    port_ = start_http(servers_[0], make_site("two", "two\n"), "127.0.0.2");
    ASSERT_GT(port_, 0) << servers_[0].err();
    ASSERT_EQ(start_http(servers_[1], make_site("three", "three\n"), "127.0.0.3", port_), port_)
        << servers_[1].err();
    ASSERT_EQ(start_http(servers_[2], make_site("four", "four\n"), "127.0.0.4", port_), port_)
        << servers_[2].err();
    ASSERT_TRUE(write_file(path("replicas.py"), kReplicasPy));
    const RunResult plain = run({kPython, path("replicas.py"), std::to_string(port_)});
    ASSERT_EQ(plain.out, "127.0.0.2 ok two\n127.0.0.3 ok three\n127.0.0.4 ok four\n") << plain.err;
  }
  std::string at(const char* ip) const { return std::string(ip) + ":" + std::to_string(port_); }

  Background servers_[3];
  int port_ = 0;
};

TEST_F(ReplicaTest, OneFaultPartitionsTwoOfThreeReplicas) {
  const RunResult r = run_under(fault_policy("[[fault]]\nname = \"split\"\ncalls = [\"connect\"]\n"
                                             "addr = [\"" +
                                             at("127.0.0.2") + "\", \"" + at("127.0.0.3") +
                                             "\"]\nerror = \"ECONNREFUSED\"\n"),
                                {kPython, path("replicas.py"), std::to_string(port_)});
  ASSERT_EQ(r.status(), 0) << r.err;
  EXPECT_EQ(r.out, "127.0.0.2 ECONNREFUSED\n127.0.0.3 ECONNREFUSED\n127.0.0.4 ok four\n") << r.err;
  EXPECT_EQ(summary_injected(r.err, "split").value_or(0), 2u) << r.err;
}

TEST_F(ReplicaTest, ANegatedEntryKeepsOneReplicaReachable) {
  const RunResult r = run_under(fault_policy("[[fault]]\nname = \"split\"\ncalls = [\"connect\"]\n"
                                             "addr = [\"127.0.0.0/8:" +
                                             std::to_string(port_) + "\", \"!" + at("127.0.0.3") +
                                             "\"]\nerror = \"ECONNREFUSED\"\n"),
                                {kPython, path("replicas.py"), std::to_string(port_)});
  ASSERT_EQ(r.status(), 0) << r.err;
  EXPECT_EQ(r.out, "127.0.0.2 ECONNREFUSED\n127.0.0.3 ok three\n127.0.0.4 ECONNREFUSED\n") << r.err;
}

// `faultline set F addr=[...]` moves a live partition from one replica to two others; status
// shows the list in a form `set` takes back.
TEST_F(ReplicaTest, LiveSetMovesThePartition) {
  const std::string name = session("replicas");
  ASSERT_TRUE(write_file(path("policy.toml"),
                         fault_policy("[[fault]]\nname = \"split\"\ncalls = [\"connect\"]\n"
                                      "addr = \"" +
                                      at("127.0.0.2") + "\"\nblackhole = true\n")));
  Background client;
  ASSERT_TRUE(client.start({cli(), "run", "-q", "-s", name, "-p", path("policy.toml"), "--",
                            kPython, path("replicas.py"), std::to_string(port_), "live"}));
  ASSERT_EQ(client.read_line(15s).value_or("<nothing>"), "ready") << client.err();
  auto round = [&] {
    EXPECT_TRUE(client.write_stdin("go\n"));
    std::string out;
    for (int i = 0; i < 3; ++i) out += client.read_line(20s).value_or("<nothing>") + "\n";
    return out;
  };
  EXPECT_EQ(round(), "127.0.0.2 timeout\n127.0.0.3 ok three\n127.0.0.4 ok four\n");

  const std::string list = "[\"" + at("127.0.0.3") + "\",\"" + at("127.0.0.4") + "\"]";
  const RunResult set = faultline({"set", name, "split", "addr=" + list});
  ASSERT_EQ(set.status(), 0) << set.err;
  EXPECT_EQ(round(), "127.0.0.2 ok two\n127.0.0.3 timeout\n127.0.0.4 timeout\n");

  const RunResult status = faultline({"status", name});
  EXPECT_NE(status.out.find("addr=" + list), std::string::npos) << status.out;
  const RunResult json = faultline({"status", name, "--json"});
  EXPECT_NE(json.out.find("\"selectors\":{\"addr\":" + list + "}"), std::string::npos) << json.out;

  // What status shows is what set takes: pasting it back changes nothing.
  ASSERT_EQ(faultline({"set", name, "split", "addr=" + list}).status(), 0);
  // Back to one replica, as a single string.
  ASSERT_EQ(faultline({"set", name, "split", "addr=" + at("127.0.0.4")}).status(), 0);
  EXPECT_EQ(round(), "127.0.0.2 ok two\n127.0.0.3 ok three\n127.0.0.4 timeout\n");
  EXPECT_TRUE(client.write_stdin("q\n"));
  EXPECT_EQ(client.stop(10s).status(), 0) << client.err();
}

}  // namespace
}  // namespace fltest
