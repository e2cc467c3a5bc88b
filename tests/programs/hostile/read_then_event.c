/* Makes one read(2) of stdin that a fault has already decided to inject, and whose event is
 * written only after the read returns (a `crash` with when = "after"): the test edits the
 * session while the read waits for input, replacing the fault that decided with another one
 * in the same slot, then sends a line. The event must name the fault that decided, not the
 * slot's new one. Prints "holding" before the read and "returned R" after it (not reached
 * when the crash is injected). */
#include <stdio.h>
#include <unistd.h>

int main(void) {
  setvbuf(stdout, NULL, _IOLBF, 0);
  printf("holding\n");
  char buf[64];
  const ssize_t r = read(0, buf, sizeof buf);
  printf("returned %zd\n", r);
  return 0;
}
