// netprobe: a small, unmodified program for the @net integration tests, written the way an
// event-driven client is (non-blocking sockets, epoll or poll or select), plus the loopback
// server the tests run it against. It knows nothing of faultline; it prints one line saying
// what it saw, in the program's own terms (errno names, bytes received).
//
//   netprobe serve echo|push      listen on 127.0.0.1:0, print "port N", serve until stdin
//                                  closes; "push" sends "PUSH\n" to each client on accept.
//                                  Prints "recv <text>", "reset", "eof" per client event.
//   netprobe connect PORT MS       non-blocking connect, wait for writable up to MS:
//                                  "connected" | "timeout so_error=E again=E" | "error E"
//   netprobe request PORT TEXT MS  connect, send TEXT, wait up to MS for the reply:
//                                  "reply <hex>" | "timeout sent=N" | "error E" | "eof"
//   netprobe idle WAITER PORT MS N wait N times (epoll|poll|select, MS each) for data the
//                                  server pushes, reading when told readable:
//                                  "reads=R eagain=A timeouts=T data=<text>"
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace {

const char* name(int err) {
  const char* n = strerrorname_np(err);
  return n ? n : "E?";
}

struct sockaddr_in loopback(int port) {
  struct sockaddr_in a {};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return a;
}

std::string hex(const char* data, ssize_t n) {
  std::string out;
  char byte[3];
  for (ssize_t i = 0; i < n; ++i) {
    std::snprintf(byte, sizeof byte, "%02x", static_cast<unsigned char>(data[i]));
    out += byte;
  }
  return out;
}

// Waits for `events` on fd with epoll, up to ms. Returns the events seen (0 on timeout).
unsigned epoll_for(int fd, unsigned events, int ms) {
  int ep = epoll_create1(EPOLL_CLOEXEC);
  struct epoll_event ev {};
  ev.events = events;
  ev.data.fd = fd;
  epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
  struct epoll_event got {};
  int n = epoll_wait(ep, &got, 1, ms);
  close(ep);
  return n > 0 ? got.events : 0;
}

// A non-blocking connect to 127.0.0.1:port. Returns the fd, or -1 after printing the result.
int connect_nb(int port, int ms, bool report) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
  struct sockaddr_in a = loopback(port);
  if (connect(fd, reinterpret_cast<struct sockaddr*>(&a), sizeof a) == 0) {
    if (report) std::printf("connected\n");
    return fd;
  }
  if (errno != EINPROGRESS) {
    std::printf("error %s\n", name(errno));
    return -1;
  }
  unsigned events = epoll_for(fd, EPOLLOUT, ms);
  int so_error = 0;
  socklen_t len = sizeof so_error;
  getsockopt(fd, SOL_SOCKET, SO_ERROR, &so_error, &len);
  if (events == 0) {
    int again = connect(fd, reinterpret_cast<struct sockaddr*>(&a), sizeof a) == 0 ? 0 : errno;
    std::printf("timeout so_error=%s again=%s\n", so_error ? name(so_error) : "0",
                again ? name(again) : "0");
    return -1;
  }
  if (so_error != 0) {
    std::printf("error %s%s\n", name(so_error), (events & EPOLLERR) ? " (pollerr)" : "");
    return -1;
  }
  if (report) std::printf("connected\n");
  return fd;
}

int cmd_connect(int port, int ms) {
  int fd = connect_nb(port, ms, true);
  if (fd >= 0) close(fd);
  return 0;
}

int cmd_request(int port, const char* text, int ms) {
  int fd = connect_nb(port, ms, false);
  if (fd < 0) return 0;
  ssize_t sent = send(fd, text, std::strlen(text), MSG_NOSIGNAL);
  if (sent < 0) {
    std::printf("error %s\n", name(errno));
    return 0;
  }
  if (epoll_for(fd, EPOLLIN, ms) == 0) {
    std::printf("timeout sent=%zd\n", sent);
    return 0;
  }
  char buf[256];
  ssize_t n = recv(fd, buf, sizeof buf, 0);
  if (n < 0)
    std::printf("error %s\n", name(errno));
  else if (n == 0)
    std::printf("eof\n");
  else
    std::printf("reply %s\n", hex(buf, n).c_str());
  close(fd);
  return 0;
}

// Readable? through the given waiter, for ms.
bool readable(const std::string& waiter, int fd, int ep, int ms) {
  if (waiter == "epoll") {
    struct epoll_event got {};
    return epoll_wait(ep, &got, 1, ms) > 0;
  }
  if (waiter == "poll") {
    struct pollfd p = {fd, POLLIN, 0};
    return poll(&p, 1, ms) > 0;
  }
  fd_set rd;
  FD_ZERO(&rd);
  FD_SET(fd, &rd);
  struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
  return select(fd + 1, &rd, nullptr, nullptr, &tv) > 0;
}

int cmd_idle(const std::string& waiter, int port, int ms, int rounds) {
  int fd = connect_nb(port, 2000, false);
  if (fd < 0) return 0;
  int ep = epoll_create1(EPOLL_CLOEXEC);
  struct epoll_event ev {};
  ev.events = EPOLLIN;  // level-triggered: a socket left readable is reported every time
  ev.data.fd = fd;
  epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
  int reads = 0, eagain = 0, timeouts = 0;
  std::string data;
  for (int i = 0; i < rounds; ++i) {
    if (!readable(waiter, fd, ep, ms)) {
      ++timeouts;
      continue;
    }
    char buf[64];
    ssize_t n = recv(fd, buf, sizeof buf, 0);
    if (n > 0) {
      ++reads;
      data.append(buf, static_cast<std::size_t>(n));
    } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      ++eagain;
    } else {
      break;
    }
  }
  while (!data.empty() && data.back() == '\n') data.pop_back();
  std::printf("reads=%d eagain=%d timeouts=%d data=%s\n", reads, eagain, timeouts, data.c_str());
  close(ep);
  close(fd);
  return 0;
}

// The server: single-threaded, epoll, until stdin closes.
int cmd_serve(const std::string& mode) {
  int listener = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
  int one = 1;
  setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in a = loopback(0);
  socklen_t len = sizeof a;
  if (bind(listener, reinterpret_cast<struct sockaddr*>(&a), sizeof a) != 0 ||
      listen(listener, 64) != 0 ||
      getsockname(listener, reinterpret_cast<struct sockaddr*>(&a), &len) != 0) {
    std::printf("serve failed %s\n", name(errno));
    return 1;
  }
  std::printf("port %d\n", ntohs(a.sin_port));
  std::fflush(stdout);
  int ep = epoll_create1(EPOLL_CLOEXEC);
  struct epoll_event ev {};
  ev.events = EPOLLIN;
  ev.data.fd = listener;
  epoll_ctl(ep, EPOLL_CTL_ADD, listener, &ev);
  ev.data.fd = STDIN_FILENO;
  epoll_ctl(ep, EPOLL_CTL_ADD, STDIN_FILENO, &ev);
  for (;;) {
    struct epoll_event got[16];
    int n = epoll_wait(ep, got, 16, 1000);
    for (int i = 0; i < n; ++i) {
      int fd = got[i].data.fd;
      if (fd == STDIN_FILENO) {
        char c;
        if (read(STDIN_FILENO, &c, 1) <= 0) return 0;
        continue;
      }
      if (fd == listener) {
        int c = accept4(listener, nullptr, nullptr, SOCK_NONBLOCK);
        if (c < 0) continue;
        if (mode == "push") send(c, "PUSH\n", 5, MSG_NOSIGNAL);
        ev.data.fd = c;
        epoll_ctl(ep, EPOLL_CTL_ADD, c, &ev);
        continue;
      }
      char buf[256];
      ssize_t r = recv(fd, buf, sizeof buf, 0);
      if (r > 0) {
        std::printf("recv %.*s\n", static_cast<int>(r), buf);
        send(fd, buf, static_cast<std::size_t>(r), MSG_NOSIGNAL);
      } else if (r == 0 || errno != EAGAIN) {
        std::printf("%s\n", r == 0 ? "eof" : errno == ECONNRESET ? "reset" : name(errno));
        epoll_ctl(ep, EPOLL_CTL_DEL, fd, nullptr);
        close(fd);
      }
      std::fflush(stdout);
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  std::string cmd = argc > 1 ? argv[1] : "";
  if (cmd == "serve" && argc == 3) return cmd_serve(argv[2]);
  if (cmd == "connect" && argc == 4) return cmd_connect(std::atoi(argv[2]), std::atoi(argv[3]));
  if (cmd == "request" && argc == 5)
    return cmd_request(std::atoi(argv[2]), argv[3], std::atoi(argv[4]));
  if (cmd == "idle" && argc == 6)
    return cmd_idle(argv[2], std::atoi(argv[3]), std::atoi(argv[4]), std::atoi(argv[5]));
  std::fprintf(stderr, "usage: see the top of netprobe.cpp\n");
  return 2;
}
