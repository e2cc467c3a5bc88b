// One TCP socket, two peers: it connects to A, sends, then (on the next stdin line)
// disconnects with connect(AF_UNSPEC) and connects the same fd to B, then sends again. What it
// tries to break: the `addr` selector's memory of a connected socket's peer. If the shim kept
// A as the peer after the reconnect — because it happened while no @net fault was armed — a
// fault aimed at B would miss the socket that now talks to B.
//
// usage: fl_reconnect PORT_A PORT_B   (it listens on both itself, on 127.0.0.1)
// stdin: one line per step; stdout: one line per step.
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static struct sockaddr_in loopback(int port) {
  struct sockaddr_in a;
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_port = htons((unsigned short)port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return a;
}

static int listen_on(int port) {
  int s = socket(AF_INET, SOCK_STREAM, 0);
  int one = 1;
  setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in a = loopback(port);
  if (bind(s, (struct sockaddr*)&a, sizeof a) != 0 || listen(s, 4) != 0) {
    perror("listen");
    exit(1);
  }
  return s;
}

static int step(void) {
  char line[64];
  return fgets(line, sizeof line, stdin) != NULL;
}

static void say_send(int s, const char* who) {
  const ssize_t n = send(s, "x", 1, MSG_NOSIGNAL);
  printf("send %s: %s\n", who, n == 1 ? "ok" : strerror(errno));
  fflush(stdout);
}

int main(int argc, char** argv) {
  if (argc != 3) return 2;
  const int port_a = atoi(argv[1]), port_b = atoi(argv[2]);
  const int la = listen_on(port_a), lb = listen_on(port_b);
  int s = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = loopback(port_a), b = loopback(port_b);
  if (!step()) return 1;
  if (connect(s, (struct sockaddr*)&a, sizeof a) != 0) return perror("connect A"), 1;
  say_send(s, "A");
  if (!step()) return 1;
  struct sockaddr unspec;
  memset(&unspec, 0, sizeof unspec);
  unspec.sa_family = AF_UNSPEC;
  if (connect(s, &unspec, sizeof unspec) != 0) return perror("disconnect"), 1;
  if (connect(s, (struct sockaddr*)&b, sizeof b) != 0) return perror("connect B"), 1;
  printf("reconnected\n");
  fflush(stdout);
  if (!step()) return 1;
  say_send(s, "B");
  close(s);
  close(la);
  close(lb);
  return 0;
}
