/* A call no fault names, in an armed family (shim/engine/engine.h, call_named_by_none): under
 * a fault naming only `write`, pwrite skips the deciding path on a process-local copy of the
 * calls some fault names. The copy must never outlive the generation it was built for: a live
 * edit that starts naming pwrite (add, set, enable) must fail the very next pwrite.
 *
 *   fl_named_calls DIR
 *   pwrites DIR/a.log 200 times (all must succeed: no fault names pwrite yet), prints
 *   "ready", waits for a stdin line (the test made a fault name pwrite meanwhile), pwrites
 *   once more.
 *
 * Prints "before=OK|FAILED after=OK|EIO|OTHER" and exits 0. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static const char* outcome(int fd) {
  errno = 0;
  if (pwrite(fd, "x\n", 2, 0) == 2) return "OK";
  return errno == EIO ? "EIO" : "OTHER";
}

int main(int argc, char** argv) {
  if (argc != 2) return 2;
  char a[4096];
  snprintf(a, sizeof a, "%s/a.log", argv[1]);
  int fd = open(a, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) return 1;
  int failed = 0;
  for (int i = 0; i < 200; ++i) failed += strcmp(outcome(fd), "OK") != 0;
  printf("ready\n");
  fflush(stdout);
  char line[64];
  if (!fgets(line, sizeof line, stdin)) return 5;
  const char* after = outcome(fd);
  printf("before=%s after=%s\n", failed ? "FAILED" : "OK", after);
  return 0;
}
