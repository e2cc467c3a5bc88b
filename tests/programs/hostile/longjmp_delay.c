/* A SIGALRM handler siglongjmps out of a write that an injected `delay` holds: the classic
 * "give up on a slow call" pattern. The jump skips everything between the handler and
 * sigsetjmp, so whatever the shim set on entry (its per-thread reentrancy guard) and meant to
 * clear on return stays set unless the wait released it: every later call of the thread then
 * passes unfaulted without a word. Later writes to a file an `error` fault covers print what
 * they got. Usage: fl_longjmp_delay DIR (slow.txt and later.txt are made there). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

static sigjmp_buf g_jump;

static void on_alarm(int sig) {
  (void)sig;
  siglongjmp(g_jump, 1);
}

int main(int argc, char** argv) {
  if (argc < 2) return 2;
  setvbuf(stdout, NULL, _IOLBF, 0);
  char slow[4096], later[4096];
  snprintf(slow, sizeof slow, "%s/slow.txt", argv[1]);
  snprintf(later, sizeof later, "%s/later.txt", argv[1]);
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_alarm;
  sigaction(SIGALRM, &sa, NULL);
  int fd = open(slow, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (sigsetjmp(g_jump, 1) == 0) {
    struct itimerval t = {{0, 0}, {0, 200000}};
    setitimer(ITIMER_REAL, &t, NULL);
    ssize_t r = write(fd, "x", 1); /* held 10 s by the fault */
    printf("slow write returned %zd\n", r);
  } else {
    printf("jumped out of the slow write\n");
  }
  close(fd);
  int out = open(later, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  int faulted = 0;
  for (int i = 0; i < 3; ++i) {
    ssize_t r = write(out, "y", 1);
    printf("later write %d: %s\n", i, r < 0 ? strerrorname_np(errno) : "ok");
    if (r < 0 && errno == EIO) ++faulted;
  }
  close(out);
  return faulted == 3 ? 0 : 1;
}
