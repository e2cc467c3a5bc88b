// Writes a line to a file through io_uring when the kernel lets it, and with write() when
// io_uring_setup fails with ENOSYS, as runtimes that use io_uring opportunistically do. What
// it tries to break: a @write fault on the file. I/O submitted through io_uring never passes
// through libc's write(), so no preload sees it; [target] io_uring = "deny" makes the setup
// fail and the program fall back to write(), where the fault is injected. It prints which
// path it took ("path: io_uring" or "path: write") and reports a failed write as a program
// would ("uring_or_write: write FILE: <strerror>", exit 1).
//
// usage: fl_uring_or_write FILE [SECONDS]   (SECONDS: stay alive that long after the write)
#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char kLine[] = "written by uring_or_write\n";

// 0 when the line was written through the ring; -ENOSYS when io_uring is not available; any
// other negative errno when it was available but the write failed.
static int write_with_io_uring(int fd) {
  struct io_uring ring;
  int err = io_uring_queue_init(4, &ring, 0);
  if (err < 0) return err;
  struct io_uring_sqe* sqe = io_uring_get_sqe(&ring);
  io_uring_prep_write(sqe, fd, kLine, sizeof kLine - 1, 0);
  err = io_uring_submit(&ring);
  struct io_uring_cqe* cqe = NULL;
  if (err >= 0) err = io_uring_wait_cqe(&ring, &cqe);
  if (err >= 0) {
    err = cqe->res < 0 ? cqe->res : 0;
    io_uring_cqe_seen(&ring, cqe);
  }
  io_uring_queue_exit(&ring);
  return err;
}

int main(int argc, char** argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: %s FILE [SECONDS]\n", argv[0]);
    return 2;
  }
  // Line-buffered: each line leaves with the printf, through glibc's internal write; a
  // fflush() would be a @write call of its own and the fault would not be "silent".
  setvbuf(stdout, NULL, _IOLBF, 0);
  int fd = open(argv[1], O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) {
    fprintf(stderr, "uring_or_write: open %s: %s\n", argv[1], strerror(errno));
    return 1;
  }
  // The path line leaves after the write: a test that reads it and asks `faultline status`
  // at once must find the write already counted.
  int err = write_with_io_uring(fd);
  if (err == -ENOSYS) {
    err = write(fd, kLine, sizeof kLine - 1) == (ssize_t)(sizeof kLine - 1) ? 0 : -errno;
    printf("path: write (io_uring_setup: %s)\n", strerror(ENOSYS));
  } else {
    printf("path: io_uring\n");
  }
  if (err < 0) {
    fprintf(stderr, "uring_or_write: write %s: %s\n", argv[1], strerror(-err));
    return 1;
  }
  if (argc > 2) sleep((unsigned)atoi(argv[2]));
  return close(fd) == 0 ? 0 : 1;
}
