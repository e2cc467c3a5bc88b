/* Hands the @fs path calls bad pointers: a NULL, a wild ((char*)16) and an unmapped (mmap +
 * munmap) path, in either position of rename/link/symlink and as the only path of unlink,
 * mkdir, rmdir, truncate and the *at forms. The kernel answers each with -1 and EFAULT; a shim
 * that reads a path to match a `path` selector before the kernel has checked it dies of
 * SIGSEGV instead. Prints one line per call, "name ret errno", so that a run under faultline
 * can be compared with a native one line for line, then "done". Usage: fl_fs_wild_paths DIR
 * (DIR holds a real file, "f", used as the good path).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

static void report(const char* name, long ret) {
  printf("%s %ld %d\n", name, ret, ret < 0 ? errno : 0);
  fflush(stdout);
}

#define CALL(name, expr) \
  do {                   \
    errno = 0;           \
    long r_ = (expr);    \
    report(name, r_);    \
  } while (0)

int main(int argc, char** argv) {
  if (argc != 2) return 2;
  char good[4096];
  snprintf(good, sizeof good, "%s/f", argv[1]);
  int fd = open(good, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) return 1;
  close(fd);
  char* gone = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (gone == MAP_FAILED) return 1;
  munmap(gone, 4096);
  const char* bad[] = {NULL, (const char*)16, gone};
  const char* kind[] = {"null", "wild", "unmapped"};
  char name[64];
  for (int i = 0; i < 3; ++i) {
#define NAMED(call) (snprintf(name, sizeof name, "%s-%s", call, kind[i]), name)
    CALL(NAMED("rename-old"), rename(bad[i], good));
    CALL(NAMED("rename-new"), rename(good, bad[i]));
    CALL(NAMED("renameat2-new"), renameat2(AT_FDCWD, good, AT_FDCWD, bad[i], 0));
    CALL(NAMED("link-new"), link(good, bad[i]));
    CALL(NAMED("symlink-target"), symlink(bad[i], good));
    CALL(NAMED("unlink"), unlink(bad[i]));
    CALL(NAMED("unlinkat"), unlinkat(AT_FDCWD, bad[i], 0));
    CALL(NAMED("mkdir"), mkdir(bad[i], 0755));
    CALL(NAMED("rmdir"), rmdir(bad[i]));
    CALL(NAMED("truncate"), truncate(bad[i], 0));
  }
  printf("done\n");
  return 0;
}
