// fl_explore_connect PORT: a client with three connections to 127.0.0.1:PORT, for `faultline
// explore`'s tests. Every @net failure is handled (a message and exit 1, or a retry that
// works) except one: the "report" connection retries a failed connect on the socket it has
// just closed, which fails with EBADF forever: one failed connect hangs the program.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

namespace {

sockaddr_in server;

bool send_line(int fd, const char* text) {
  const size_t n = strlen(text);
  return send(fd, text, n, MSG_NOSIGNAL) == static_cast<ssize_t>(n);
}

// Handled: a failure is reported and ends the program.
__attribute__((noinline)) bool fetch_config() {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  if (connect(fd, reinterpret_cast<sockaddr*>(&server), sizeof server) != 0) {
    close(fd);
    return false;
  }
  const bool ok = send_line(fd, "config\n");
  close(fd);
  return ok;
}

// The planted bug: after a failed connect the socket is closed, and the loop retries on it.
__attribute__((noinline)) bool send_report() {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  while (connect(fd, reinterpret_cast<sockaddr*>(&server), sizeof server) != 0) {
    close(fd);
    usleep(50000);
  }
  const bool ok = send_line(fd, "report\n");
  close(fd);
  return ok;
}

// Handled: a new socket for each of up to three attempts.
__attribute__((noinline)) bool ping() {
  for (int attempt = 0; attempt < 3; ++attempt) {
    const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return false;
    if (connect(fd, reinterpret_cast<sockaddr*>(&server), sizeof server) == 0) {
      const bool ok = send_line(fd, "ping\n");
      close(fd);
      return ok;
    }
    close(fd);
    usleep(10000);
  }
  return false;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: fl_explore_connect PORT\n");
    return 2;
  }
  server.sin_family = AF_INET;
  server.sin_port = htons(static_cast<unsigned short>(atoi(argv[1])));
  inet_pton(AF_INET, "127.0.0.1", &server.sin_addr);
  if (!fetch_config()) {
    fprintf(stderr, "fl_explore_connect: cannot fetch the configuration\n");
    return 1;
  }
  if (!send_report()) {
    fprintf(stderr, "fl_explore_connect: cannot send the report\n");
    return 1;
  }
  if (!ping()) {
    fprintf(stderr, "fl_explore_connect: ping failed\n");
    return 1;
  }
  puts("done");
  return 0;
}
