/* durable_writer: writes files the way careless and careful programs do, then pulls the
 * power (an fsync of ROOT/marker, which the test's policy turns into `powercut = true`), so
 * that the test can check what survived: only what was made durable.
 *
 *   durable_writer ROOT unsynced   ROOT/d/data: "durable\n" + fsync, then an append and an
 *                                  overwrite in place, never synced
 *   durable_writer ROOT create     ROOT/d/new created, written and fsynced, its dir never
 *   durable_writer ROOT create-dirsync   the same, and ROOT/d fsynced after
 *   durable_writer ROOT fsyncgate  "hello" over ROOT/d/data, fsync (the policy fails the
 *                                  first), fsync again (succeeds)
 *   durable_writer ROOT multi      two processes overwrite halves of ROOT/d/data, unsynced
 *   durable_writer ROOT stdio      fprintf + fflush to ROOT/d/data after its fsynced start
 *   durable_writer ROOT setfl      ROOT/d/data opened O_APPEND, "durable\n" + fsync, then
 *                                  O_APPEND cleared with fcntl(F_SETFL) and "XX" written over
 *                                  its start, never synced (the shim must not go on taking
 *                                  the fd for an appending one); then a second fd gains
 *                                  O_APPEND the same way and appends, and pwritev2 RWF_APPEND
 * Prints what each step returned, so the test can see the program believed it was safe. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

static char root[2048];

static void path(char* out, const char* name) { snprintf(out, 4096, "%s/%s", root, name); }

static void must(int ok, const char* what) {
  if (!ok) {
    fprintf(stderr, "durable_writer: %s: %s\n", what, strerror(errno));
    exit(3);
  }
}

static void put(int fd, const char* s) {
  must(write(fd, s, strlen(s)) == (ssize_t)strlen(s), "write");
}

static void cut(void) {
  char p[4096];
  path(p, "marker");
  int fd = open(p, O_WRONLY | O_CREAT, 0644);
  must(fd >= 0, "open marker");
  printf("cutting\n");
  fflush(stdout);
  fsync(fd); /* the policy's powercut */
  printf("survived the cut\n");
  exit(4);
}

int main(int argc, char** argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: durable_writer ROOT MODE\n");
    return 2;
  }
  snprintf(root, sizeof root, "%s", argv[1]);
  const char* mode = argv[2];
  char data[4096], dir[4096];
  path(data, "d/data");
  path(dir, "d");
  if (strcmp(mode, "unsynced") == 0) {
    int fd = open(data, O_RDWR | O_CREAT | O_TRUNC, 0644);
    must(fd >= 0, "open");
    put(fd, "durable\n");
    must(fsync(fd) == 0, "fsync");
    put(fd, "lost-append\n");
    must(pwrite(fd, "XX", 2, 0) == 2, "pwrite");
    printf("wrote\n");
    cut();
  } else if (strcmp(mode, "create") == 0 || strcmp(mode, "create-dirsync") == 0) {
    char p[4096];
    path(p, "d/new");
    int fd = open(p, O_WRONLY | O_CREAT | O_EXCL, 0644);
    must(fd >= 0, "create");
    put(fd, "new file\n");
    must(fsync(fd) == 0, "fsync");
    if (strcmp(mode, "create-dirsync") == 0) {
      int dfd = open(dir, O_RDONLY | O_DIRECTORY);
      must(dfd >= 0, "open dir");
      must(fsync(dfd) == 0, "fsync dir");
      printf("dir synced\n");
    }
    cut();
  } else if (strcmp(mode, "fsyncgate") == 0) {
    int fd = open(data, O_RDWR);
    must(fd >= 0, "open");
    must(pwrite(fd, "hello", 5, 0) == 5, "pwrite");
    int r1 = fsync(fd);
    printf("first fsync: %s\n", r1 == 0 ? "ok" : strerror(errno));
    int r2 = fsync(fd);
    printf("second fsync: %s\n", r2 == 0 ? "ok" : strerror(errno));
    cut();
  } else if (strcmp(mode, "multi") == 0) {
    int fd = open(data, O_RDWR);
    must(fd >= 0, "open");
    pid_t child = fork();
    must(child >= 0, "fork");
    if (child == 0) {
      int cfd = open(data, O_RDWR);
      must(cfd >= 0 && pwrite(cfd, "CCCC", 4, 4) == 4, "child pwrite");
      _exit(0);
    }
    int status;
    waitpid(child, &status, 0);
    must(pwrite(fd, "PPPP", 4, 0) == 4, "parent pwrite");
    printf("both wrote\n");
    cut();
  } else if (strcmp(mode, "setfl") == 0) {
    int fd = open(data, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND, 0644);
    must(fd >= 0, "open");
    put(fd, "durable\n");
    must(fsync(fd) == 0, "fsync");
    must(fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_APPEND) == 0, "F_SETFL");
    must(lseek(fd, 0, SEEK_SET) == 0, "lseek");
    put(fd, "XX");
    int other = open(data, O_WRONLY);
    must(other >= 0, "open again");
    must(fcntl(other, F_SETFL, fcntl(other, F_GETFL) | O_APPEND) == 0, "F_SETFL append");
    put(other, "lost-append\n");
    struct iovec v = {(void*)"lost-rwf\n", 9};
    must(pwritev2(other, &v, 1, 0, RWF_APPEND) == 9, "pwritev2 RWF_APPEND");
    printf("wrote\n");
    cut();
  } else if (strcmp(mode, "stdio") == 0) {
    FILE* f = fopen(data, "w");
    must(f != NULL, "fopen");
    fputs("durable\n", f);
    must(fflush(f) == 0 && fsync(fileno(f)) == 0, "fflush+fsync");
    fputs("lost by stdio\n", f);
    must(fflush(f) == 0, "fflush");
    cut();
  }
  fprintf(stderr, "unknown mode %s\n", mode);
  return 2;
}
