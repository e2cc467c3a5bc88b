/* fcntl is variadic and the preload interposes it (F_DUPFD makes an fd): every other command
 * must reach the kernel exactly as the program passed it: an int (F_SETFL, F_SETPIPE_SZ), a
 * struct pointer (F_SETLK, F_SETLKW, F_GETLK, F_GETOWN_EX) or nothing (F_GETFL), through fcntl
 * and fcntl64 (what _FILE_OFFSET_BITS=64 programs call). Prints the first command that came
 * back wrong, or "ok", and exits 0 only when all were right.
 *
 *   fl_fcntl_passthrough FILE */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define CHECK(cond, what)                                               \
  do {                                                                  \
    if (!(cond)) {                                                      \
      fprintf(stderr, "wrong: %s (errno %s)\n", what, strerror(errno)); \
      return 1;                                                         \
    }                                                                   \
  } while (0)

int main(int argc, char** argv) {
  if (argc != 2) return 2;
  int fd = open(argv[1], O_RDWR | O_CREAT, 0600);
  CHECK(fd >= 0, "open");
  int flags = fcntl(fd, F_GETFL);
  CHECK(flags >= 0 && !(flags & O_APPEND), "F_GETFL");
  CHECK(fcntl(fd, F_SETFL, flags | O_APPEND) == 0, "F_SETFL");
  CHECK(fcntl(fd, F_GETFL) & O_APPEND, "F_SETFL took effect");

  int high = fcntl(fd, F_DUPFD_CLOEXEC, 100);
  CHECK(high >= 100, "F_DUPFD_CLOEXEC");
  CHECK(fcntl(high, F_GETFD) == FD_CLOEXEC, "F_GETFD");
  /* What a program built with _FILE_OFFSET_BITS=64 calls. */
  int high64 = fcntl64(fd, F_DUPFD_CLOEXEC, 200);
  CHECK(high64 >= 200 && fcntl64(high64, F_GETFD) == FD_CLOEXEC, "fcntl64 F_DUPFD_CLOEXEC");
  CHECK(fcntl64(fd, F_GETFL) & O_APPEND, "fcntl64 F_GETFL");
  int low = fcntl(fd, F_DUPFD, 0);
  CHECK(low >= 0 && low < 100 && fcntl(low, F_GETFD) == 0, "F_DUPFD");

  struct flock lock;
  memset(&lock, 0, sizeof lock);
  lock.l_type = F_WRLCK;
  lock.l_whence = SEEK_SET;
  lock.l_start = 0;
  lock.l_len = 10;
  CHECK(fcntl(fd, F_SETLK, &lock) == 0, "F_SETLK");
  lock.l_start = 20;
  CHECK(fcntl(fd, F_SETLKW, &lock) == 0, "F_SETLKW");
  pid_t child = fork();
  if (child == 0) {
    struct flock probe;
    memset(&probe, 0, sizeof probe);
    probe.l_type = F_WRLCK;
    probe.l_whence = SEEK_SET;
    probe.l_start = 5;
    probe.l_len = 1;
    if (fcntl(fd, F_GETLK, &probe) != 0) _exit(10);
    if (probe.l_type != F_WRLCK || probe.l_pid != getppid()) _exit(11);
    probe.l_type = F_WRLCK;
    if (fcntl(fd, F_SETLK, &probe) == 0 || (errno != EAGAIN && errno != EACCES)) _exit(12);
    _exit(0);
  }
  int status = 0;
  CHECK(child > 0 && waitpid(child, &status, 0) == child, "fork");
  CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "F_GETLK/F_SETLK seen from a child");

  int p[2];
  CHECK(pipe(p) == 0, "pipe");
  CHECK(fcntl(p[0], F_SETPIPE_SZ, 1 << 17) >= (1 << 17), "F_SETPIPE_SZ");
  CHECK(fcntl(p[0], F_GETPIPE_SZ) >= (1 << 17), "F_GETPIPE_SZ");

  struct f_owner_ex owner = {F_OWNER_PID, getpid()};
  CHECK(fcntl(fd, F_SETOWN_EX, &owner) == 0, "F_SETOWN_EX");
  memset(&owner, 0, sizeof owner);
  CHECK(fcntl(fd, F_GETOWN_EX, &owner) == 0 && owner.pid == getpid(), "F_GETOWN_EX");
  fprintf(stderr, "ok\n");
  return 0;
}
