// The seccomp backend's actions beyond an answer (controller/seccomp/supervisor.cpp): reset,
// blackhole and eof on a Go program's own sockets and a static C program's, lie on fsync, and
// short and corrupt made on the program's behalf. The supervisor acts through a duplicate of
// the program's descriptor, so what is asserted is what the program says (Go's own error
// texts, the C library's strerror, the counts it got), what its peer — a socket of this test
// — really saw on the wire (a RST: ECONNRESET on its receive), and the file on disk.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "harness.h"

namespace fltest {
namespace {

const std::string kStatic = FL_STATIC_IO;
#ifdef FL_GO_HTTPCHECK
const std::string kGoHttp = FL_GO_HTTPCHECK;
const std::string kGoServe = FL_GO_HTTPSERVE;
#define SKIP_WITHOUT_GO() (void)0
#else
const std::string kGoHttp, kGoServe;
#define SKIP_WITHOUT_GO() GTEST_SKIP() << "go is not installed: the Go programs were not built"
#endif

sockaddr_in loopback(int port) {
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  sa.sin_port = htons(static_cast<std::uint16_t>(port));
  return sa;
}

// A TCP peer on 127.0.0.1 that accepts one connection and receives from it until the end,
// recording how the connection ended: the errno of its last receive (ECONNRESET: a RST), or
// 0 for an orderly end-of-file. With `reply`, it answers "pong\n" to what it receives first.
// Bounded: 15 s for the connection, 15 s per receive.
class Peer {
 public:
  explicit Peer(bool reply = false) : reply_(reply) {
    fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in sa = loopback(0);
    socklen_t len = sizeof sa;
    if (bind(fd_, reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0 && listen(fd_, 4) == 0 &&
        getsockname(fd_, reinterpret_cast<sockaddr*>(&sa), &len) == 0)
      port_ = ntohs(sa.sin_port);
    thread_ = std::thread([this] { serve(); });
  }
  ~Peer() {
    if (thread_.joinable()) thread_.join();
    close(fd_);
  }
  int port() const { return port_; }
  // Waits for the connection's end; the last receive's errno (-1: never connected/ended).
  int ended_with() {
    if (thread_.joinable()) thread_.join();
    return ended_;
  }
  std::string received() const { return received_; }

 private:
  void serve() {
    pollfd p{fd_, POLLIN, 0};
    if (poll(&p, 1, 15'000) != 1) return;
    const int conn = accept(fd_, nullptr, nullptr);
    if (conn < 0) return;
    const timeval limit{15, 0};
    setsockopt(conn, SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof limit);
    for (int i = 0; i < 100; ++i) {
      char buf[256];
      const ssize_t n = recv(conn, buf, sizeof buf, 0);
      if (n > 0) {
        received_.append(buf, static_cast<std::size_t>(n));
        if (reply_ && i == 0) send(conn, "pong\n", 5, MSG_NOSIGNAL);
        continue;
      }
      ended_ = n == 0 ? 0 : errno;
      break;
    }
    close(conn);
  }
  bool reply_;
  int fd_ = -1;
  int port_ = 0;
  int ended_ = -1;
  std::string received_;
  std::thread thread_;
};

class SeccompActionsTest : public IntegrationTest {
 protected:
  RunResult run_under(const std::string& faults, const std::vector<std::string>& command,
                      const std::vector<std::string>& extra = {}) {
    const std::string file = path("policy-" + std::to_string(++policies_) + ".toml");
    EXPECT_TRUE(write_file(file, "version = 1\n[[fault]]\nname = \"f\"\n" + faults));
    std::vector<std::string> args = {"run", "--backend", "seccomp", "-p", file};
    args.insert(args.end(), extra.begin(), extra.end());
    args.push_back("--");
    args.insert(args.end(), command.begin(), command.end());
    return faultline(args);
  }
  int policies_ = 0;
};

// ---- reset ----------------------------------------------------------------------------------

TEST_F(SeccompActionsTest, ResetOnAReadSendsThePeerARealRst) {
  Peer peer;
  ASSERT_NE(peer.port(), 0);
  const RunResult r = run_under("calls = [\"read\"]\nreset = true\n",
                                {kStatic, "echo", std::to_string(peer.port())});
  EXPECT_EQ(r.status(), 0) << r.out << r.err;
  // This read and the next fail as after a reset (the shim's answers).
  EXPECT_EQ(r.out, "send: ok\nread: Connection reset by peer\nread: Connection reset by peer\n")
      << r.err;
  EXPECT_EQ(peer.ended_with(), ECONNRESET) << "the peer must see a RST, not a close";
  EXPECT_EQ(peer.received(), "ping\n");
}

TEST_F(SeccompActionsTest, GoHttpResetIsGosConnectionResetByPeer) {
  SKIP_WITHOUT_GO();
  const RunResult r = run_under("calls = [\"read\"]\nreset = true\n", {kGoHttp});
  EXPECT_EQ(r.status(), 1) << r.out << r.err;
  EXPECT_NE(r.out.find("connection reset by peer"), std::string::npos) << r.out << r.err;
}

TEST_F(SeccompActionsTest, GoHttpConnectAndAcceptReset) {
  SKIP_WITHOUT_GO();
  for (const char* call : {"connect", "accept4"}) {
    const RunResult r =
        run_under("calls = [\"" + std::string(call) + "\"]\nreset = true\n", {kGoHttp});
    EXPECT_EQ(r.status(), 1) << call << "\n" << r.out << r.err;
    // A reset accept is a RST at the client: its write reports it (the first as "reset by
    // peer", a later one as EPIPE: Go's transport retries the GET on a new connection), or
    // its read does.
    const bool reset =
        r.out.find("connection reset by peer") != std::string::npos ||
        (std::string(call) == "accept4" && r.out.find("write: broken pipe") != std::string::npos);
    EXPECT_TRUE(reset) << call << "\n" << r.out << r.err;
  }
}

// A Go net/http server whose reads are reset: the client (this test) gets a RST.
TEST_F(SeccompActionsTest, GoServerResetReachesItsClient) {
  SKIP_WITHOUT_GO();
  ASSERT_TRUE(write_file(path("p.toml"),
                         "version = 1\n[[fault]]\nname = \"r\"\ncalls = [\"read\"]\nreset = "
                         "true\n"));
  Background server;
  ASSERT_TRUE(
      server.start({cli(), "run", "--backend", "seccomp", "-p", path("p.toml"), "--", kGoServe}));
  const std::string line = server.read_line(15s).value_or("");
  ASSERT_TRUE(line.starts_with("listening 127.0.0.1:")) << line << server.err();
  const int port = std::stoi(line.substr(line.rfind(':') + 1));
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  const sockaddr_in sa = loopback(port);
  ASSERT_EQ(connect(fd, reinterpret_cast<const sockaddr*>(&sa), sizeof sa), 0);
  const timeval limit{15, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof limit);
  // The server reads as soon as it accepted, so its RST may come before the request is sent:
  // then the send reports it, else the receive.
  const std::string request = "GET / HTTP/1.0\r\n\r\n";
  int err = 0;
  if (send(fd, request.data(), request.size(), MSG_NOSIGNAL) < 0) {
    err = errno;
  } else {
    char buf[256];
    const ssize_t n = recv(fd, buf, sizeof buf, 0);
    err = n < 0 ? errno : 0;
    EXPECT_EQ(n, -1) << std::string(buf, n > 0 ? static_cast<std::size_t>(n) : 0);
  }
  close(fd);
  EXPECT_EQ(err, ECONNRESET) << "the server's connection must be reset, not answered";
  server.stop(1s);
}

// ---- blackhole ------------------------------------------------------------------------------

TEST_F(SeccompActionsTest, GoHttpBlackholedConnectFiresTheClientsOwnTimeout) {
  SKIP_WITHOUT_GO();
  const auto start = std::chrono::steady_clock::now();
  const RunResult r =
      run_under("calls = [\"connect\"]\nblackhole = true\n", {kGoHttp, "-timeout", "1s"});
  const auto took = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(r.status(), 1) << r.out << r.err;
  EXPECT_NE(r.out.find("Client.Timeout exceeded"), std::string::npos) << r.out << r.err;
  EXPECT_LT(took, 15s);  // its own 1 s timeout, not the kernel's SYN retries (~2 minutes)
}

TEST_F(SeccompActionsTest, GoHttpBlackholedReadsFireTheClientsOwnTimeout) {
  SKIP_WITHOUT_GO();
  const auto start = std::chrono::steady_clock::now();
  const RunResult r =
      run_under("calls = [\"read\"]\nblackhole = true\n", {kGoHttp, "-timeout", "1s"});
  EXPECT_EQ(r.status(), 1) << r.out << r.err;
  EXPECT_NE(r.out.find("Client.Timeout exceeded"), std::string::npos) << r.out << r.err;
  EXPECT_LT(std::chrono::steady_clock::now() - start, 15s);
}

TEST_F(SeccompActionsTest, StaticBlackholedConnectNeverCompletes) {
  // A real listener that never accepts: unfaulted, both connects complete into its backlog.
  const int listener = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in sa = loopback(0);
  socklen_t len = sizeof sa;
  ASSERT_EQ(bind(listener, reinterpret_cast<sockaddr*>(&sa), sizeof sa), 0);
  ASSERT_EQ(listen(listener, 4), 0);
  ASSERT_EQ(getsockname(listener, reinterpret_cast<sockaddr*>(&sa), &len), 0);
  const std::string port = std::to_string(ntohs(sa.sin_port));
  const RunResult r =
      run_under("calls = [\"connect\"]\nblackhole = true\n", {kStatic, "bhconnect", port});
  EXPECT_EQ(r.status(), 0) << r.out << r.err;
  // Non-blocking: in progress, and still not writable when the program's poll gives up.
  // Blocking: SO_SNDTIMEO ends it with EINPROGRESS, as Linux says.
  EXPECT_EQ(r.out,
            "nonblocking: Operation now in progress, poll: timeout\n"
            "blocking: Operation now in progress\n")
      << r.err;
  pollfd queued{listener, POLLIN, 0};
  EXPECT_EQ(poll(&queued, 1, 0), 0) << "nothing may reach the peer";
  close(listener);
}

// ---- eof, lie -------------------------------------------------------------------------------

TEST_F(SeccompActionsTest, EofEndsTheConnectionForBothSides) {
  Peer peer(true);  // its "pong" arrives, and is never read: the connection ended
  ASSERT_NE(peer.port(), 0);
  const RunResult r =
      run_under("calls = [\"read\"]\neof = true\n", {kStatic, "echo", std::to_string(peer.port())});
  EXPECT_EQ(r.status(), 0) << r.out << r.err;
  EXPECT_EQ(r.out, "send: ok\nread: 0 bytes\nread: 0 bytes\n") << r.err;
  EXPECT_EQ(peer.ended_with(), 0) << "the peer must read an orderly end-of-file";
  EXPECT_EQ(peer.received(), "ping\n");
}

TEST_F(SeccompActionsTest, LieAnswersFsyncWithoutRunningIt) {
  // Linux refuses fsync on a pipe: a success can only be the lie.
  const RunResult plain = run({kStatic, "syncpipe"});
  EXPECT_EQ(plain.out, "fsync: Invalid argument\n") << plain.err;
  const RunResult r = run_under("calls = [\"fsync\"]\nlie = true\n", {kStatic, "syncpipe"});
  EXPECT_EQ(r.status(), 0) << r.out << r.err;
  EXPECT_EQ(r.out, "fsync: ok\n") << r.err;
}

// ---- short, corrupt --------------------------------------------------------------------------

// What `static_io rw` leaves in its file unfaulted: "0123456789", "ABC", and "xyz" at 20.
const std::string kRwFile = std::string("0123456789ABC") + std::string(7, '\0') + "xyz";

std::size_t bits_apart(const std::string& a, const std::string& b) {
  std::size_t bits = a.size() > b.size() ? (a.size() - b.size()) * 8 : (b.size() - a.size()) * 8;
  for (std::size_t i = 0; i < std::min(a.size(), b.size()); ++i)
    bits += static_cast<std::size_t>(
        __builtin_popcount(static_cast<unsigned char>(a[i]) ^ static_cast<unsigned char>(b[i])));
  return bits;
}

TEST_F(SeccompActionsTest, ShortWritesMoveTheFileOffsetAsTheKernelWould) {
  const RunResult plain = run({kStatic, "rw", path("plain.dat")});
  EXPECT_EQ(plain.out,
            "write: 10\nwrite: 3\npwrite: 3\npread: 23\nread: 23 0123456789ABC.......xyz\n");
  EXPECT_EQ(read_file(path("plain.dat")).value_or(""), kRwFile);

  const RunResult r = run_under("calls = [\"@write\"]\npath = \"*/rw.dat\"\nshort = 3\n",
                                {kStatic, "rw", path("rw.dat")});
  EXPECT_EQ(r.status(), 0) << r.out << r.err;
  // Three bytes of each; the second write lands right after the first three (the shared
  // offset), pwrite at its own offset.
  EXPECT_EQ(r.out, "write: 3\nwrite: 3\npwrite: 3\npread: 23\nread: 23 012ABC..............xyz\n")
      << r.err;
  EXPECT_EQ(read_file(path("rw.dat")).value_or(""),
            std::string("012ABC") + std::string(14, '\0') + "xyz");
}

TEST_F(SeccompActionsTest, ShortReadsGetThePrefix) {
  const RunResult r = run_under("calls = [\"@read\"]\npath = \"*/rw.dat\"\nshort = 4\n",
                                {kStatic, "rw", path("rw.dat")});
  EXPECT_EQ(r.status(), 0) << r.out << r.err;
  EXPECT_EQ(r.out, "write: 10\nwrite: 3\npwrite: 3\npread: 4\nread: 4 0123\n") << r.err;
  EXPECT_EQ(read_file(path("rw.dat")).value_or(""), kRwFile);
}

TEST_F(SeccompActionsTest, CorruptWritesFlipBitsOnDiskAndTheSeedReplaysThem) {
  auto corrupted = [&](const std::string& seed) {
    const RunResult r =
        run_under("calls = [\"write\", \"pwrite64\"]\npath = \"*/c.dat\"\ncorrupt = 1\n",
                  {kStatic, "rw", path("c.dat")}, {"--seed", seed});
    // The program was told every byte went out.
    EXPECT_TRUE(r.out.starts_with("write: 10\nwrite: 3\npwrite: 3\npread: 23\n")) << r.out << r.err;
    return read_file(path("c.dat")).value_or("");
  };
  const std::string first = corrupted("7");
  EXPECT_EQ(first.size(), kRwFile.size());
  EXPECT_EQ(bits_apart(first, kRwFile), 3u) << "one bit per call";
  EXPECT_EQ(corrupted("7"), first) << "the same seed flips the same bits";
}

TEST_F(SeccompActionsTest, CorruptReadsChangeWhatWasReadNotTheFile) {
  const RunResult r = run_under("calls = [\"read\"]\npath = \"*/rw.dat\"\ncorrupt = 8\n",
                                {kStatic, "rw", path("rw.dat")});
  EXPECT_EQ(r.status(), 0) << r.out << r.err;
  EXPECT_TRUE(r.out.starts_with("write: 10\nwrite: 3\npwrite: 3\npread: 23\nread: 23 ")) << r.out;
  EXPECT_EQ(r.out.find("read: 23 0123456789ABC.......xyz\n"), std::string::npos) << r.out;
  EXPECT_EQ(read_file(path("rw.dat")).value_or(""), kRwFile);
}

}  // namespace
}  // namespace fltest
