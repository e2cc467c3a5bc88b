/* fl_close_ignorer's careful twin: writes a record to FILE, and checks close()'s result, as
 * close(2) asks ("a careful programmer will check the return value of close()"): a deferred
 * write-back error (NFS: EIO) is reported there. Prints "saved", or "close failed: <strerror>"
 * and exits 1. It then checks that the fd really is closed (fcntl says EBADF: Linux closes the
 * fd even when close reports an error, so it must never be retried) and prints "fd closed".
 * Usage: fl_close_checker FILE.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char** argv) {
  if (argc != 2) return 2;
  const char* record = "order 42: paid\n";
  int fd = open(argv[1], O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0 || write(fd, record, strlen(record)) != (ssize_t)strlen(record)) {
    perror("write");
    return 1;
  }
  int failed = close(fd) != 0;
  int err = errno;
  if (fcntl(fd, F_GETFD) == -1 && errno == EBADF) printf("fd closed\n");
  if (failed) {
    printf("close failed: %s\n", strerror(err));
    return 1;
  }
  printf("saved\n");
  return 0;
}
