/* Copies a file the way coreutils cp does: one copy_file_range (or sendfile) asking for
 * SSIZE_MAX bytes, and reports what that one call copied ("copied N"). Under `short = "50%"`
 * that must be half of the file: a shim that takes 50% of 2^63 lets everything through, and
 * one that computes count * 50 wraps (the event said 2%).
 * Usage: fl_copy_range copy_file_range|sendfile IN OUT
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/sendfile.h>
#include <unistd.h>

int main(int argc, char** argv) {
  if (argc != 4) {
    fprintf(stderr, "usage: %s copy_file_range|sendfile IN OUT\n", argv[0]);
    return 2;
  }
  int in = open(argv[2], O_RDONLY);
  int out = open(argv[3], O_WRONLY | O_CREAT | O_TRUNC, 0600);
  if (in < 0 || out < 0) {
    perror("open");
    return 2;
  }
  ssize_t r = strcmp(argv[1], "sendfile") == 0 ? sendfile(out, in, NULL, SSIZE_MAX)
                                               : copy_file_range(in, NULL, out, NULL, SSIZE_MAX, 0);
  if (r < 0) {
    perror(argv[1]);
    return 1;
  }
  printf("copied %zd\n", r);
  return 0;
}
