/* A daemon in the classic way: fork, setsid, fork again, stdio to /dev/null; the process that
 * was started returns at once. The daemon then writes to FILE every 20 ms for at most SECONDS
 * and keeps a tally in STATUS ("pid P failed F ok O", replaced atomically by rename). It
 * outlives `faultline run`, leaves its process group and its terminal: a session removed when
 * `run` returns would leave it injecting with nothing able to reach it.
 *
 * With a fourth argument "libc", glibc's daemon(3) does the forking instead: its fork is
 * internal to libc, past any interposed fork.
 *
 * usage: fl_daemon_writer FILE STATUS SECONDS [libc] */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void tally(const char* status, int failed, int ok) {
  char temp[4096], line[128];
  snprintf(temp, sizeof temp, "%s.tmp", status);
  int fd = open(temp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) return;
  int n = snprintf(line, sizeof line, "pid %d failed %d ok %d\n", (int)getpid(), failed, ok);
  if (write(fd, line, (size_t)n) == n) rename(temp, status);
  close(fd);
}

static int run(const char* file, const char* status, double seconds);

int main(int argc, char** argv) {
  if (argc != 4 && argc != 5) {
    fprintf(stderr, "usage: %s FILE STATUS SECONDS [libc]\n", argv[0]);
    return 2;
  }
  if (argc == 5) {
    if (daemon(0, 0) != 0) return 1;
    return run(argv[1], argv[2], atof(argv[3]));
  }
  pid_t first = fork();
  if (first < 0) return 1;
  if (first > 0) {
    int status = 0;
    waitpid(first, &status, 0);
    return 0;
  }
  setsid();
  if (fork() != 0) _exit(0);
  int null = open("/dev/null", O_RDWR);
  if (null >= 0) {
    dup2(null, 0);
    dup2(null, 1);
    dup2(null, 2);
    if (null > 2) close(null);
  }
  return run(argv[1], argv[2], atof(argv[3]));
}

static int run(const char* file, const char* status, double seconds) {
  const double end = now() + seconds;
  int fd = open(file, O_WRONLY | O_CREAT | O_APPEND, 0644);
  int failed = 0, ok = 0;
  while (now() < end) {
    if (write(fd, "x", 1) == 1)
      ++ok;
    else
      ++failed;
    tally(status, failed, ok);
    struct timespec pause = {0, 20 * 1000 * 1000};
    nanosleep(&pause, NULL);
  }
  return 0;
}
