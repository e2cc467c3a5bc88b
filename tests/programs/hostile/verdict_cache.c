/* The per-fd verdict cache (shim/engine/engine.h, fd_call_quiet): once a write to an fd missed
 * every fault for a reason fixed per fd (its path), later writes skip the engine. Each mode makes
 * that cached "no" wrong and checks the next write sees the truth. The policy's fault fails
 * writes to DIR/b.log with EIO; a.log never matches (until a live edit says otherwise).
 *
 *   fl_verdict_cache MODE DIR
 *   reopen  write a.log (cached "no"), close it, open b.log on the same number, write
 *   dup2    write a.log (cached "no"), dup2(b.log's fd, a.log's fd), write through a.log's
 *   live    write a.log (cached "no"), print "ready", wait for a stdin line (the test moved
 *           the fault's path to a.log meanwhile), write a.log again
 *
 * Prints "first=OK|EIO second=OK|EIO" (the first and the last write's outcome) and exits 0. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static const char* outcome(int fd) {
  errno = 0;
  if (write(fd, "x\n", 2) == 2) return "OK";
  return errno == EIO ? "EIO" : "OTHER";
}

int main(int argc, char** argv) {
  if (argc != 3) return 2;
  char a[4096], b[4096];
  snprintf(a, sizeof a, "%s/a.log", argv[2]);
  snprintf(b, sizeof b, "%s/b.log", argv[2]);
  int fd = open(a, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) return 1;
  /* Several writes: the first decides and stores the verdict, the others use it. */
  const char* first = outcome(fd);
  for (int i = 0; i < 3; ++i) (void)outcome(fd);
  const char* second = "none";
  if (strcmp(argv[1], "reopen") == 0) {
    close(fd);
    int again = open(b, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (again != fd) return 3; /* the lowest free number: the one just closed */
    second = outcome(again);
  } else if (strcmp(argv[1], "dup2") == 0) {
    int other = open(b, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (other < 0 || dup2(other, fd) != fd) return 4;
    second = outcome(fd);
  } else if (strcmp(argv[1], "live") == 0) {
    printf("ready\n");
    fflush(stdout);
    char line[64];
    if (!fgets(line, sizeof line, stdin)) return 5;
    second = outcome(fd);
  } else {
    return 2;
  }
  printf("first=%s second=%s\n", first, second);
  return 0;
}
