/* A client whose connection a fault cuts mid-stream (after_bytes with eof, reset, corrupt,
 * blackhole), reporting exactly what it received, byte for byte.
 *
 *   fl_cut_client PORT read   receives from fl_cut_server raw (the pattern k % 251) until
 *                             end-of-file or an error; SO_RCVTIMEO 2 s
 *   fl_cut_client PORT send   sends 1 MiB in 16 KiB send() calls until done or an error
 *
 * Prints one line: "eof N", "error ENAME N" (N = bytes received or sent before it), and for
 * read, " first_bad K" (the first offset whose byte is not the pattern's, -1 if none).
 * Then, for read after end-of-file, a second receive: "again R" (its return value); after a
 * timeout (EAGAIN: a stalled stream), one byte is sent and a receive tried again: "again
 * ENAME" or "again R" (a send must not end a stall). */
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

int main(int argc, char** argv) {
  if (argc < 3) return 2;
  signal(SIGPIPE, SIG_IGN);
  alarm(30);
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in addr;
  memset(&addr, 0, sizeof addr);
  addr.sin_family = AF_INET;
  addr.sin_port = htons((unsigned short)atoi(argv[1]));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, (struct sockaddr*)&addr, sizeof addr) != 0) {
    perror("connect");
    return 2;
  }
  long long total = 0;
  if (strcmp(argv[2], "send") == 0) {
    static char buf[16384];
    memset(buf, 'x', sizeof buf);
    while (total < (1 << 20)) {
      ssize_t w = send(fd, buf, sizeof buf, 0);
      if (w < 0) {
        printf("error %s %lld\n", strerrorname_np(errno), total);
        return 0;
      }
      total += w;
    }
    printf("sent %lld\n", total);
    return 0;
  }
  struct timeval tv = {2, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  long long first_bad = -1;
  unsigned char buf[16384];
  for (;;) {
    ssize_t r = recv(fd, buf, sizeof buf, 0);
    if (r > 0) {
      for (ssize_t i = 0; i < r && first_bad < 0; ++i)
        if (buf[i] != (unsigned char)((total + i) % 251)) first_bad = total + i;
      total += r;
      continue;
    }
    if (r == 0) {
      printf("eof %lld first_bad %lld\n", total, first_bad);
      printf("again %zd\n", recv(fd, buf, sizeof buf, 0));
    } else {
      const int err = errno;
      printf("error %s %lld first_bad %lld\n", strerrorname_np(err), total, first_bad);
      if (err == EAGAIN) {
        send(fd, "x", 1, 0);
        r = recv(fd, buf, sizeof buf, 0);
        if (r < 0)
          printf("again %s\n", strerrorname_np(errno));
        else
          printf("again %zd\n", r);
      }
    }
    return 0;
  }
}
