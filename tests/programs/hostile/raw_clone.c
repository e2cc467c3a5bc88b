/* A child made by a raw clone(2) system call, as a runtime or a sandbox may make one: glibc's
 * fork() is bypassed, so no atfork handler runs and the child inherits every variable of its
 * parent's preload as it is. The child then exits through exit(), so atexit handlers and
 * library destructors run in it. A preload that decides "I created the session, I remove it
 * at exit" by an inherited flag deletes its parent's live session there.
 *
 * usage: fl_raw_clone FILE
 * Writes FILE before and after the child's life and prints, after it:
 *   before=<errno or 0> after=<errno or 0> session=<present|gone|none> name=<session>
 * where session is whether /dev/shm/faultline.$FAULTLINE_SESSION still exists. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static int write_once(const char* file) {
  int fd = open(file, O_WRONLY | O_CREAT | O_APPEND, 0644);
  if (fd < 0) return -1;
  int result = write(fd, "x", 1) == 1 ? 0 : errno;
  close(fd);
  return result;
}

int main(int argc, char** argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: %s FILE\n", argv[0]);
    return 2;
  }
  const int before = write_once(argv[1]);
  /* clone(SIGCHLD) with no new stack: a fork without glibc's fork(). */
  long child = syscall(SYS_clone, (unsigned long)SIGCHLD, 0, 0, 0, 0);
  if (child < 0) {
    perror("clone");
    return 1;
  }
  if (child == 0) exit(0); /* atexit handlers and destructors run here */
  int status = 0;
  while (waitpid((pid_t)child, &status, 0) < 0 && errno == EINTR) {
  }
  const int after = write_once(argv[1]);
  const char* session = getenv("FAULTLINE_SESSION");
  const char* state = "none";
  if (session && *session) {
    char path[256];
    snprintf(path, sizeof path, "/dev/shm/faultline.%s", session);
    state = access(path, F_OK) == 0 ? "present" : "gone";
  }
  printf("before=%d after=%d session=%s name=%s\n", before, after, state, session ? session : "");
  return 0;
}
