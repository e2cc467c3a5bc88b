// Probe clients: see probes.h. Hand-written rather than a library: a probe must report exactly
// what failed (connect, a timeout, the status, the body) and must never wait past its deadline.
#include "controller/experiment/probes.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <netdb.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <thread>

#include "session/session.h"

extern char** environ;

namespace faultline::experiment {
namespace {

struct Fd {
  int fd = -1;
  ~Fd() {
    if (fd >= 0) close(fd);
  }
};

std::string seconds(std::int64_t ns) { return fmt::format("{:g}s", ns / 1e9); }

bool split_host_port(const std::string& text, std::string& host, std::string& port) {
  const auto colon = text.rfind(':');
  if (colon == std::string::npos) return false;
  host = text.substr(0, colon);
  port = text.substr(colon + 1);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']')
    host = host.substr(1, host.size() - 2);
  return !host.empty() && !port.empty();
}

// Waits for `events` on fd until the deadline (monotonic ns). False on timeout.
bool wait_fd(int fd, short events, std::int64_t deadline) {
  for (;;) {
    const std::int64_t left = deadline - monotonic_ns();
    if (left <= 0) return false;
    pollfd p{fd, events, 0};
    const int n = poll(&p, 1, static_cast<int>(left / 1'000'000) + 1);
    if (n > 0) return true;
    if (n < 0 && errno != EINTR) return true;  // let the next call report the error
  }
}

// A connected non-blocking socket, or an error message.
std::string connect_to(const std::string& host_port, std::int64_t deadline, Fd& out) {
  std::string host, port;
  if (!split_host_port(host_port, host, port)) return fmt::format("bad address '{}'", host_port);
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV;
  addrinfo* list = nullptr;
  if (const int rc = getaddrinfo(host.c_str(), port.c_str(), &hints, &list); rc != 0)
    return fmt::format("resolve {}: {}", host, gai_strerror(rc));
  const addrinfo* a = list;
  out.fd = socket(a->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  int rc = out.fd < 0 ? -1 : connect(out.fd, a->ai_addr, a->ai_addrlen);
  const int err = errno;
  freeaddrinfo(list);
  if (out.fd < 0) return fmt::format("socket: {}", std::strerror(err));
  if (rc != 0 && err != EINPROGRESS) return fmt::format("connect: {}", std::strerror(err));
  if (rc != 0) {
    if (!wait_fd(out.fd, POLLOUT, deadline)) return "connect: timeout";
    int so_error = 0;
    socklen_t len = sizeof so_error;
    getsockopt(out.fd, SOL_SOCKET, SO_ERROR, &so_error, &len);
    if (so_error != 0) return fmt::format("connect: {}", std::strerror(so_error));
  }
  return "";
}

// Chunked transfer coding, decoded; nullopt while incomplete.
std::optional<std::string> dechunk(std::string_view body) {
  std::string out;
  for (;;) {
    const auto eol = body.find("\r\n");
    if (eol == std::string_view::npos) return std::nullopt;
    std::size_t size = 0;
    try {
      size = std::stoul(std::string(body.substr(0, eol)), nullptr, 16);
    } catch (const std::exception&) {
      return out;
    }
    if (size == 0) return out;
    if (body.size() < eol + 2 + size + 2) return std::nullopt;
    out.append(body.substr(eol + 2, size));
    body.remove_prefix(eol + 2 + size + 2);
  }
}

}  // namespace

ProbeOutcome tcp_probe(const std::string& host_port, std::int64_t timeout_ns) {
  Fd fd;
  const std::string error = connect_to(host_port, monotonic_ns() + timeout_ns, fd);
  if (error.empty()) return {true, "", 0};
  return {false,
          error == "connect: timeout" ? "connect: timeout after " + seconds(timeout_ns) : error, 0};
}

ProbeOutcome http_probe(const std::string& url, std::int64_t timeout_ns, int expect_status,
                        const std::string& body_contains) {
  const std::int64_t deadline = monotonic_ns() + timeout_ns;
  std::string rest = url.substr(std::string_view("http://").size());
  const auto slash = rest.find('/');
  std::string authority = rest.substr(0, slash);
  const std::string path = slash == std::string::npos ? "/" : rest.substr(slash);
  const std::string host_port = authority.find(':') == std::string::npos || authority.back() == ']'
                                    ? authority + ":80"
                                    : authority;
  Fd fd;
  if (std::string error = connect_to(host_port, deadline, fd); !error.empty())
    return {false,
            error == "connect: timeout" ? "connect: timeout after " + seconds(timeout_ns) : error,
            0};
  const std::string request = fmt::format(
      "GET {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: faultline-probe\r\nConnection: close\r\n\r\n",
      path, authority);
  std::size_t sent = 0;
  while (sent < request.size()) {
    const ssize_t n = send(fd.fd, request.data() + sent, request.size() - sent, MSG_NOSIGNAL);
    if (n > 0) {
      sent += static_cast<std::size_t>(n);
    } else if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
      if (!wait_fd(fd.fd, POLLOUT, deadline))
        return {false, "send: timeout after " + seconds(timeout_ns), 0};
    } else {
      return {false, fmt::format("send: {}", std::strerror(errno)), 0};
    }
  }
  std::string response;
  std::optional<std::size_t> header_end, content_length;
  bool chunked = false;
  int status = 0;
  char buffer[16384];
  for (;;) {
    if (header_end) {
      const std::string_view body = std::string_view(response).substr(*header_end);
      if (content_length && body.size() >= *content_length) break;
      if (chunked && dechunk(body)) break;
    }
    if (response.size() > (8u << 20)) return {false, "response larger than 8 MiB", status};
    if (!wait_fd(fd.fd, POLLIN, deadline))
      return {false,
              fmt::format("timeout after {}{}", seconds(timeout_ns),
                          header_end ? " (reading the body)" : ""),
              status};
    const ssize_t n = recv(fd.fd, buffer, sizeof buffer, 0);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) continue;
    if (n < 0) return {false, fmt::format("recv: {}", std::strerror(errno)), status};
    if (n == 0) break;
    response.append(buffer, static_cast<std::size_t>(n));
    if (!header_end) {
      const auto end = response.find("\r\n\r\n");
      if (end == std::string::npos) continue;
      header_end = end + 4;
      std::string head = response.substr(0, end);
      for (auto& c : head) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      if (head.size() < 12 || !head.starts_with("http/1."))
        return {false, "not an HTTP response", 0};
      status = std::atoi(head.c_str() + 9);
      if (auto p = head.find("\r\ncontent-length:"); p != std::string::npos)
        content_length = std::strtoull(head.c_str() + p + 17, nullptr, 10);
      chunked = head.find("\r\ntransfer-encoding: chunked") != std::string::npos;
    }
  }
  if (!header_end) return {false, "connection closed before a response", 0};
  std::string body = response.substr(*header_end);
  if (chunked) body = dechunk(body).value_or(body);
  const bool status_ok =
      expect_status == 0 ? (status >= 200 && status < 300) : status == expect_status;
  if (!status_ok) return {false, fmt::format("status {}", status), status};
  if (!body_contains.empty() && body.find(body_contains) == std::string::npos)
    return {false, fmt::format("body lacks \"{}\"", body_contains), status};
  return {true, "", status};
}

ProbeOutcome command_probe(const std::vector<std::string>& argv, const std::string& cwd,
                           std::int64_t timeout_ns) {
  if (argv.empty()) return {false, "empty command", 0};
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0);
  if (!cwd.empty()) posix_spawn_file_actions_addchdir_np(&actions, cwd.c_str());
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t empty;
  sigemptyset(&empty);
  posix_spawnattr_setsigmask(&attr, &empty);
  posix_spawnattr_setpgroup(&attr, 0);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETPGROUP);
  pid_t pid = -1;
  const int rc = posix_spawnp(&pid, args[0], &actions, &attr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  if (rc != 0) return {false, fmt::format("{}: {}", argv[0], std::strerror(rc)), 0};
  const std::int64_t deadline = monotonic_ns() + timeout_ns;
  int status = 0;
  for (;;) {
    const pid_t done = waitpid(pid, &status, WNOHANG);
    if (done == pid) break;
    if (done < 0 && errno != EINTR) return {false, "waitpid failed", 0};
    if (monotonic_ns() >= deadline) {
      kill(-pid, SIGKILL);
      waitpid(pid, &status, 0);
      return {false, "timeout after " + seconds(timeout_ns), 0};
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return {true, "", 0};
  if (WIFSIGNALED(status)) return {false, fmt::format("killed by signal {}", WTERMSIG(status)), 0};
  return {false, fmt::format("exit status {}", WEXITSTATUS(status)), 0};
}

}  // namespace faultline::experiment
