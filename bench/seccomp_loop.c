/* seccomp_loop: times N one-byte write(2)s to /dev/null, each on its own (clock_gettime goes
 * through the vDSO: it is no system call, so the filter never sees it), and prints the median
 * and the 99th percentile in nanoseconds. Built statically by bench/seccomp.sh, so that
 * `faultline run` picks the seccomp backend for it. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

static long long now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static int cmp(const void* a, const void* b) {
  long long x = *(const long long*)a, y = *(const long long*)b;
  return x < y ? -1 : x > y;
}

int main(int argc, char** argv) {
  int n = argc > 1 ? atoi(argv[1]) : 20000;
  if (n < 100 || n > 10000000) n = 20000;
  int fd = open("/dev/null", O_WRONLY);
  long long* t = malloc(sizeof(long long) * (size_t)n);
  for (int i = 0; i < n; ++i) {
    long long start = now_ns();
    if (write(fd, "x", 1) != 1) return 1;
    t[i] = now_ns() - start;
  }
  qsort(t, (size_t)n, sizeof t[0], cmp);
  printf("median_ns=%lld p99_ns=%lld\n", t[n / 2], t[n * 99 / 100]);
  return 0;
}
