// Replaces a file's contents the way configuration writers and databases do: write a
// temporary file, rename it over the old one, fsync the directory. "unsafe" skips the fsync of
// the temporary file before the rename (the classic ext4 zero-length-file bug: the rename can
// reach the disk before the data); "safe" fsyncs it first. A power cut right after the
// directory fsync shows the difference: the unsafe file comes back empty, the safe one whole.
//
// usage: fl_replace_file safe|unsafe DIR CONTENT
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static int fail(const char* what) {
  perror(what);
  return 1;
}

int main(int argc, char** argv) {
  if (argc != 4) {
    fprintf(stderr, "usage: %s safe|unsafe DIR CONTENT\n", argv[0]);
    return 2;
  }
  const int safe = strcmp(argv[1], "safe") == 0;
  char tmp[4096], target[4096];
  snprintf(tmp, sizeof tmp, "%s/config.tmp", argv[2]);
  snprintf(target, sizeof target, "%s/config", argv[2]);
  int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) return fail("open");
  const size_t len = strlen(argv[3]);
  if (write(fd, argv[3], len) != (ssize_t)len) return fail("write");
  if (safe && fsync(fd) != 0) return fail("fsync");
  if (close(fd) != 0) return fail("close");
  if (rename(tmp, target) != 0) return fail("rename");
  int dir = open(argv[2], O_RDONLY | O_DIRECTORY);
  if (dir < 0) return fail("open dir");
  if (fsync(dir) != 0) return fail("fsync dir");
  close(dir);
  printf("replaced\n");
  return 0;
}
