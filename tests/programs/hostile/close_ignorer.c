/* A program that trusts close(): it writes a record to FILE, closes the fd without looking at
 * close's result, and reports "saved". On NFS (and any file system with deferred write-back)
 * close is where a failed write-back is reported, with EIO: this program then says "saved" for
 * a record that may be lost. Its twin, fl_close_checker, checks close's result and reports the
 * failure. Usage: fl_close_ignorer FILE. Exit 0 with "saved", 1 if open or write failed.
 */
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
  close(fd); /* the bug: the result is ignored */
  printf("saved\n");
  return 0;
}
