// bench_net: the cost of one connect() and one getaddrinfo(), for comparing a native run with
// the same binary under LD_PRELOAD (passthrough, libfiu, libfaultline.so idle / @net or @dns
// armed with a selector that never matches / injecting at p=0.001). See bench/calls.sh and
// docs/performance.md ("connect, getaddrinfo, fsync").
//
//   BM_connect_udp         connect() of one UDP socket to 127.0.0.1:PORT, again and again: a
//                          datagram connect only sets the peer, so this is connect's own cost
//                          with the least kernel work around it
//   BM_connect_tcp         one loopback TCP connection: socket + connect + close (SO_LINGER 0,
//                          so no TIME_WAIT piles up); a helper thread accepts and closes
//   BM_write_udp           write() of one byte on a connected UDP socket: a data call on a
//                          socket, which an armed @net fault with an `addr` has to look at
//                          (the receiver's buffer fills and the kernel drops the rest)
//   BM_getaddrinfo_numeric getaddrinfo("127.0.0.1", AI_NUMERICHOST) + freeaddrinfo
//   BM_getaddrinfo_localhost getaddrinfo("localhost") answered from /etc/hosts + freeaddrinfo
//
// Return values are deliberately not checked inside the loops: under a fault policy some
// calls fail by design (ECONNREFUSED, EAI_AGAIN), and the benchmark measures their cost.
// Only 127.0.0.1 is ever contacted.
#include <arpa/inet.h>
#include <benchmark/benchmark.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <string>
#include <thread>

namespace {

// A socket bound to 127.0.0.1 on a port the kernel picks; -1 (and the benchmark skipped) if
// that fails. `listening` makes it a TCP listener, otherwise a UDP socket.
int loopback_socket(benchmark::State& state, bool listening, sockaddr_in& addr) {
  int fd = socket(AF_INET, (listening ? SOCK_STREAM : SOCK_DGRAM) | SOCK_CLOEXEC, 0);
  std::memset(&addr, 0, sizeof addr);
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  if (fd < 0 || bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0 ||
      (listening && listen(fd, 4096) != 0)) {
    state.SkipWithError((std::string("loopback socket: ") + std::strerror(errno)).c_str());
    if (fd >= 0) close(fd);
    return -1;
  }
  return fd;
}

void BM_connect_udp(benchmark::State& state) {
  sockaddr_in peer{};
  int receiver = loopback_socket(state, false, peer);
  if (receiver < 0) return;
  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    state.SkipWithError("socket(AF_INET, SOCK_DGRAM) failed");
    close(receiver);
    return;
  }
  for (auto _ : state) {
    int r = connect(fd, reinterpret_cast<const sockaddr*>(&peer), sizeof peer);
    benchmark::DoNotOptimize(r);
  }
  close(fd);
  close(receiver);
}
BENCHMARK(BM_connect_udp);

void BM_connect_tcp(benchmark::State& state) {
  sockaddr_in peer{};
  int listener = loopback_socket(state, true, peer);
  if (listener < 0) return;
  // The accept queue must be drained, or it fills and connect starts waiting for SYN
  // retransmits. shutdown() on the listener wakes the blocked accept at the end.
  std::atomic<bool> stop{false};
  std::thread acceptor([&] {
    while (!stop.load(std::memory_order_relaxed)) {
      int c = accept(listener, nullptr, nullptr);
      if (c >= 0) {
        close(c);
      } else if (errno != EINTR && errno != ECONNABORTED) {
        break;
      }
    }
  });
  const linger abort_on_close{1, 0};
  for (auto _ : state) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &abort_on_close, sizeof abort_on_close);
    int r = connect(fd, reinterpret_cast<const sockaddr*>(&peer), sizeof peer);
    benchmark::DoNotOptimize(r);
    close(fd);
  }
  stop.store(true, std::memory_order_relaxed);
  shutdown(listener, SHUT_RDWR);
  acceptor.join();
  close(listener);
}
BENCHMARK(BM_connect_tcp);

void BM_write_udp(benchmark::State& state) {
  sockaddr_in peer{};
  int receiver = loopback_socket(state, false, peer);
  if (receiver < 0) return;
  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  // Under the p=0.001 policy this setup connect may be the one refused, and a repetition
  // that skips would abort Google Benchmark's statistics: try again, a bounded number of times.
  int connected = -1;
  for (int tries = 0; fd >= 0 && connected != 0 && tries < 100; ++tries)
    connected = connect(fd, reinterpret_cast<const sockaddr*>(&peer), sizeof peer);
  if (connected != 0) {
    state.SkipWithError("UDP socket connected to 127.0.0.1 failed");
    if (fd >= 0) close(fd);
    close(receiver);
    return;
  }
  const char byte = 'x';
  for (auto _ : state) {
    ssize_t r = write(fd, &byte, 1);
    benchmark::DoNotOptimize(r);
  }
  close(fd);
  close(receiver);
}
BENCHMARK(BM_write_udp);

void lookup(benchmark::State& state, const char* node, int flags) {
  addrinfo hints{};
  hints.ai_family = AF_INET;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = flags;
  for (auto _ : state) {
    addrinfo* res = nullptr;
    int r = getaddrinfo(node, "6379", &hints, &res);
    benchmark::DoNotOptimize(r);
    if (r == 0) freeaddrinfo(res);
  }
}

void BM_getaddrinfo_numeric(benchmark::State& state) {
  lookup(state, "127.0.0.1", AI_NUMERICHOST | AI_NUMERICSERV);
}
BENCHMARK(BM_getaddrinfo_numeric);

void BM_getaddrinfo_localhost(benchmark::State& state) {
  lookup(state, "localhost", AI_NUMERICSERV);
}
BENCHMARK(BM_getaddrinfo_localhost);

}  // namespace

BENCHMARK_MAIN();
