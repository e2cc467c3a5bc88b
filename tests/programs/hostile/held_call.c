/* Sits in one call a fault holds and says when it came back, so a test can lift the fault
 * (panic, disable, the TTL) and see the wait end. "write DIR": a write to DIR/slow.txt (an
 * injected `delay`); "recv": a blocking recv on a socketpair whose peer already sent "hello"
 * (a `blackhole`: the data is delivered once the partition is lifted). Prints "holding"
 * before the call and "returned R after MS ms" after it. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static long long now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int main(int argc, char** argv) {
  if (argc < 2) return 2;
  setvbuf(stdout, NULL, _IOLBF, 0);
  ssize_t r;
  long long start;
  if (strcmp(argv[1], "write") == 0 && argc > 2) {
    char path[4096];
    snprintf(path, sizeof path, "%s/slow.txt", argv[2]);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    printf("holding\n");
    start = now_ms();
    r = write(fd, "x", 1);
  } else if (strcmp(argv[1], "recv") == 0) {
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0) return 1;
    if (send(sv[1], "hello", 5, 0) != 5) return 1;
    char buf[16];
    printf("holding\n");
    start = now_ms();
    r = recv(sv[0], buf, sizeof buf, 0);
  } else {
    return 2;
  }
  int err = errno;
  printf("returned %zd after %lld ms (%s)\n", r, now_ms() - start, r < 0 ? strerror(err) : "ok");
  return 0;
}
