/* A counter file kept up to date N times, the way many programs do it — and the way they
 * should. What it tries to break: a power cut between two steps of an update.
 *
 *   powercut_counter unsafe N   truncate ./counter, fsync (a durability point between the
 *                               two steps), write the new value, fsync: a cut after the
 *                               truncation leaves an empty file, which is no number at all
 *   powercut_counter safe N     write ./counter.tmp, fsync it, rename it over ./counter,
 *                               fsync the directory: at every point the file holds either the
 *                               old value or the new one
 *
 * ./counter holds a decimal number (or does not exist yet: 0). A check that the file is
 * missing or holds a number tells the two apart under `faultline explore --powercut`. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void die(const char* what) {
  perror(what);
  exit(1);
}

static long read_counter(void) {
  char text[32] = {0};
  int fd = open("counter", O_RDONLY);
  if (fd < 0) return 0;
  if (read(fd, text, sizeof text - 1) < 0) die("read counter");
  close(fd);
  return strtol(text, NULL, 10);
}

static void write_all(int fd, const char* text) {
  size_t n = strlen(text);
  if (write(fd, text, n) != (ssize_t)n) die("write");
}

/* The durability point between the two steps of the unsafe update (a function of its own so
 * that the report names it). */
static __attribute__((noinline)) void sync_truncation(int fd) {
  if (fsync(fd) != 0) die("fsync after truncate");
}

/* Two steps with a durability point between them: the file is empty in between. */
static __attribute__((noinline)) void update_unsafe(long value) {
  char text[32];
  int fd = open("counter", O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) die("open counter");
  sync_truncation(fd);
  snprintf(text, sizeof text, "%ld\n", value);
  write_all(fd, text);
  if (fsync(fd) != 0) die("fsync after write");
  close(fd);
}

/* The new value is complete and durable before it replaces the old one. */
static __attribute__((noinline)) void update_safe(long value) {
  char text[32];
  int fd = open("counter.tmp", O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) die("open counter.tmp");
  snprintf(text, sizeof text, "%ld\n", value);
  write_all(fd, text);
  if (fsync(fd) != 0) die("fsync counter.tmp");
  close(fd);
  if (rename("counter.tmp", "counter") != 0) die("rename");
  int dir = open(".", O_RDONLY | O_DIRECTORY);
  if (dir < 0) die("open .");
  if (fsync(dir) != 0) die("fsync .");
  close(dir);
}

int main(int argc, char** argv) {
  if (argc != 3 || (strcmp(argv[1], "safe") != 0 && strcmp(argv[1], "unsafe") != 0)) {
    fprintf(stderr, "usage: powercut_counter safe|unsafe N\n");
    return 2;
  }
  const int safe = strcmp(argv[1], "safe") == 0;
  const long n = strtol(argv[2], NULL, 10);
  for (long i = 0; i < n; ++i) {
    const long value = read_counter() + 1;
    if (safe)
      update_safe(value);
    else
      update_unsafe(value);
  }
  printf("counter: %ld\n", read_counter());
  return 0;
}
