// Closes every high fd with a raw system call (past the shim's close wrappers) and puts its
// own file on those numbers with a raw dup3, then overwrites a tracked file. What it tries to
// break: the shim's undo log keeps a high fd number; if the shim trusted the number, its undo
// records for the overwrite would land in the program's own file. It prints the size of its
// own file, which only it wrote: "mine: 5".
//
// usage: fl_undo_fd_thief TRACKED_FILE MINE
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

int main(int argc, char** argv) {
  if (argc != 3) return 2;
  int fd = open(argv[1], O_RDWR);
  if (fd < 0 || pwrite(fd, "first", 5, 0) != 5) return perror("tracked"), 1;  // opens the log
  int mine = open(argv[2], O_RDWR | O_CREAT | O_TRUNC, 0644);
  if (mine < 0 || write(mine, "mine\n", 5) != 5) return perror("mine"), 1;
  for (int n = 10; n < 1024; ++n) {
    if (n == fd || n == mine) continue;
    syscall(SYS_close, n);
    syscall(SYS_dup3, mine, n, 0);
  }
  if (pwrite(fd, "again", 5, 0) != 5) return perror("overwrite"), 1;
  struct stat st;
  if (fstat(mine, &st) != 0) return perror("fstat"), 1;
  printf("mine: %lld\n", (long long)st.st_size);
  return 0;
}
