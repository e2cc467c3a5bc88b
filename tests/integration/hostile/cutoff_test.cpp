// A connection cut mid-stream and a slow disk (docs/network.md, "eof and after_bytes";
// docs/policy.md, `bandwidth`). `eof` + `after_bytes` must deliver exactly N bytes and then a
// clean end-of-file that the peer sees too (curl exit 18, python's IncompleteRead); `reset`,
// `corrupt` and `blackhole` with `after_bytes` act at exactly N bytes, in either direction;
// `bandwidth` on a file holds its writes as long as their bytes need, shared by the threads
// writing it, and `panic` releases a held write. The far end (fl_cut_server) runs without the
// preload and reports what it saw; every figure asserted is what a program printed.
#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <thread>

#include "harness.h"

namespace fltest {
namespace {

const std::string kServer = std::string(FL_PROGRAMS_DIR) + "/fl_cut_server";
const std::string kClient = std::string(FL_PROGRAMS_DIR) + "/fl_cut_client";
const std::string kFileRate = std::string(FL_PROGRAMS_DIR) + "/fl_file_rate";
const char* const kCurl = "/usr/bin/curl";
const char* const kPython = "/usr/bin/python3";

class HostileCutoffTest : public IntegrationTest {
 protected:
  std::string policy(const std::string& body) {
    const std::string file = path("policy.toml");
    EXPECT_TRUE(write_file(file, "version = 1\nseed = 7\n" + body));
    return file;
  }

  // Starts fl_cut_server in `mode`; returns its port (0 on failure).
  int start_server(Background& server, const std::string& mode) {
    if (!server.start({kServer, mode})) return 0;
    const std::string line = server.read_line(10s).value_or("");
    return line.rfind("port ", 0) == 0 ? std::stoi(line.substr(5)) : 0;
  }

  // The server's verdict on the client's end ("closed N", "reset N", "open N").
  static std::string verdict(Background& server) {
    std::string line = server.read_line(20s).value_or("<nothing>");
    server.stop(5s);
    return line;
  }
};

constexpr const char* kEofAt64KiB = R"(
[[fault]]
name = "cut"
calls = ["@net"]
addr = "127.0.0.1:*"
eof = true
after_bytes = "64KiB"
)";

// curl: the transfer is cut short (exit 18, CURLE_PARTIAL_FILE) after exactly 65536 bytes on
// the connection (the response's header plus its body), and the server reads the close.
TEST_F(HostileCutoffTest, EofAfterBytesCutsCurlAtExactly64KiB) {
  if (!file_exists(kCurl)) GTEST_SKIP() << "curl is not installed";
  Background server;
  const int port = start_server(server, "http");
  ASSERT_GT(port, 0);
  const RunResult r = faultline({"run", "-p", policy(kEofAt64KiB), "--", kCurl, "-s", "-o",
                                 "/dev/null", "-w", "%{size_header} %{size_download}",
                                 "http://127.0.0.1:" + std::to_string(port) + "/"});
  EXPECT_EQ(r.status(), 18) << r.out << r.err;
  long header = -1, body = -1;
  ASSERT_EQ(std::sscanf(r.out.c_str(), "%ld %ld", &header, &body), 2) << r.out;
  EXPECT_GT(header, 0);
  EXPECT_EQ(header + body, 65536) << r.out;
  EXPECT_EQ(verdict(server).rfind("closed ", 0), 0u);
}

// python's http.client raises IncompleteRead with exactly the bytes before the cut.
TEST_F(HostileCutoffTest, EofAfterBytesGivesPythonIncompleteRead) {
  if (!file_exists(kPython)) GTEST_SKIP() << "python3 is not installed";
  const std::string script = path("client.py");
  ASSERT_TRUE(write_file(script, R"(import http.client, sys
c = http.client.HTTPConnection("127.0.0.1", int(sys.argv[1]), timeout=10)
c.request("GET", "/")
r = c.getresponse()
head = len("HTTP/1.1 200 OK\r\n") + sum(len(k) + len(v) + 4 for k, v in r.getheaders()) + 2
try:
    print("complete", head + len(r.read()))
except http.client.IncompleteRead as e:
    print("IncompleteRead", head + len(e.partial))
)"));
  Background server;
  const int port = start_server(server, "http");
  ASSERT_GT(port, 0);
  const RunResult r =
      faultline({"run", "-p", policy(kEofAt64KiB), "--", kPython, script, std::to_string(port)});
  EXPECT_EQ(r.status(), 0) << r.out << r.err;
  EXPECT_EQ(r.out, "IncompleteRead 65536\n") << r.err;
  EXPECT_EQ(verdict(server).rfind("closed ", 0), 0u);
}

// A raw client: exactly 65536 intact bytes, end-of-file, and end-of-file again on the next
// receive (the kernel would hand over data still queued after a shutdown).
TEST_F(HostileCutoffTest, EofIsCleanAndStaysEof) {
  Background server;
  const int port = start_server(server, "raw");
  ASSERT_GT(port, 0);
  const RunResult r =
      faultline({"run", "-p", policy(kEofAt64KiB), "--", kClient, std::to_string(port), "read"});
  EXPECT_EQ(r.status(), 0) << r.err;
  EXPECT_EQ(r.out, "eof 65536 first_bad -1\nagain 0\n") << r.err;
  EXPECT_EQ(verdict(server).rfind("closed ", 0), 0u);
}

// reset after N bytes received: the client gets ECONNRESET after exactly N, the server a reset.
TEST_F(HostileCutoffTest, ResetAfterBytesOnReceive) {
  Background server;
  const int port = start_server(server, "raw");
  ASSERT_GT(port, 0);
  const RunResult r = faultline({"run", "-p", policy(R"(
[[fault]]
name = "cut"
calls = ["recv"]
reset = true
after_bytes = "100000"
)"),
                                 "--", kClient, std::to_string(port), "read"});
  EXPECT_EQ(r.status(), 0) << r.err;
  EXPECT_EQ(r.out, "error ECONNRESET 100000 first_bad -1\n") << r.err;
  EXPECT_EQ(verdict(server).rfind("reset ", 0), 0u);
}

// reset after N bytes sent: the send that crosses N is cut at it, the next fails ECONNRESET,
// and the server sees the reset after at most N bytes (a RST discards what was still in
// flight, as a real one does: under load the server may get fewer).
TEST_F(HostileCutoffTest, ResetAfterBytesOnSend) {
  Background server;
  const int port = start_server(server, "sink");
  ASSERT_GT(port, 0);
  const RunResult r = faultline({"run", "-p", policy(R"(
[[fault]]
name = "cut"
calls = ["send"]
reset = true
after_bytes = "100000"
)"),
                                 "--", kClient, std::to_string(port), "send"});
  EXPECT_EQ(r.status(), 0) << r.err;
  EXPECT_EQ(r.out, "error ECONNRESET 100000\n") << r.err;
  const std::string seen = verdict(server);
  ASSERT_EQ(seen.rfind("reset ", 0), 0u) << seen;
  const long received = std::stol(seen.substr(6));
  EXPECT_GT(received, 0) << seen;
  EXPECT_LE(received, 100000) << seen;
}

// corrupt after N bytes: the first N bytes are intact, later ones are not.
TEST_F(HostileCutoffTest, CorruptAfterBytesSparesTheFirstBytes) {
  Background server;
  const int port = start_server(server, "raw");
  ASSERT_GT(port, 0);
  const RunResult r = faultline({"run", "-p", policy(R"(
[[fault]]
name = "flip"
calls = ["recv"]
corrupt = 8
after_bytes = "64KiB"
)"),
                                 "--", kClient, std::to_string(port), "read"});
  EXPECT_EQ(r.status(), 0) << r.err;
  const auto at = r.out.find("first_bad ");
  ASSERT_NE(at, std::string::npos) << r.out;
  EXPECT_GE(std::stoll(r.out.substr(at + 10)), 65536) << r.out;
}

// blackhole after N bytes: the stream stalls at exactly N (the client's 2 s SO_RCVTIMEO), and
// stays stalled when the client then sends (its send direction is far from the boundary).
TEST_F(HostileCutoffTest, BlackholeAfterBytesStallsAtTheBoundary) {
  Background server;
  const int port = start_server(server, "raw");
  ASSERT_GT(port, 0);
  const RunResult r = faultline({"run", "-p", policy(R"(
[[fault]]
name = "stall"
calls = ["@net"]
addr = "127.0.0.1:*"
blackhole = true
after_bytes = "64KiB"
)"),
                                 "--", kClient, std::to_string(port), "read"});
  EXPECT_EQ(r.status(), 0) << r.err;
  EXPECT_EQ(r.out, "error EAGAIN 65536 first_bad -1\nagain EAGAIN\n") << r.err;
}

constexpr const char* kSlowDisk = R"(
[[fault]]
name = "slow-disk"
calls = ["@write"]
path = "*/slow.bin"
bandwidth = "1MiB/s"
)";

long done_ms(const std::string& out) {
  const auto at = out.find("done ");
  return at == std::string::npos ? -1 : std::stol(out.substr(at + 5));
}

// 4 MiB at 1 MiB/s takes about 4 s, whether one thread writes it or two threads share the
// file; a file the fault's path does not match is not slowed.
TEST_F(HostileCutoffTest, BandwidthHoldsFileWritesAtTheRate) {
  const std::string file = policy(kSlowDisk);
  RunOptions options;
  options.timeout = 60s;
  for (const char* threads : {"1", "2"}) {
    const RunResult slow = faultline(
        {"run", "-p", file, "--", kFileRate, path("slow.bin"), "4096", threads, "64"}, options);
    EXPECT_EQ(slow.status(), 0) << slow.out << slow.err;
    const long ms = done_ms(slow.out);
    EXPECT_GE(ms, 3000) << threads << " thread(s): " << slow.out;
    EXPECT_LE(ms, 6000) << threads << " thread(s): " << slow.out;
  }
  const RunResult fast =
      faultline({"run", "-p", file, "--", kFileRate, path("fast.bin"), "4096", "1", "64"}, options);
  EXPECT_EQ(fast.status(), 0) << fast.out << fast.err;
  EXPECT_GE(done_ms(fast.out), 0) << fast.out;
  EXPECT_LT(done_ms(fast.out), 1000) << fast.out;
}

// Reads too: dd reading 2 MiB at 1 MiB/s takes about 2 s (generous bounds).
TEST_F(HostileCutoffTest, BandwidthHoldsFileReadsAtTheRate) {
  ASSERT_TRUE(write_file(path("big.bin"), std::string(2u << 20, 'r')));
  const std::string file = policy(R"(
[[fault]]
name = "slow-read"
calls = ["@read"]
path = "*/big.bin"
bandwidth = "1MiB/s"
)");
  RunOptions options;
  options.timeout = 60s;
  const auto start = std::chrono::steady_clock::now();
  const RunResult r = faultline(
      {"run", "-p", file, "--", "/bin/dd", "if=" + path("big.bin"), "of=/dev/null", "bs=64k"},
      options);
  const auto took = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(r.status(), 0) << r.err;
  EXPECT_NE(r.err.find("2097152 bytes"), std::string::npos) << r.err;  // dd's own count
  EXPECT_GE(took, 1500ms);
  EXPECT_LE(took, 5s);
}

// A write held for 64 s by its bandwidth ends within about a second of `faultline panic`.
TEST_F(HostileCutoffTest, PanicReleasesAHeldFileWrite) {
  const std::string file = policy(R"(
[[fault]]
name = "slow-disk"
calls = ["@write"]
path = "*/slow.bin"
bandwidth = "1KiB/s"
)");
  const std::string name = session("cutoff");
  Background child;
  ASSERT_TRUE(child.start(
      {cli(), "run", "-s", name, "-p", file, "--", kFileRate, path("slow.bin"), "64", "1", "64"}));
  ASSERT_EQ(child.read_line(15s).value_or("<nothing>"), "start") << child.err();
  for (int i = 0; i < 200; ++i) {
    if (status_json_injected(faultline({"status", name, "--json"}).out, "slow-disk").value_or(0))
      break;
    std::this_thread::sleep_for(25ms);
  }
  std::this_thread::sleep_for(300ms);
  const auto start = std::chrono::steady_clock::now();
  EXPECT_EQ(faultline({"panic", name}).status(), 0);
  const std::string line = child.read_line(20s).value_or("<nothing>");
  const auto after = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(line.rfind("done ", 0), 0u) << line;
  EXPECT_LT(after, 2s);
  EXPECT_EQ(child.stop(10s).status(), 0);
}

}  // namespace
}  // namespace fltest
