/* Writes one byte N times to a file and says how many writes failed: the count a fault
 * injector must agree with. Two copies of a preload in one process (an LD_PRELOAD that
 * already names a libfaultline.so, then `faultline run` adding its own) would decide every
 * call twice, and a fault that fails every second call would then fail them all. Also the
 * member of a start-up race: each of many processes started together writes once and must
 * see the injected error.
 *
 * usage: fl_count_writes FILE N    prints "writes=N failed=F errno=E" (E: the last errno) */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

int main(int argc, char** argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: %s FILE N\n", argv[0]);
    return 2;
  }
  const int n = atoi(argv[2]);
  int fd = open(argv[1], O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) {
    perror("open");
    return 1;
  }
  int failed = 0, last_errno = 0;
  for (int i = 0; i < n; ++i) {
    if (write(fd, "x", 1) != 1) {
      ++failed;
      last_errno = errno;
    }
  }
  close(fd);
  printf("writes=%d failed=%d errno=%d\n", n, failed, last_errno);
  return 0;
}
