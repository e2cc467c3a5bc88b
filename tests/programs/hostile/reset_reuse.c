/* A reset socket's fd number reused behind the preload's back. A @net `reset` fault aborts
 * a loopback TCP connection this program makes to itself (the preload then remembers that
 * fd as reset and fails its receives ECONNRESET). The program closes that fd without the
 * preload seeing it (a raw close or close_range syscall) and makes a socket pair that gets
 * the same number: the pair is a new socket and must work.
 *
 *   fl_reset_reuse MODE      MODE: socketpair (raw close, libc socketpair)
 *                                  raw        (raw close_range, raw socketpair syscall)
 *
 * Prints "reset=R after=M" on stderr (R = 1 when the first receive was reset as the fault
 * said, M = errors on the reused number) and exits 0 only when M is 0. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

int main(int argc, char** argv) {
  const char* mode = argc > 1 ? argv[1] : "socketpair";
  int listener = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in addr;
  memset(&addr, 0, sizeof addr);
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  if (listener < 0 || bind(listener, (struct sockaddr*)&addr, sizeof addr) != 0 ||
      getsockname(listener, (struct sockaddr*)&addr, &len) != 0 || listen(listener, 4) != 0) {
    perror("listener");
    return 2;
  }
  int client = socket(AF_INET, SOCK_STREAM, 0);
  if (client < 0 || connect(client, (struct sockaddr*)&addr, sizeof addr) != 0) {
    perror("connect");
    return 2;
  }
  int server = accept(listener, NULL, NULL);
  if (server < 0) {
    perror("accept");
    return 2;
  }

  /* The fault resets this receive (times = 1). */
  char buf[64];
  int reset = recv(client, buf, sizeof buf, MSG_DONTWAIT) < 0 && errno == ECONNRESET;

  /* Close the reset socket where the preload cannot see it, and make a pair on its number. */
  int pair[2] = {-1, -1};
  if (!strcmp(mode, "raw")) {
    syscall(SYS_close_range, (unsigned)client, (unsigned)client, 0);
    if (syscall(SYS_socketpair, AF_UNIX, SOCK_STREAM, 0, pair) != 0) pair[0] = -1;
  } else {
    syscall(SYS_close, client);
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, pair) != 0) pair[0] = -1;
  }
  if (pair[0] < 0) {
    perror("socketpair");
    return 2;
  }
  int reused = pair[0] == client ? pair[0] : pair[1];
  int other = reused == pair[0] ? pair[1] : pair[0];
  if (reused != client) {
    fprintf(stderr, "the pair got fds %d and %d, not the reset socket's %d\n", pair[0], pair[1],
            client);
    return 3;
  }

  int after = 0;
  for (int i = 0; i < 3; ++i) {
    char msg[32];
    int n = snprintf(msg, sizeof msg, "ping %d", i);
    if (send(other, msg, (size_t)n, 0) != n) {
      fprintf(stderr, "send to the reused fd: %s\n", strerror(errno));
      ++after;
    }
    ssize_t got = recv(reused, buf, sizeof buf, 0);
    if (got != n || memcmp(buf, msg, (size_t)n) != 0) {
      fprintf(stderr, "recv on the reused fd %d: %zd (%s)\n", reused, got, strerror(errno));
      ++after;
    }
    if (send(reused, msg, (size_t)n, 0) != n) {
      fprintf(stderr, "send on the reused fd: %s\n", strerror(errno));
      ++after;
    }
    got = read(other, buf, sizeof buf);
    if (got != n) ++after;
  }
  fprintf(stderr, "reset=%d after=%d\n", reset, after);
  close(server);
  close(listener);
  return after == 0 ? 0 : 1;
}
