/* The far end of a connection cut mid-stream (after_bytes with eof, reset, corrupt,
 * blackhole). Run WITHOUT the preload: it stands for the real server whose client is faulted.
 * It listens on 127.0.0.1 (an ephemeral port, printed first), serves ONE connection and
 * reports what it saw of the client's end, then exits. Bounded: alarm(30).
 *
 *   fl_cut_server http   reads a request (up to its blank line), sends an HTTP/1.1 response
 *                        with a 1 MiB body, then waits for the client's end
 *   fl_cut_server raw    sends 1 MiB of the pattern byte(k) = k % 251 (no header), then waits
 *   fl_cut_server sink   reads until end-of-file or error, counting the bytes
 *
 * Prints "port P", then one line: "closed N" (the client ended the connection cleanly: a read
 * returned 0), "reset N" (ECONNRESET or EPIPE), or "open N" (nothing within 10 s), where N is
 * the bytes it received (sink) or sent (http, raw). */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#define BODY (1 << 20)

static const char* end_of(int fd) {
  char buf[4096];
  for (;;) {
    ssize_t r = recv(fd, buf, sizeof buf, 0);
    if (r == 0) return "closed";
    if (r < 0 && (errno == ECONNRESET || errno == EPIPE)) return "reset";
    if (r < 0) return "open"; /* the 10 s timeout */
  }
}

int main(int argc, char** argv) {
  const char* mode = argc > 1 ? argv[1] : "http";
  signal(SIGPIPE, SIG_IGN);
  alarm(30);
  int listener = socket(AF_INET, SOCK_STREAM, 0);
  int one = 1;
  setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in addr;
  memset(&addr, 0, sizeof addr);
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  if (bind(listener, (struct sockaddr*)&addr, sizeof addr) != 0 ||
      getsockname(listener, (struct sockaddr*)&addr, &len) != 0 || listen(listener, 4) != 0) {
    perror("listener");
    return 2;
  }
  printf("port %d\n", ntohs(addr.sin_port));
  fflush(stdout);
  int fd = accept(listener, NULL, NULL);
  if (fd < 0) {
    perror("accept");
    return 2;
  }
  struct timeval tv = {10, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);

  long long count = 0;
  const char* how;
  if (strcmp(mode, "sink") == 0) {
    char buf[65536];
    for (;;) {
      ssize_t r = recv(fd, buf, sizeof buf, 0);
      if (r > 0) {
        count += r;
        continue;
      }
      how = r == 0 ? "closed" : (errno == ECONNRESET ? "reset" : "open");
      break;
    }
  } else {
    static char out[BODY + 256];
    size_t n = 0;
    if (strcmp(mode, "http") == 0) {
      char req[4096];
      size_t got = 0;
      while (got < sizeof req - 1 && !memmem(req, got, "\r\n\r\n", 4)) {
        ssize_t r = recv(fd, req + got, sizeof req - 1 - got, 0);
        if (r <= 0) break;
        got += (size_t)r;
      }
      n = (size_t)snprintf(out, sizeof out,
                           "HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n",
                           BODY);
    }
    for (int k = 0; k < BODY; ++k) out[n + k] = (char)(k % 251);
    n += BODY;
    how = NULL;
    while ((size_t)count < n) {
      ssize_t w = send(fd, out + count, n - (size_t)count, 0);
      if (w < 0) {
        how = errno == ECONNRESET || errno == EPIPE ? "reset" : "open";
        break;
      }
      count += w;
    }
    if (!how) how = end_of(fd);
  }
  printf("%s %lld\n", how, count);
  return 0;
}
