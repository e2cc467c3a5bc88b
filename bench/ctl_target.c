/* ctl_target PATH SECONDS: the looping target of the control-latency benchmark
 * (bench/ctl_latency.py). It write()s one byte to PATH again and again, as fast as it can,
 * and reports on stdout, one line each:
 *   "ready"          after its first successful write
 *   "fail <ns>"      at the first failed write of a run of failures: CLOCK_MONOTONIC, taken
 *                    right after that write returned (comparable with Python's
 *                    time.monotonic_ns() in another process)
 *   "ok"             at the first successful write after failures
 * It exits after SECONDS (a bound, should the driver vanish) or when stdout is closed
 * (SIGPIPE). The errno of the failure is not checked: the policy decides what it is. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

static long long now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

int main(int argc, char** argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: %s PATH SECONDS\n", argv[0]);
    return 2;
  }
  int fd = open(argv[1], O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) {
    perror("ctl_target: open");
    return 1;
  }
  const long long deadline = now_ns() + atoll(argv[2]) * 1000000000LL;
  const char byte = 'x';
  int failing = -1; /* -1: not ready yet, 0: writes succeed, 1: in a run of failures */
  for (unsigned long i = 0;; ++i) {
    const int failed = write(fd, &byte, 1) != 1;
    if (failed && failing == 0) {
      printf("fail %lld\n", now_ns());
      fflush(stdout);
      failing = 1;
    } else if (!failed && failing != 0) {
      puts(failing < 0 ? "ready" : "ok");
      fflush(stdout);
      failing = 0;
    }
    /* A regular file would grow without end: rewind it now and then. */
    if ((i & 0xfff) == 0) {
      lseek(fd, 0, SEEK_SET);
      if (now_ns() > deadline) break;
    }
  }
  close(fd);
  return 0;
}
