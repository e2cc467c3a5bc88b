/* A daemon tidies its descriptors: it closes 0, 1 and 2, then opens its database, which gets
 * the lowest free number, and keeps writing records into it. A preload that still writes its
 * own messages ("faultline: cannot open event log ...", the `[log] stderr` line of an
 * injection) to fd 2 writes them into the database.
 *
 *   fl_reuse_stdio DATABASE OTHERFILE
 *
 * Opens DATABASE three times after closing 0-2 (so it is fd 0, 1 and 2), writes one record
 * through each, then writes to OTHERFILE, which the test's fault injects into (its event log
 * cannot be opened, so the shim has a diagnostic to say too). Exit status 0 when everything
 * it asked for went as the kernel said. */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char** argv) {
  if (argc != 3) return 2;
  close(0);
  close(1);
  close(2);
  int fds[3];
  for (int i = 0; i < 3; ++i) {
    fds[i] = open(argv[1], O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fds[i] != i) return 3;
  }
  for (int i = 0; i < 3; ++i) {
    char record[32];
    const int n = snprintf(record, sizeof record, "record %d\n", i);
    if (write(fds[i], record, (size_t)n) != n) return 4;
  }
  int other = open(argv[2], O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (other < 0) return 5;
  /* The fault makes this fail (EIO): that is what the test asked for. */
  (void)!write(other, "payload\n", 8);
  if (write(fds[2], "record 3\n", 9) != 9) return 6;
  return 0;
}
