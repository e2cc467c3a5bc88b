/* Prints the fd numbers the program's first open() calls get, one per line: a preload that
 * holds an fd of its own (its control block, its event log) shifts them, and a program that
 * counts on the lowest free number (a daemon that closed 0-2 and expects its database at 0)
 * then writes its data into the wrong file. */
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

int main(int argc, char** argv) {
  const char* file = argc > 1 ? argv[1] : "/dev/null";
  for (int i = 0; i < 3; ++i) {
    int fd = open(file, O_RDONLY);
    if (fd < 0) {
      perror("open");
      return 1;
    }
    printf("%d\n", fd);
  }
  return 0;
}
