/* TCP connections on 127.0.0.1 that a @net fault with an `addr` selector watches without ever
 * matching: "peer_syscalls ROUNDS [CONNECTIONS]" makes CONNECTIONS connections one after the
 * other (default 1): the client connect()s, the server accept()s without asking for the
 * address (NULL), then ROUNDS round trips (client write, server read, server write, client
 * read). Run under strace by the test: the shim must learn each socket's peer from the
 * connect and the accept, the listener's own address once, and make no system call of its
 * own per socket call (no getpeername, getsockopt or getsockname). Prints "ok ROUNDS" at the
 * end, "fail WHAT" otherwise. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int main(int argc, char** argv) {
  const int rounds = argc > 1 ? atoi(argv[1]) : 10;
  if (rounds < 0 || rounds > 100000) return 2;
  const int listener = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in addr;
  memset(&addr, 0, sizeof addr);
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  if (listener < 0 || bind(listener, (struct sockaddr*)&addr, sizeof addr) != 0 ||
      listen(listener, 1) != 0 || getsockname(listener, (struct sockaddr*)&addr, &len) != 0) {
    printf("fail listen\n");
    return 1;
  }
  const int connections = argc > 2 ? atoi(argv[2]) : 1;
  if (connections < 1 || connections > 1000) return 2;
  for (int c = 0; c < connections; ++c) {
    const int client = socket(AF_INET, SOCK_STREAM, 0);
    if (client < 0 || connect(client, (struct sockaddr*)&addr, sizeof addr) != 0) {
      printf("fail connect\n");
      return 1;
    }
    const int server = accept(listener, NULL, NULL);
    if (server < 0) {
      printf("fail accept\n");
      return 1;
    }
    char buf[16];
    for (int i = 0; i < rounds; ++i) {
      if (write(client, "ping", 4) != 4 || read(server, buf, sizeof buf) != 4 ||
          write(server, "pong", 4) != 4 || read(client, buf, sizeof buf) != 4) {
        printf("fail round %d\n", i);
        return 1;
      }
    }
    close(server);
    close(client);
  }
  close(listener);
  printf("ok %d\n", rounds);
  return 0;
}
