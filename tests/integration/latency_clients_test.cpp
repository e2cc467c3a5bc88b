// A slow or cut-off network as real clients see it: python3 (http.client), curl, Java
// (HttpURLConnection) and node (http.get), each with its own 1 s timeout, and nginx proxying
// to upstreams, against the loopback server of tests/programs/clients. Two groups:
//
// - Native* tests calibrate the bed without faultline: the *server* is made slow (it sleeps
//   before answering) or short (it closes mid-response), and each client must report exactly
//   what the Faultline* tests later expect of it. They prove that the clients, their timeouts
//   and their reports work, so a Faultline* test can only fail because faultline is wrong.
// - Faultline* tests make the *network* slow or short with @net's latency, bandwidth and eof
//   (with after_bytes) under `faultline run`, against an instant, whole server, and expect the
//   same reports (without those actions each fails fast: the policy is refused and the
//   client line is missing).
//
// Every wait is bounded; every server and nginx started here is killed at the end of its test
// (Background), and nothing listens beyond 127.0.0.1-127.0.0.3.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <map>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "harness.h"

namespace fltest {
namespace {

constexpr const char* kPython = "/usr/bin/python3";
constexpr const char* kCurl = "/usr/bin/curl";
constexpr const char* kSh = "/bin/sh";
constexpr const char* kJava = "/usr/bin/java";
constexpr const char* kNode = "/usr/bin/node";
constexpr const char* kNginx = "/usr/sbin/nginx";

constexpr double kTimeoutLow = 0.9;  // a 1 s client timeout, as the client measures it
constexpr double kTimeoutHigh = 1.5;
constexpr double kExtraLow = 0.160;  // 200 ms of extra round trip, ± 40 ms
constexpr double kExtraHigh = 0.240;
constexpr int kRepeat = 20;
constexpr long kMiB = 1024 * 1024;
constexpr long kCut = 64 * 1024;

std::string program(const std::string& name) { return std::string(FL_CLIENTS_DIR) + "/" + name; }

bool executable(const char* file) { return access(file, X_OK) == 0; }

// argv of one client: a single GET of url, or (repeat > 0) a warm-up and `repeat` timed GETs
// on one kept-alive connection.
std::vector<std::string> client_argv(const std::string& client, const std::string& url,
                                     int repeat = 0) {
  std::vector<std::string> argv;
  if (client == "python") argv = {kPython, program("client.py"), url};
  if (client == "curl") argv = {kSh, program("curl_client.sh"), url};
  if (client == "java") argv = {kJava, program("Client.java"), url};
  if (client == "node") argv = {kNode, program("client.js"), url};
  if (repeat > 0) {
    argv.push_back("--repeat");
    argv.push_back(std::to_string(repeat));
  }
  return argv;
}

// The runtime a client needs, or nullptr when it is always there (python3, curl: base deps).
const char* runtime_of(const std::string& client) {
  if (client == "java") return kJava;
  if (client == "node") return kNode;
  return nullptr;
}

// The fields of a "client=... k=v k=v" line (the last such line of out); empty when none.
std::map<std::string, std::string> client_line(const std::string& out) {
  std::map<std::string, std::string> fields;
  for (const std::string& line : split_lines(out)) {
    if (line.rfind("client=", 0) != 0) continue;
    fields.clear();
    std::size_t at = 0;
    while (at < line.size()) {
      std::size_t end = line.find(' ', at);
      if (end == std::string::npos) end = line.size();
      const std::string word = line.substr(at, end - at);
      const std::size_t eq = word.find('=');
      if (eq != std::string::npos) fields[word.substr(0, eq)] = word.substr(eq + 1);
      at = end + 1;
    }
  }
  return fields;
}

double number(const std::map<std::string, std::string>& fields, const std::string& key) {
  auto it = fields.find(key);
  return it == fields.end() ? -1.0 : std::atof(it->second.c_str());
}

std::string text(const std::map<std::string, std::string>& fields, const std::string& key) {
  auto it = fields.find(key);
  return it == fields.end() ? "" : it->second;
}

bool can_connect(const std::string& ip, int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a {};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<std::uint16_t>(port));
  inet_pton(AF_INET, ip.c_str(), &a.sin_addr);
  const bool ok = connect(fd, reinterpret_cast<struct sockaddr*>(&a), sizeof a) == 0;
  close(fd);
  return ok;
}

// tests/programs/clients/server.py in the background; the destructor kills it.
class HttpServer {
 public:
  // Extra server.py options (--delay, --bytes, --cut-at, --bind). False when it did not start.
  bool start(const std::vector<std::string>& options, const std::string& ip = "127.0.0.1") {
    ip_ = ip;
    std::vector<std::string> argv{kPython, "-u", program("server.py"), "--bind", ip};
    argv.insert(argv.end(), options.begin(), options.end());
    if (!bg_.start(argv)) return false;
    const std::string line = bg_.read_line(15s).value_or("");
    return std::sscanf(line.c_str(), "port %d", &port_) == 1 && port_ > 0;
  }
  // The server's next "closed conn=..." line, fields parsed; empty if none within timeout.
  std::map<std::string, std::string> next_closed(std::chrono::milliseconds timeout = 5s) {
    const std::string line = bg_.read_line(timeout).value_or("");
    if (line.rfind("closed ", 0) != 0) return {};
    return client_line("client=server " + line.substr(7));
  }
  int port() const { return port_; }
  std::string addr() const { return ip_ + ":" + std::to_string(port_); }
  std::string url(const std::string& path = "/") const { return "http://" + addr() + path; }
  std::string err() const { return bg_.err(); }

 private:
  Background bg_;
  std::string ip_;
  int port_ = 0;
};

class ClientBedTest : public IntegrationTest {
 protected:
  // `faultline run -p POLICY -- ARGV...` with the policy written from text.
  RunResult run_under(const std::string& policy, const std::vector<std::string>& argv,
                      std::chrono::milliseconds timeout = 30s) {
    const std::string file = policy_file(policy);
    std::vector<std::string> args{"run", "-p", file, "--"};
    args.insert(args.end(), argv.begin(), argv.end());
    RunOptions options;
    options.timeout = timeout;
    return faultline(args, options);
  }
  std::string policy_file(const std::string& policy) {
    const std::string file = path("policy-" + std::to_string(++policies_) + ".toml");
    EXPECT_TRUE(write_file(file, policy));
    return file;
  }
  static RunResult run_native(const std::vector<std::string>& argv,
                              std::chrono::milliseconds timeout = 30s) {
    RunOptions options;
    options.timeout = timeout;
    return run(argv, options);
  }
  // The median of `repeat` kept-alive round trips to server as client reports it; <0 on failure.
  double median_round_trip(const std::string& client, const HttpServer& server,
                           const std::string& policy = "") {
    const std::vector<std::string> argv = client_argv(client, server.url(), kRepeat);
    const RunResult r = policy.empty() ? run_native(argv) : run_under(policy, argv);
    const auto line = client_line(r.out);
    EXPECT_EQ(r.status(), 0) << describe(argv, r);
    EXPECT_EQ(text(line, "outcome"), "ok") << describe(argv, r);
    EXPECT_EQ(text(line, "requests"), std::to_string(kRepeat)) << describe(argv, r);
    return number(line, "median");
  }

  int policies_ = 0;
};

// The figure a calibration test measured, on the test's output (for docs and reports).
void figure(const std::string& what) { std::printf("[  figure  ] %s\n", what.c_str()); }

std::string policy(const std::string& faults) { return "version = 1\nseed = 7\n" + faults; }

// One @net fault on one server's address.
std::string net_fault(const std::string& name, const std::string& addr, const std::string& action) {
  return policy("[[fault]]\nname = \"" + name + "\"\ncalls = [\"@net\"]\naddr = \"" + addr +
                "\"\n" + action + "\n");
}

// ---- each of the four clients ---------------------------------------------------------------

class ClientTest : public ClientBedTest, public ::testing::WithParamInterface<std::string> {
 protected:
  void SetUp() override {
    ClientBedTest::SetUp();
    const char* runtime = runtime_of(GetParam());
    if (runtime != nullptr && !executable(runtime))
      GTEST_SKIP() << runtime << " is missing: scripts/deps.sh installs it ("
                   << (GetParam() == "java" ? "default-jdk-headless" : "nodejs") << ")";
  }
  // The report of one client, asserting that it ran and printed its line.
  std::map<std::string, std::string> outcome_of(const RunResult& r,
                                                const std::vector<std::string>& argv) {
    const auto line = client_line(r.out);
    EXPECT_EQ(r.status(), 0) << describe(argv, r);
    EXPECT_FALSE(line.empty()) << describe(argv, r);
    return line;
  }
};

// What each client calls a response that ended before its Content-Length.
std::string cut_kind(const std::string& client) {
  if (client == "python") return "IncompleteRead";
  if (client == "curl") return "curl18";  // CURLE_PARTIAL_FILE
  if (client == "java") return "short";   // HttpURLConnection ends quietly; the client checks
  return "incomplete";                    // node: the response closed before it completed
}

using NativeClientTest = ClientTest;

// The server answers after 3 s; the client's own 1 s timeout fires, on time.
TEST_P(NativeClientTest, ServerDelayOf3sTimesOutIn1s) {
  HttpServer server;
  ASSERT_TRUE(server.start({"--delay", "3"})) << server.err();
  const auto argv = client_argv(GetParam(), server.url());
  const RunResult r = run_native(argv);
  const auto line = outcome_of(r, argv);
  EXPECT_EQ(text(line, "outcome"), "timeout") << r.out;
  EXPECT_GE(number(line, "elapsed"), kTimeoutLow) << r.out;
  EXPECT_LE(number(line, "elapsed"), kTimeoutHigh) << r.out;
  figure(GetParam() + " timed out after " + text(line, "elapsed") + " s");
}

// The server answers every request 200 ms late; over 20 kept-alive requests the median round
// trip is 200 ms longer than against an instant server.
TEST_P(NativeClientTest, ServerDelayOf200msAddsItToTheMedianRoundTrip) {
  HttpServer instant, slow;
  ASSERT_TRUE(instant.start({})) << instant.err();
  ASSERT_TRUE(slow.start({"--delay", "0.2"})) << slow.err();
  const double base = median_round_trip(GetParam(), instant);
  const double delayed = median_round_trip(GetParam(), slow);
  ASSERT_GE(base, 0.0);
  figure(GetParam() + " median round trip " + std::to_string(base) + " s, with the server's " +
         "200 ms " + std::to_string(delayed) + " s");
  EXPECT_GE(delayed - base, kExtraLow) << "base " << base << " delayed " << delayed;
  EXPECT_LE(delayed - base, kExtraHigh) << "base " << base << " delayed " << delayed;
}

// The server closes cleanly after 64 KiB of a 1 MiB response: each client says the response
// was cut short, having read exactly the body bytes that fit in those 64 KiB.
TEST_P(NativeClientTest, ServerCutAt64KiBIsReportedAsCutShort) {
  HttpServer server;
  ASSERT_TRUE(server.start({"--bytes", std::to_string(kMiB), "--cut-at", std::to_string(kCut)}))
      << server.err();
  const auto argv = client_argv(GetParam(), server.url());
  const RunResult r = run_native(argv);
  const auto line = outcome_of(r, argv);
  const auto closed = server.next_closed();
  ASSERT_FALSE(closed.empty()) << server.err();
  EXPECT_EQ(text(closed, "peer"), "cut");
  const double head = number(closed, "head");
  EXPECT_EQ(text(line, "outcome"), "error") << r.out;
  EXPECT_EQ(text(line, "kind"), cut_kind(GetParam())) << r.out;
  EXPECT_EQ(number(line, "bytes"), kCut - head) << r.out;
}

INSTANTIATE_TEST_SUITE_P(Clients, NativeClientTest,
                         ::testing::Values("python", "curl", "java", "node"),
                         [](const auto& info) { return info.param; });

using FaultlineClientTest = ClientTest;

// latency = 3s on the server's address, the server instant: the client's own 1 s timeout
// fires on time (the connect, or the wait for the answer, is what outlasts it).
TEST_P(FaultlineClientTest, Latency3sTimesOutIn1s) {
  HttpServer server;
  ASSERT_TRUE(server.start({})) << server.err();
  const auto argv = client_argv(GetParam(), server.url());
  const RunResult r = run_under(net_fault("slow-net", server.addr(), "latency = \"3s\""), argv);
  const auto line = outcome_of(r, argv);
  EXPECT_EQ(text(line, "outcome"), "timeout") << r.out << r.err;
  EXPECT_GE(number(line, "elapsed"), kTimeoutLow) << r.out;
  EXPECT_LE(number(line, "elapsed"), kTimeoutHigh) << r.out;
  EXPECT_GE(summary_injected(r.err, "slow-net").value_or(0), 1u) << r.err;
}

// latency = 200ms: every answer arrives, each kept-alive round trip 200 ms longer than the
// same client's native one against the same server, measured in this test.
TEST_P(FaultlineClientTest, Latency200msAddsItToTheMedianRoundTrip) {
  HttpServer server;
  ASSERT_TRUE(server.start({})) << server.err();
  const double base = median_round_trip(GetParam(), server);
  const double delayed = median_round_trip(
      GetParam(), server, net_fault("slow-net", server.addr(), "latency = \"200ms\""));
  ASSERT_GE(base, 0.0);
  figure(GetParam() + " median round trip " + std::to_string(base) + " s, under latency 200ms " +
         std::to_string(delayed) + " s");
  EXPECT_GE(delayed - base, kExtraLow) << "base " << base << " delayed " << delayed;
  EXPECT_LE(delayed - base, kExtraHigh) << "base " << base << " delayed " << delayed;
}

INSTANTIATE_TEST_SUITE_P(Clients, FaultlineClientTest,
                         ::testing::Values("python", "curl", "java", "node"),
                         [](const auto& info) { return info.param; });

// ---- bandwidth and eof with curl and python -------------------------------------------------

class FaultlineStreamTest : public ClientBedTest {};

// bandwidth = 256KiB/s: 1 MiB takes 4 s (± 10 %), by curl's own clock, and arrives whole.
TEST_F(FaultlineStreamTest, Bandwidth256KiBPerSecondTakes4sFor1MiB) {
  HttpServer server;
  ASSERT_TRUE(server.start({"--bytes", std::to_string(kMiB)})) << server.err();
  const std::vector<std::string> argv{kCurl,        "-sS", "-o", "/dev/null",
                                      "--max-time", "15",  "-w", "%{size_download} %{time_total}",
                                      server.url()};
  const RunResult native = run_native(argv);
  ASSERT_EQ(native.status(), 0) << describe(argv, native);
  long size = 0;
  double seconds = 0;
  ASSERT_EQ(std::sscanf(native.out.c_str(), "%ld %lf", &size, &seconds), 2) << native.out;
  ASSERT_EQ(size, kMiB);
  ASSERT_LT(seconds, 1.0) << "natively, 1 MiB over loopback takes well under a second";
  const RunResult r =
      run_under(net_fault("thin-pipe", server.addr(), "bandwidth = \"256KiB/s\""), argv);
  ASSERT_EQ(r.status(), 0) << describe(argv, r);
  ASSERT_EQ(std::sscanf(r.out.c_str(), "%ld %lf", &size, &seconds), 2) << r.out;
  EXPECT_EQ(size, kMiB);
  EXPECT_GE(seconds, 3.6) << r.out;
  EXPECT_LE(seconds, 4.4) << r.out;
}

// eof after 64 KiB of a 1 MiB response: curl reads exactly 64 KiB from the connection (the
// header bytes and the body bytes it reports add up to 65536: after_bytes counts everything
// received on the connection, headers included) and exits 18, a transfer cut short.
TEST_F(FaultlineStreamTest, EofAfter64KiBCutsCurlShort) {
  HttpServer server;
  ASSERT_TRUE(server.start({"--bytes", std::to_string(kMiB)})) << server.err();
  const std::vector<std::string> argv{kCurl,        "-sS", "-o", "/dev/null",
                                      "--max-time", "10",  "-w", "%{size_header} %{size_download}",
                                      server.url()};
  const RunResult native = run_native(argv);
  ASSERT_EQ(native.status(), 0) << describe(argv, native);
  long head = -1, body = -1;
  ASSERT_EQ(std::sscanf(native.out.c_str(), "%ld %ld", &head, &body), 2) << native.out;
  ASSERT_EQ(body, kMiB) << "natively, the whole response";
  ASSERT_EQ(text(server.next_closed(), "peer"), "closed");
  const RunResult r =
      run_under(net_fault("cut", server.addr(), "eof = true\nafter_bytes = \"64KiB\""), argv, 30s);
  EXPECT_EQ(r.status(), 18) << describe(argv, r);  // CURLE_PARTIAL_FILE
  head = body = -1;
  ASSERT_EQ(std::sscanf(r.out.c_str(), "%ld %ld", &head, &body), 2) << r.out << r.err;
  EXPECT_GT(head, 0);
  EXPECT_EQ(head + body, kCut) << r.out;
  const auto closed = server.next_closed();
  ASSERT_FALSE(closed.empty()) << server.err();
  EXPECT_EQ(number(closed, "head"), head);
  EXPECT_TRUE(text(closed, "peer") == "closed" || text(closed, "peer") == "reset")
      << text(closed, "peer");
}

// The same cut under python's http.client: IncompleteRead with the body bytes of those 64 KiB.
// The client keeps its connection open (a dup of the fd) for 3 s after the error, so a close
// the server sees sooner was made by faultline's shutdown, not by the process exiting — the
// server learns that its peer is gone while the peer still runs.
TEST_F(FaultlineStreamTest, EofAfter64KiBIsIncompleteReadAndThePeerSeesTheClose) {
  HttpServer server;
  ASSERT_TRUE(server.start({"--bytes", std::to_string(kMiB)})) << server.err();
  const RunResult native = run_native({kPython, program("client.py"), server.url()});
  ASSERT_EQ(text(client_line(native.out), "outcome"), "ok") << native.out << native.err;
  ASSERT_EQ(number(client_line(native.out), "bytes"), kMiB) << native.out;
  ASSERT_EQ(text(server.next_closed(), "peer"), "closed");
  const std::vector<std::string> argv{kPython, program("client.py"), server.url(), "--hold", "3"};
  const RunResult r =
      run_under(net_fault("cut", server.addr(), "eof = true\nafter_bytes = \"64KiB\""), argv, 30s);
  ASSERT_EQ(r.status(), 0) << describe(argv, r);
  const auto line = client_line(r.out);
  EXPECT_EQ(text(line, "kind"), "IncompleteRead") << r.out;
  const auto closed = server.next_closed(1s);  // the client has exited: the line is there
  ASSERT_FALSE(closed.empty()) << server.err();
  EXPECT_EQ(number(line, "bytes"), kCut - number(closed, "head")) << r.out;
  EXPECT_TRUE(text(closed, "peer") == "closed" || text(closed, "peer") == "reset")
      << text(closed, "peer");
  EXPECT_LT(number(closed, "after"), 2.0) << "the server saw the close only when the client "
                                             "exited, not when faultline ended the connection";
}

// Calibration of the test above: without faultline, the held connection stays open until
// the client exits, 3 s after it printed its line.
TEST_F(ClientBedTest, NativePythonHoldKeepsTheConnectionOpenUntilExit) {
  HttpServer server;
  ASSERT_TRUE(server.start({"--bytes", std::to_string(kMiB)})) << server.err();
  const std::vector<std::string> argv{kPython, program("client.py"), server.url(), "--hold", "3"};
  const RunResult r = run_native(argv);
  ASSERT_EQ(r.status(), 0) << describe(argv, r);
  EXPECT_EQ(text(client_line(r.out), "outcome"), "ok") << r.out;
  EXPECT_EQ(number(client_line(r.out), "bytes"), kMiB) << r.out;
  const auto closed = server.next_closed(1s);
  ASSERT_FALSE(closed.empty()) << server.err();
  EXPECT_EQ(text(closed, "peer"), "closed");
  EXPECT_GE(number(closed, "after"), 2.5);
}

// ---- nginx: one slow upstream must not slow the healthy one ----------------------------------

// nginx proxying /slow2/ to 127.0.0.2, /slow3/ to 127.0.0.3 and /fast/ to 127.0.0.1, with 1 s
// upstream timeouts. Run unprivileged: everything it writes is in the test's temp dir, and it
// stays one process (master_process off: as root, a master would hand its workers to `nobody`,
// who cannot enter the private temp dir).
class NginxTest : public ClientBedTest {
 protected:
  void SetUp() override {
    ClientBedTest::SetUp();
    if (!executable(kNginx))
      GTEST_SKIP() << kNginx << " is missing: scripts/deps.sh installs it (nginx-light)";
    ASSERT_TRUE(slow2_.start(slow_options_, "127.0.0.2")) << slow2_.err();
    ASSERT_TRUE(slow3_.start(slow_options_, "127.0.0.3")) << slow3_.err();
    ASSERT_TRUE(fast_.start({})) << fast_.err();
  }
  void TearDown() override {
    if (nginx_.running()) {
      kill(nginx_.pid(), SIGTERM);  // faultline forwards it; nginx exits, the session goes
      nginx_.stop(5s);
    }
    ClientBedTest::TearDown();
  }

  std::string config() {
    port_ = free_port();
    const std::string d = dir_.path();
    auto location = [](const std::string& path, const HttpServer& up) {
      return "    location /" + path + "/ {\n      proxy_pass " + up.url() +
             ";\n      proxy_connect_timeout 1s;\n      proxy_read_timeout 1s;\n    }\n";
    };
    return "daemon off;\nmaster_process off;\npid " + d + "/nginx.pid;\nerror_log " + d +
           "/error.log info;\nevents { worker_connections 64; }\nhttp {\n  access_log off;\n"
           "  client_body_temp_path " +
           d + "/client_body;\n  proxy_temp_path " + d + "/proxy;\n  fastcgi_temp_path " + d +
           "/fastcgi;\n  uwsgi_temp_path " + d + "/uwsgi;\n  scgi_temp_path " + d +
           "/scgi;\n  server {\n    listen 127.0.0.1:" + std::to_string(port_) + ";\n" +
           location("slow2", slow2_) + location("slow3", slow3_) + location("fast", fast_) +
           "  }\n}\n";
  }

  // Starts nginx (under faultline when policy is not empty) and waits until it listens.
  // Returns "" when it does, else what went wrong (with faultline's or nginx's stderr).
  std::string start_nginx(const std::string& policy) {
    const std::string conf = path("nginx.conf");
    if (!write_file(conf, config())) return "cannot write " + conf;
    std::vector<std::string> argv{kNginx, "-p", dir_.path(), "-c", conf, "-e", path("error.log")};
    if (!policy.empty()) {
      std::vector<std::string> run{cli(), "run", "-s", session("nginx"), "-p", policy_file(policy),
                                   "--"};
      argv.insert(argv.begin(), run.begin(), run.end());
    }
    if (!nginx_.start(argv)) return "cannot start " + describe(argv);
    for (int i = 0; i < 200 && !exited(nginx_.pid()); ++i) {  // bounded: 200 x 50 ms
      if (can_connect("127.0.0.1", port_)) return "";
      std::this_thread::sleep_for(50ms);
    }
    const RunResult r = nginx_.stop(1s);
    return "nginx did not listen: " + describe(argv, r);
  }

  // True once pid has ended (a zombie until Background reaps it).
  static bool exited(pid_t pid) {
    const std::string stat = read_file("/proc/" + std::to_string(pid) + "/stat").value_or("");
    const std::size_t paren = stat.rfind(')');
    return paren == std::string::npos || stat.compare(paren + 2, 1, "Z") == 0;
  }

  std::string url(const std::string& path) const {
    return "http://127.0.0.1:" + std::to_string(port_) + "/" + path + "/";
  }

  // The two slow requests in flight while the healthy upstream is asked three times: each
  // healthy answer is a quick 200; each slow one is nginx's 504 when its 1 s timeout fires.
  // `phase`, when given, is the one nginx's error log must name ("while reading response
  // header from upstream": proxy_read_timeout; "while connecting": proxy_connect_timeout).
  void expect_slow_ones_time_out_and_fast_one_answers(const std::string& phase = "") {
    const std::vector<std::string> curl{kCurl,        "-s", "-o", "/dev/null",
                                        "--max-time", "10", "-w", "%{http_code} %{time_total}"};
    auto with = [&](const std::string& u, const char* max_time) {
      std::vector<std::string> argv = curl;
      argv[5] = max_time;
      argv.push_back(u);
      return argv;
    };
    Background slow2, slow3;
    ASSERT_TRUE(slow2.start(with(url("slow2"), "10")));
    ASSERT_TRUE(slow3.start(with(url("slow3"), "10")));
    std::this_thread::sleep_for(100ms);  // both slow requests are now inside nginx
    for (int i = 0; i < 3; ++i) {
      const RunResult r = run(with(url("fast"), "2"));
      int code = 0;
      double seconds = 0;
      ASSERT_EQ(std::sscanf(r.out.c_str(), "%d %lf", &code, &seconds), 2) << r.out << r.err;
      EXPECT_EQ(code, 200) << "healthy upstream, request " << i;
      EXPECT_LT(seconds, 0.5) << "healthy upstream, request " << i;
    }
    for (Background* slow : {&slow2, &slow3}) {
      const RunResult r = slow->stop(5s);
      int code = 0;
      double seconds = 0;
      ASSERT_EQ(std::sscanf(r.out.c_str(), "%d %lf", &code, &seconds), 2) << r.out << r.err;
      EXPECT_EQ(code, 504) << r.out;
      EXPECT_GE(seconds, kTimeoutLow) << r.out;
      EXPECT_LE(seconds, kTimeoutHigh) << r.out;
    }
    const std::string log = read_file(path("error.log")).value_or("");
    EXPECT_EQ(count_substr(log, "upstream timed out"), 2u) << log;
    if (!phase.empty()) {
      EXPECT_EQ(count_substr(log, phase), 2u) << log;
    }
  }

  std::vector<std::string> slow_options_;
  HttpServer slow2_, slow3_, fast_;
  Background nginx_;
  int port_ = 0;
};

constexpr const char* kReadPhase = "while reading response header from upstream";

class NativeNginxTest : public NginxTest {
 protected:
  NativeNginxTest() { slow_options_ = {"--delay", "3"}; }
};

// The slow upstreams are servers that take 3 s to answer.
TEST_F(NativeNginxTest, SlowUpstreamsGet504In1sWhileTheHealthyOneAnswers) {
  ASSERT_EQ(start_nginx(""), "");
  expect_slow_ones_time_out_and_fast_one_answers(kReadPhase);
}

using FaultlineNginxTest = NginxTest;

// All three upstreams are instant; latency = 3s on the two slow addresses only (a selector
// list), nginx under faultline. nginx's 1 s timeout fires for them (on the delayed connect or
// the delayed answer, whichever it meets first) while the healthy upstream stays fast.
TEST_F(FaultlineNginxTest, LatencyOnTwoUpstreamsGets504While127001Answers) {
  ASSERT_EQ(start_nginx(policy(R"(
[[fault]]
name = "slow-upstreams"
calls = ["@net"]
addr = ["127.0.0.2:*", "127.0.0.3:*"]
latency = "3s"
)")),
            "");
  expect_slow_ones_time_out_and_fast_one_answers();
}

// The same with the latency on received data only (the receive calls named, connect left
// alone): nginx connects at once, sends its request, and its proxy_read_timeout is what fires,
// as against the slow servers of the native test.
TEST_F(FaultlineNginxTest, ReceiveLatencyFiresProxyReadTimeout) {
  ASSERT_EQ(start_nginx(policy(R"(
[[fault]]
name = "slow-answers"
calls = ["recv", "recvfrom", "recvmsg", "read", "readv"]
addr = ["127.0.0.2:*", "127.0.0.3:*"]
latency = "3s"
)")),
            "");
  expect_slow_ones_time_out_and_fast_one_answers(kReadPhase);
}

}  // namespace
}  // namespace fltest
