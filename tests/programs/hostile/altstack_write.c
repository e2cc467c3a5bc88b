/* A signal handler running on a small sigaltstack calls write(2), which is async-signal-safe
 * and so allowed there: once on /dev/null (armed, matching no fault) and once on DATAFILE (a
 * fault matches it, and its event is logged). A preload that needs kilobytes of stack for an
 * armed call overflows the alternate stack where the program alone does not.
 *
 *   fl_altstack_write SIZE DATAFILE
 *
 * SIZE bytes of alternate stack, mapped with a PROT_NONE guard page below it so an overflow is
 * a SIGSEGV rather than silent corruption. The stack is painted with a pattern first; after
 * the handler ran, the program prints "used N": the high-water mark of the handler's stack
 * (the kernel's signal frame included), and "write -1 EIO"-style results of both writes. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define PATTERN 0xa5

static int g_null_fd = -1;
static int g_data_fd = -1;
static volatile ssize_t g_null_result, g_data_result;
static volatile int g_null_errno, g_data_errno;

static void on_signal(int sig) {
  (void)sig;
  int saved = errno;
  g_null_result = write(g_null_fd, "x", 1);
  g_null_errno = g_null_result < 0 ? errno : 0;
  g_data_result = write(g_data_fd, "y", 1);
  g_data_errno = g_data_result < 0 ? errno : 0;
  errno = saved;
}

int main(int argc, char** argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: %s SIZE DATAFILE\n", argv[0]);
    return 2;
  }
  const size_t size = (size_t)strtoul(argv[1], NULL, 10);
  const size_t page = (size_t)sysconf(_SC_PAGESIZE);
  const size_t mapped = (size + page - 1) / page * page + page;
  unsigned char* map =
      mmap(NULL, mapped, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (map == MAP_FAILED || mprotect(map, page, PROT_NONE) != 0) {
    perror("mmap");
    return 1;
  }
  /* The stack grows down from the top of the mapping: SIZE bytes right above the guard... */
  unsigned char* stack = map + mapped - size;
  /* ...but at least one page separates it from the guard only if SIZE is not page-sized:
   * the bytes between the guard and `stack` stay painted and unused either way. */
  memset(map + page, PATTERN, mapped - page);

  g_null_fd = open("/dev/null", O_WRONLY);
  g_data_fd = open(argv[2], O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (g_null_fd < 0 || g_data_fd < 0) {
    perror("open");
    return 1;
  }
  /* Bind write's and errno's PLT slots now: a lazy binding inside the handler would save the
   * whole vector register state on the alternate stack (several KiB with AVX-512) and hide
   * what the write itself costs. A write of 0 bytes to /dev/null changes nothing. */
  errno = 0;
  if (write(g_null_fd, "", 0) != 0) perror("write");

  stack_t ss = {.ss_sp = stack, .ss_size = size, .ss_flags = 0};
  if (sigaltstack(&ss, NULL) != 0) {
    perror("sigaltstack");
    return 1;
  }
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sa.sa_flags = SA_ONSTACK;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGUSR1, &sa, NULL);
  raise(SIGUSR1);

  size_t untouched = 0;
  while (untouched < size && stack[untouched] == PATTERN) ++untouched;
  printf("used %zu\n", size - untouched);
  printf("null %zd %s\n", g_null_result, g_null_errno ? strerror(g_null_errno) : "ok");
  printf("data %zd %s\n", g_data_result, g_data_errno ? strerror(g_data_errno) : "ok");
  return 0;
}
