// resilience_server: the small service the example client talks to. It listens on 127.0.0.1
// (--port N, default 0: the OS picks), prints "listening on port N" once it accepts
// connections, and answers each "GET <key>\n" with "VALUE <key> v-<key>\n", one thread per
// connection (a client partitioned mid-request must not stall the others). It runs until
// SIGTERM/SIGINT; `--max-seconds S` (default 300) bounds its life when nobody stops it.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>

namespace {

volatile sig_atomic_t g_stop = 0;
void on_signal(int) { g_stop = 1; }

// One connection: requests until the client closes, or 5 s of silence.
void serve(int fd) {
  timeval idle{5, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &idle, sizeof idle);
  std::string pending;
  char buffer[512];
  for (;;) {
    const ssize_t n = recv(fd, buffer, sizeof buffer, 0);
    if (n <= 0) break;
    pending.append(buffer, static_cast<std::size_t>(n));
    for (std::size_t nl; (nl = pending.find('\n')) != std::string::npos;) {
      const std::string line = pending.substr(0, nl);
      pending.erase(0, nl + 1);
      std::string reply = "ERROR bad request\n";
      if (line.rfind("GET ", 0) == 0) {
        const std::string key = line.substr(4);
        reply = "VALUE " + key + " v-" + key + "\n";
      }
      if (send(fd, reply.data(), reply.size(), MSG_NOSIGNAL) < 0) break;
    }
  }
  close(fd);
}

}  // namespace

int main(int argc, char** argv) {
  int port = 0;
  int max_seconds = 300;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (std::strcmp(argv[i], "--port") == 0) port = std::atoi(argv[i + 1]);
    if (std::strcmp(argv[i], "--max-seconds") == 0) max_seconds = std::atoi(argv[i + 1]);
  }
  struct sigaction action {};
  action.sa_handler = on_signal;
  sigaction(SIGTERM, &action, nullptr);
  sigaction(SIGINT, &action, nullptr);
  signal(SIGPIPE, SIG_IGN);

  const int listener = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  const int one = 1;
  setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = htons(static_cast<std::uint16_t>(port));
  socklen_t length = sizeof address;
  if (bind(listener, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0 ||
      listen(listener, 64) != 0 ||
      getsockname(listener, reinterpret_cast<sockaddr*>(&address), &length) != 0) {
    std::fprintf(stderr, "resilience_server: %s\n", std::strerror(errno));
    return 1;
  }
  std::printf("listening on port %d\n", ntohs(address.sin_port));
  std::fflush(stdout);

  const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(max_seconds);
  while (!g_stop && std::chrono::steady_clock::now() < end) {
    pollfd p{listener, POLLIN, 0};
    if (poll(&p, 1, 200) <= 0) continue;  // wakes up to notice a signal or the time limit
    const int fd = accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd >= 0) std::thread(serve, fd).detach();
  }
  close(listener);
  return 0;
}
