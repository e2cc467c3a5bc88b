// fl_prefork: a small prefork server, for process-tree tests.
//
//   fl_prefork DIR WORKERS
//
// The parent listens on 127.0.0.1 (a port the kernel picks), prints "port N", forks WORKERS
// children that each rename themselves "worker-<i>" (prctl PR_SET_NAME, as real prefork
// servers do) and prints "ready". Each worker accepts connections; for every request line
// "PUT <key>" it appends "<key>\n" to DIR/store-<i>.log with write(2) and answers "OK <i>" or
// "ERR <errno> <i>". The parent logs "started" and "stopped" to DIR/parent.log; it stops its
// workers and exits when its stdin reaches end of file.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace {

bool append_line(const std::string& path, const std::string& line, int& err) {
  const int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) {
    err = errno;
    return false;
  }
  const ssize_t n = write(fd, line.data(), line.size());
  err = errno;
  close(fd);
  return n == static_cast<ssize_t>(line.size());
}

void say(const std::string& line) {
  const std::string text = line + "\n";
  if (write(STDOUT_FILENO, text.data(), text.size()) < 0) std::exit(3);
}

void serve(int conn, const std::string& dir, int index) {
  std::string buffer;
  char chunk[512];
  for (;;) {
    const ssize_t n = read(conn, chunk, sizeof chunk);
    if (n <= 0) return;
    buffer.append(chunk, static_cast<std::size_t>(n));
    std::size_t end;
    while ((end = buffer.find('\n')) != std::string::npos) {
      const std::string request = buffer.substr(0, end);
      buffer.erase(0, end + 1);
      std::string answer;
      if (request.rfind("PUT ", 0) == 0) {
        int err = 0;
        const std::string store = dir + "/store-" + std::to_string(index) + ".log";
        answer = append_line(store, request.substr(4) + "\n", err)
                     ? "OK " + std::to_string(index)
                     : "ERR " + std::to_string(err) + " " + std::to_string(index);
      } else {
        answer = "BAD " + std::to_string(index);
      }
      answer += "\n";
      if (write(conn, answer.data(), answer.size()) < 0) return;
    }
  }
}

[[noreturn]] void worker(int listener, const std::string& dir, int index) {
  const std::string name = "worker-" + std::to_string(index);
  prctl(PR_SET_NAME, name.c_str(), 0, 0, 0);
  for (;;) {
    const int conn = accept(listener, nullptr, nullptr);
    if (conn < 0) {
      if (errno == EINTR) continue;
      _exit(1);
    }
    serve(conn, dir, index);
    close(conn);
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: fl_prefork DIR WORKERS\n");
    return 2;
  }
  const std::string dir = argv[1];
  const int workers = std::atoi(argv[2]);
  const int listener = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  if (listener < 0 || bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      listen(listener, 64) != 0 ||
      getsockname(listener, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    std::perror("fl_prefork: listen");
    return 1;
  }
  int err = 0;
  append_line(dir + "/parent.log", "started\n", err);
  say("port " + std::to_string(ntohs(addr.sin_port)));
  std::vector<pid_t> children;
  for (int i = 1; i <= workers; ++i) {
    const pid_t pid = fork();
    if (pid == 0) worker(listener, dir, i);
    if (pid > 0) children.push_back(pid);
  }
  say("ready");
  char c;
  while (read(STDIN_FILENO, &c, 1) > 0) {
  }
  for (pid_t pid : children) kill(pid, SIGTERM);
  for (pid_t pid : children) waitpid(pid, nullptr, 0);
  append_line(dir + "/parent.log", "stopped\n", err);
  return 0;
}
