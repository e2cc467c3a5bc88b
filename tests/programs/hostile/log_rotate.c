/* Log rotation and fd-number reuse behind the preload's back. A fault aimed at old.log
 * (its path glob ending in old.log) must never hit the file that takes old.log's fd number
 * afterwards: the preload caches what each fd is, and these ways of changing an fd pass none of its
 * close/open wrappers (glibc calls its internal __close/__open/__dup3, or the program makes a
 * raw syscall).
 *
 *   fl_log_rotate MODE DIR
 *
 * writes one line to DIR/old.log (the fault is expected to fail it: that fills the cache),
 * then makes DIR/new.log take old.log's fd number by MODE:
 *   freopen      freopen(new.log, "a", stream)              (log rotation)
 *   stdout       freopen(old.log) onto stdout, then freopen(new.log) onto stdout
 *   closefrom    closefrom(3), then a raw syscall(SYS_openat) of new.log
 *   close_range  a raw syscall(SYS_close_range), then a raw syscall(SYS_openat)
 *   dupfd        raw openat of new.log, raw close of old, fcntl(F_DUPFD) onto the old number
 *   dup3         raw openat of new.log, dup3() onto the old number
 *   dup3raw      raw openat of new.log, a raw syscall(SYS_dup3) onto the old number
 * and writes kLines lines to new.log with fprintf+fflush (stdio modes) and write(fd). It
 * prints "before=N after=M" on stderr (errors seen before and after the change) and exits 0
 * only when every write after the change succeeded. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

enum { kLines = 5 };

static int raw_open(const char* path) {
  return (int)syscall(SYS_openat, AT_FDCWD, path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
}

static int write_line(int fd, const char* text) {
  size_t len = strlen(text);
  return write(fd, text, len) == (ssize_t)len ? 0 : 1;
}

int main(int argc, char** argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: fl_log_rotate MODE DIR\n");
    return 2;
  }
  const char* mode = argv[1];
  char old_path[4096], new_path[4096];
  snprintf(old_path, sizeof old_path, "%s/old.log", argv[2]);
  snprintf(new_path, sizeof new_path, "%s/new.log", argv[2]);
  const int stdio_mode = !strcmp(mode, "freopen") || !strcmp(mode, "stdout");

  int before = 0, after = 0;
  FILE* stream = NULL;
  if (!strcmp(mode, "stdout")) {
    fflush(stdout);
    stream = freopen(old_path, "a", stdout);
  } else {
    stream = fopen(old_path, "a");
  }
  if (!stream) {
    perror("open old.log");
    return 2;
  }
  const int old_fd = fileno(stream);
  /* Both ways to old.log; the fault fails them (that is what fills the preload's cache). */
  fprintf(stream, "old stdio\n");
  if (fflush(stream) != 0) ++before;
  before += write_line(old_fd, "old raw\n");

  int fd = -1;
  if (!strcmp(mode, "freopen") || !strcmp(mode, "stdout")) {
    stream = freopen(new_path, "a", stream);
    if (!stream) {
      perror("freopen new.log");
      return 2;
    }
    fd = fileno(stream);
  } else if (!strcmp(mode, "closefrom")) {
    closefrom(old_fd);
    fd = raw_open(new_path);
  } else if (!strcmp(mode, "close_range")) {
    syscall(SYS_close_range, (unsigned)old_fd, ~0u, 0);
    fd = raw_open(new_path);
  } else {
    int fresh = raw_open(new_path);
    if (fresh < 0) {
      perror("openat new.log");
      return 2;
    }
    if (!strcmp(mode, "dupfd")) {
      syscall(SYS_close, old_fd);
      fd = fcntl(fresh, F_DUPFD, old_fd);
    } else if (!strcmp(mode, "dup3")) {
      fd = dup3(fresh, old_fd, 0);
    } else if (!strcmp(mode, "dup3raw")) {
      fd = (int)syscall(SYS_dup3, fresh, old_fd, 0);
    } else {
      fprintf(stderr, "unknown mode %s\n", mode);
      return 2;
    }
    syscall(SYS_close, fresh);
  }
  if (fd != old_fd) {
    fprintf(stderr, "new.log got fd %d, not old.log's %d (errno %d)\n", fd, old_fd, errno);
    return 3;
  }

  for (int i = 0; i < kLines; ++i) {
    char line[64];
    if (stdio_mode) {
      fprintf(stream, "stdio %d\n", i);
      if (fflush(stream) != 0) {
        fprintf(stderr, "fflush %d: %s\n", i, strerror(errno));
        ++after;
      }
    }
    snprintf(line, sizeof line, "raw %d\n", i);
    if (write_line(fd, line)) {
      fprintf(stderr, "write %d: %s\n", i, strerror(errno));
      ++after;
    }
  }
  fprintf(stderr, "before=%d after=%d\n", before, after);
  return after == 0 ? 0 : 1;
}
