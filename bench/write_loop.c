/* write_loop N: N one-byte write()s to /dev/null, nothing else. Run under
 * `valgrind --tool=callgrind` at two values of N: the difference in total instructions,
 * divided by the difference in N, is the instruction cost of one write() call (loop,
 * PLT, any preloaded wrapper, libc's syscall stub), with start-up and exit cancelled out.
 * The return value is deliberately ignored: under a fault policy some writes fail. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

int main(int argc, char** argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: %s N\n", argv[0]);
    return 2;
  }
  char* end = NULL;
  long long n = strtoll(argv[1], &end, 10);
  if (!end || *end || n < 0) {
    fprintf(stderr, "write_loop: N must be a non-negative integer\n");
    return 2;
  }
  int fd = open("/dev/null", O_WRONLY);
  if (fd < 0) {
    perror("write_loop: /dev/null");
    return 1;
  }
  const char byte = 'x';
  long long failed = 0;
  for (long long i = 0; i < n; ++i) failed += write(fd, &byte, 1) < 0;
  close(fd);
  /* Printed so the loop has an observable result; failures are expected under a policy. */
  printf("%lld writes, %lld failed\n", n, failed);
  return 0;
}
