/* A program that spins on a failing call, as redis-server did on an injected EMFILE from
 * accept: it writes one byte to FILE COUNT times as fast as it can, ignoring every error, and
 * prints how many writes failed. Under a fault on FILE every write is injected and every
 * injection is an event: without a bound the shim's event log grows by about 200 bytes per
 * call, hundreds of megabytes a minute. Bounded: at most COUNT writes and 30 seconds.
 * Usage: fl_spin_fail FILE [COUNT] */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char** argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: %s FILE [COUNT]\n", argv[0]);
    return 2;
  }
  const long count = argc > 2 ? atol(argv[2]) : 200000;
  int fd = open(argv[1], O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) {
    perror("open");
    return 1;
  }
  struct timespec start, now;
  clock_gettime(CLOCK_MONOTONIC, &start);
  long failed = 0, done = 0;
  for (; done < count; ++done) {
    if (write(fd, "x", 1) != 1) ++failed;
    if ((done & 1023) == 0) {
      clock_gettime(CLOCK_MONOTONIC, &now);
      if (now.tv_sec - start.tv_sec > 30) break;
    }
  }
  close(fd);
  printf("writes %ld failed %ld\n", done, failed);
  return 0;
}
