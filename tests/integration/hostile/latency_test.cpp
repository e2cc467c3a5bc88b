// `latency` on @net: a network that behaves like a network (docs/network.md, "latency";
// docs/reliability.md, "Held sockets"). The delay is in the socket, not in the call: data
// becomes visible that much after it arrived, a connect completes that much later, and the
// program's own timeouts fire on time. fl_latency_client waits for its replies every way a
// program can (edge- and level-triggered epoll, poll, ppoll, select) against an echo server
// it runs itself, and reports what it saw: bytes early or lost, readiness followed by
// EAGAIN, spurious wakeups, hangs. Python's settimeout() is checked as a real client's
// deadline. Live edits release a held socket. Every outcome is what the program prints.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#include "harness.h"

namespace fltest {
namespace {

const std::string kClient = std::string(FL_PROGRAMS_DIR) + "/fl_latency_client";

// A number after `key=` in the program's line; -1 if absent.
long field(const std::string& line, const std::string& key) {
  const std::size_t at = line.find(key + "=");
  if (at == std::string::npos) return -1;
  return std::strtol(line.c_str() + at + key.size() + 1, nullptr, 10);
}

class HostileLatencyTest : public IntegrationTest {
 protected:
  void SetUp() override {
    IntegrationTest::SetUp();
    port_ = free_port();
    ASSERT_GT(port_, 0);
  }
  // A latency fault on the client's side of the server's port: the calls given (the
  // server's own receives see the client's ephemeral port and are not matched).
  std::string policy(const std::string& latency, const std::string& calls, bool log = false) {
    return policy_with("latency = \"" + latency + "\"", calls, log);
  }
  // Any action line; `addr` on the server's port unless `addr` is given.
  std::string policy_with(const std::string& action, const std::string& calls, bool log = false,
                          int seed = 7, const std::string& addr = "") {
    const std::string file = path("policy.toml");
    std::string body = "version = 1\nseed = " + std::to_string(seed) + "\n";
    if (log) body += "[log]\npath = \"" + path("events.jsonl") + "\"\n";
    body += "[[fault]]\nname = \"slow\"\ncalls = [" + calls + "]\naddr = \"" +
            (addr.empty() ? "127.0.0.1:" + std::to_string(port_) : addr) + "\"\n" + action + "\n";
    EXPECT_TRUE(write_file(file, body));
    std::remove(path("events.jsonl").c_str());
    return file;
  }
  RunResult client(const std::string& policy_file, const std::vector<std::string>& args) {
    std::vector<std::string> argv = {"run", "-p",    policy_file,
                                     "--",  kClient, std::to_string(port_)};
    argv.insert(argv.end(), args.begin(), args.end());
    RunOptions options;
    options.timeout = 60s;
    return faultline(argv, options);
  }
  int port_ = 0;
};

constexpr const char* kRecvCalls = R"("connect", "recv", "recvfrom", "recvmsg", "read")";

// Each waiter, 5 request/reply rounds under 200 ms of latency. The reply is two arrivals
// 30 ms apart; each becomes visible 200 ms after it arrived. Nothing early, nothing lost,
// no readiness without data, no wait that returns before its timeout with nothing, no wait
// that spins (CPU time), and an edge-triggered epoll gets an edge for each half (it would
// hang otherwise).
TEST_F(HostileLatencyTest, EveryWaiterGetsEveryByteOnTimeAndNoneEarly) {
  const std::string file = policy("200ms", kRecvCalls);
  for (const char* mode : {"poll", "ppoll", "select", "epoll-lt", "epoll-et"}) {
    SCOPED_TRACE(mode);
    const RunResult r = client(file, {mode, "5"});
    ASSERT_EQ(r.status(), 0) << r.out << r.err;
    const std::string line = r.out;
    EXPECT_EQ(field(line, "bytes"), 5 * 36) << line;
    EXPECT_EQ(field(line, "bad"), 0) << line;
    EXPECT_EQ(field(line, "spurious"), 0) << line;
    EXPECT_EQ(field(line, "false_ready"), 0) << line;
    EXPECT_GE(field(line, "min_ms"), 200) << line;  // unfaulted: ~30 ms
    EXPECT_LT(field(line, "max_ms"), 1500) << line;
    // About 1.2 s of waiting: a wait that spun on invisible data would burn most of it.
    EXPECT_LT(field(line, "cpu_ms"), 400) << line;
  }
}

// A blocking recv whose SO_RCVTIMEO (500 ms) is shorter than the latency (3 s): EAGAIN
// after the timeout, as the kernel says it.
TEST_F(HostileLatencyTest, BlockingRecvTimesOutAtItsSoRcvtimeo) {
  const RunResult r = client(policy("3s", R"("recv")"), {"rcvtimeo", "500"});
  ASSERT_EQ(r.status(), 0) << r.out << r.err;
  EXPECT_EQ(r.out.rfind("recv errno=EAGAIN", 0), 0u) << r.out;
  EXPECT_GE(field(r.out, "after_ms"), 450) << r.out;
  EXPECT_LT(field(r.out, "after_ms"), 1500) << r.out;
}

// A non-blocking connect under 500 ms of latency: EINPROGRESS, not writable at once,
// writable after about the latency, SO_ERROR 0.
TEST_F(HostileLatencyTest, NonBlockingConnectIsWritableOnlyAfterTheLatency) {
  const RunResult r = client(policy("500ms", R"("connect")"), {"connect-nb", "5000"});
  ASSERT_EQ(r.status(), 0) << r.out << r.err;
  EXPECT_EQ(r.out.rfind("connect errno=EINPROGRESS early=0 ", 0), 0u) << r.out;
  EXPECT_GE(field(r.out, "writable_ms"), 450) << r.out;
  EXPECT_LT(field(r.out, "writable_ms"), 3000) << r.out;
  EXPECT_EQ(field(r.out, "so_error"), 0) << r.out;
}

// A listener under 500 ms of latency (from its first accept on): a new connection is
// reported readable about 500 ms after it arrived, and accepted then.
TEST_F(HostileLatencyTest, ListenerReportsANewConnectionAfterTheLatency) {
  const RunResult r = client(policy("500ms", R"("accept", "accept4")"), {"accept-nb", "5000"});
  ASSERT_EQ(r.status(), 0) << r.out << r.err;
  EXPECT_EQ(r.out.rfind("accept first=EAGAIN early=0 ", 0), 0u) << r.out;
  EXPECT_GE(field(r.out, "readable_ms"), 450) << r.out;
  EXPECT_LT(field(r.out, "readable_ms"), 3000) << r.out;
  EXPECT_EQ(field(r.out, "accepted"), 1) << r.out;
}

// Python's settimeout(1.0): a reply 3 s away times out after the program's second; one
// 200 ms away arrives. The server runs outside the session.
TEST_F(HostileLatencyTest, PythonSettimeoutFiresOnTime) {
  Background server;
  ASSERT_TRUE(server.start({kClient, std::to_string(port_), "serve"}));
  ASSERT_EQ(server.read_line(10s).value_or(""), "ready") << server.err();
  const std::string script = path("client.py");
  ASSERT_TRUE(write_file(script, R"(import socket, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.settimeout(1.0)
s.sendall(b"hello")
start = time.monotonic()
got = b""
try:
    while len(got) < 5:
        got += s.recv(16)
    print("reply %s after %.3f" % (got.decode(), time.monotonic() - start))
except socket.timeout:
    print("timeout after %.3f" % (time.monotonic() - start))
)"));
  RunOptions options;
  options.timeout = 30s;
  for (const char* latency : {"3s", "200ms"}) {
    SCOPED_TRACE(latency);
    const RunResult r = faultline({"run", "-p", policy(latency, kRecvCalls), "--", "/usr/bin/env",
                                   "python3", script, std::to_string(port_)},
                                  options);
    ASSERT_EQ(r.status(), 0) << r.out << r.err;
    double seconds = -1;
    if (std::string(latency) == "3s") {
      ASSERT_EQ(std::sscanf(r.out.c_str(), "timeout after %lf", &seconds), 1) << r.out;
      EXPECT_GE(seconds, 0.9) << r.out;
      EXPECT_LE(seconds, 1.5) << r.out;
    } else {
      ASSERT_EQ(std::sscanf(r.out.c_str(), "reply hello after %lf", &seconds), 1) << r.out;
      EXPECT_GE(seconds, 0.2) << r.out;
      EXPECT_LT(seconds, 1.0) << r.out;
    }
  }
  server.stop();
}

// A blocking recv held by a 60 s latency is released live: disable, remove, panic, an edit
// that shortens the latency, or one that points the fault at another peer. The program's recv
// returns well within a second.
TEST_F(HostileLatencyTest, LiveEditsReleaseAHeldSocket) {
  const std::vector<std::vector<std::string>> lifts = {
      {"disable", "slow"},
      {"remove", "slow"},
      {"panic"},
      {"set", "slow", "latency=10ms"},
      {"set", "slow", "addr=127.0.0.1:1"}};  // another peer: no longer this socket's fault
  for (const auto& lift : lifts) {
    SCOPED_TRACE(lift[0]);
    const std::string name = session(lift[0] + "latency");
    Background child;
    ASSERT_TRUE(child.start({cli(), "run", "-s", name, "-p", policy("60s", R"("recv")"), "--",
                             kClient, std::to_string(port_), "hold"}));
    ASSERT_EQ(child.read_line(15s).value_or("<nothing>"), "holding") << child.err();
    for (int i = 0; i < 200; ++i) {  // bounded: until the recv was taken
      const RunResult status = faultline({"status", name, "--json"});
      if (status_json_injected(status.out, "slow").value_or(0) >= 1) break;
      std::this_thread::sleep_for(25ms);
    }
    std::this_thread::sleep_for(300ms);  // the reply has arrived, and is held
    std::vector<std::string> command = {lift[0], name};
    command.insert(command.end(), lift.begin() + 1, lift.end());
    const auto start = std::chrono::steady_clock::now();
    const RunResult lifted = faultline(command);
    EXPECT_EQ(lifted.status(), 0) << lifted.err;
    const std::string line = child.read_line(20s).value_or("<nothing>");
    const auto after = std::chrono::steady_clock::now() - start;
    EXPECT_EQ(line.rfind("got 5 after_ms=", 0), 0u) << line;
    EXPECT_LT(after, 1s) << line;
    const RunResult end = child.stop(10s);
    EXPECT_EQ(end.status(), 0) << end.err;
  }
}

// The session's TTL releases a held socket too: the recv held by 60 s of latency returns
// after about the TTL (1 s).
TEST_F(HostileLatencyTest, TtlReleasesAHeldSocket) {
  const std::string file = policy("60s", R"("recv")");
  auto body = read_file(file);
  ASSERT_TRUE(body.has_value());
  ASSERT_TRUE(write_file(file, *body + "[safety]\nttl = \"1s\"\n"));
  const RunResult r = client(file, {"hold"});
  ASSERT_EQ(r.status(), 0) << r.out << r.err;
  const std::string line = split_lines(r.out).back();
  EXPECT_EQ(line.rfind("got 5 after_ms=", 0), 0u) << r.out;
  EXPECT_LT(field(line, "after_ms"), 3000) << r.out;
}

// A blocking recv held by latency, interrupted by a handler installed without SA_RESTART:
// EINTR, as the kernel gives it, after about 300 ms (not the latency's 60 s).
TEST_F(HostileLatencyTest, CaughtSignalInterruptsAHeldRecv) {
  const RunResult r = client(policy("60s", R"("recv")"), {"eintr"});
  ASSERT_EQ(r.status(), 0) << r.out << r.err;
  EXPECT_EQ(r.out.rfind("recv errno=EINTR ", 0), 0u) << r.out;
  EXPECT_LT(field(r.out, "after_ms"), 2000) << r.out;
  EXPECT_EQ(field(r.out, "alarms"), 1) << r.out;
}

// One event per socket held, not one per arrival or per call.
TEST_F(HostileLatencyTest, OneEventPerHeldSocket) {
  const RunResult r = client(policy("50ms", kRecvCalls, true), {"poll", "10"});
  ASSERT_EQ(r.status(), 0) << r.out << r.err;
  const auto log = read_file(path("events.jsonl"));
  ASSERT_TRUE(log.has_value());
  EXPECT_EQ(count_substr(*log, "\"latency\""), 1u) << *log;
}

// ---- loss ------------------------------------------------------------------------------

class HostileLossTest : public HostileLatencyTest {
 protected:
  // The delay_ns of every `loss` event in the log, in order (0 when it has none).
  std::vector<long> loss_delays() {
    std::vector<long> out;
    for (const std::string& line : split_lines(read_file(path("events.jsonl")).value_or(""))) {
      if (line.find("\"action\":\"loss\"") == std::string::npos) continue;
      const std::size_t at = line.find("\"delay_ns\":");
      out.push_back(at == std::string::npos ? 0 : std::strtol(line.c_str() + at + 11, nullptr, 10));
    }
    return out;
  }
};

// A TCP client under loss = 0.3: every byte arrives, in order; each loss is an event whose
// delay is a retransmission's (200 ms, then 200 + 400 ms, ...); the same seed gives the same
// delays again.
TEST_F(HostileLossTest, TcpSegmentsComeLateAsRetransmissionsAndTheSeedRepeatsThem) {
  std::vector<long> first;
  for (int run = 0; run < 2; ++run) {
    const RunResult r = client(policy_with("loss = 0.3", kRecvCalls, true), {"poll", "15"});
    ASSERT_EQ(r.status(), 0) << r.out << r.err;
    EXPECT_EQ(field(r.out, "bytes"), 15 * 36) << r.out;
    EXPECT_EQ(field(r.out, "bad"), 0) << r.out;
    EXPECT_EQ(field(r.out, "false_ready"), 0) << r.out;
    const std::vector<long> delays = loss_delays();
    EXPECT_FALSE(delays.empty());
    for (long d : delays) {
      bool known = false;
      for (int k = 1; k <= 6; ++k) known |= d == 200'000'000L * ((1L << k) - 1);
      EXPECT_TRUE(known) << d;
    }
    if (run == 0)
      first = delays;
    else
      EXPECT_EQ(delays, first);
  }
}

// UDP: a datagram drawn lost is gone. Sent: reported sent, never received; received (with
// recv or recvmmsg): read and discarded, never seen. 1,000 datagrams at loss = 0.3: about 700
// arrive (4 sigma: 58).
TEST_F(HostileLossTest, LostDatagramsAreGone) {
  for (const char* mode : {"udp-send", "udp-recv", "udp-mmsg"}) {
    SCOPED_TRACE(mode);
    const bool send = std::string(mode) == "udp-send";
    const std::string file =
        send ? policy_with("loss = 0.3", R"("send")")
             : policy_with("loss = 0.3", R"("recv", "recvmmsg")", false, 7, "127.0.0.1:*");
    const RunResult r = client(file, {mode, "1000"});
    ASSERT_EQ(r.status(), 0) << r.out << r.err;
    EXPECT_EQ(field(r.out, "ok"), 1000) << r.out;  // every send reports success
    EXPECT_NEAR(field(r.out, "received"), 700, 58) << r.out;
  }
}

// A connect whose SYN is drawn lost completes a second later (or 3 s, 7 s... for further
// losses): the program's own clock agrees with the event's delay.
TEST_F(HostileLossTest, LostSynDelaysTheConnect) {
  for (int seed = 1; seed <= 16; ++seed) {  // bounded: the first seed that loses the SYN
    const RunResult r =
        client(policy_with("loss = 0.5", R"("connect")", true, seed), {"connect-nb", "20000"});
    ASSERT_EQ(r.status(), 0) << r.out << r.err;
    const std::vector<long> delays = loss_delays();
    if (delays.empty()) {
      EXPECT_LT(field(r.out, "writable_ms"), 500) << r.out;
      continue;
    }
    ASSERT_EQ(delays.size(), 1u);
    EXPECT_EQ(r.out.rfind("connect errno=EINPROGRESS early=0 ", 0), 0u) << r.out;
    EXPECT_GE(field(r.out, "writable_ms"), delays[0] / 1'000'000 - 50) << r.out;
    EXPECT_LT(field(r.out, "writable_ms"), delays[0] / 1'000'000 + 1500) << r.out;
    return;
  }
  ADD_FAILURE() << "no seed of 16 lost a SYN at loss = 0.5";
}

// ---- bandwidth ---------------------------------------------------------------------------

class HostileBandwidthTest : public HostileLatencyTest {};

constexpr const char* kBandwidthCalls = R"("recv", "read", "send", "write")";

// 1 MiB downloaded over loopback at 256 KiB/s: the first 64 KiB are the bucket's burst, the
// rest come at the rate: about 3.75 s (unfaulted: a few ms).
TEST_F(HostileBandwidthTest, DownloadTakesAsLongAsItsBytesNeed) {
  const RunResult r =
      client(policy_with("bandwidth = \"256KiB/s\"", kBandwidthCalls), {"download", "1024"});
  ASSERT_EQ(r.status(), 0) << r.out << r.err;
  EXPECT_EQ(field(r.out, "bytes"), 1048576) << r.out;
  EXPECT_GE(field(r.out, "ms"), 3000) << r.out;
  EXPECT_LE(field(r.out, "ms"), 6000) << r.out;
}

// 512 KiB sent at 256 KiB/s, by a blocking sender (short sends, each after a wait) and by a
// non-blocking one (poll says writable only when the budget allows a chunk): about 1.75 s
// each, every byte sent, no writable report followed by EAGAIN.
TEST_F(HostileBandwidthTest, BlockingAndNonBlockingSendersSeeTheBudget) {
  for (const char* how : {"block", "nb"}) {
    SCOPED_TRACE(how);
    const RunResult r =
        client(policy_with("bandwidth = \"256KiB/s\"", kBandwidthCalls), {"upload", "512", how});
    ASSERT_EQ(r.status(), 0) << r.out << r.err;
    EXPECT_EQ(field(r.out, "bytes"), 524288) << r.out;
    EXPECT_GE(field(r.out, "ms"), 1300) << r.out;
    EXPECT_LE(field(r.out, "ms"), 4000) << r.out;
    EXPECT_GT(field(r.out, "short"), 0) << r.out;
    EXPECT_EQ(field(r.out, "false_ready"), 0) << r.out;
  }
}

}  // namespace
}  // namespace fltest
