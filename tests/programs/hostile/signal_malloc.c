/* A SIGALRM handler calls write(2) (async-signal-safe) on DATAFILE many times a second while
 * the main thread does nothing but malloc and free. If the preload allocates on the path of
 * that write (building an event line with std::string, formatting with a library that
 * allocates), the handler re-enters malloc in the middle of the main thread's malloc: the
 * heap is corrupted or the allocator deadlocks on its own lock.
 *
 *   fl_signal_malloc DATAFILE ITERATIONS
 *
 * Every block is filled with a pattern derived from its address and checked before it is
 * freed, so silent corruption is reported too. Prints "ok N signals" at the end. */
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

static int g_fd = -1;
static volatile sig_atomic_t g_signals = 0;

static void on_alarm(int sig) {
  (void)sig;
  (void)!write(g_fd, "tick\n", 5);
  ++g_signals;
}

#define SLOTS 64

int main(int argc, char** argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: %s DATAFILE ITERATIONS\n", argv[0]);
    return 2;
  }
  g_fd = open(argv[1], O_WRONLY | O_CREAT | O_APPEND, 0644);
  if (g_fd < 0) {
    perror("open");
    return 1;
  }
  const long iterations = strtol(argv[2], NULL, 10);
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_alarm;
  sa.sa_flags = SA_RESTART;
  sigaction(SIGALRM, &sa, NULL);
  struct itimerval every = {{0, 200}, {0, 200}}; /* as often as the kernel will */
  setitimer(ITIMER_REAL, &every, NULL);

  unsigned char* blocks[SLOTS] = {0};
  size_t sizes[SLOTS] = {0};
  uint32_t rng = 12345;
  for (long i = 0; i < iterations; ++i) {
    rng = rng * 1103515245u + 12345u;
    const int slot = (int)((rng >> 8) % SLOTS);
    if (blocks[slot]) {
      const unsigned char mark = (unsigned char)((uintptr_t)blocks[slot] >> 4);
      for (size_t k = 0; k < sizes[slot]; ++k)
        if (blocks[slot][k] != mark) {
          printf("corrupt block at iteration %ld\n", i);
          return 3;
        }
      free(blocks[slot]);
    }
    /* Around the size of a path-long std::string: the same tcache bins as the handler. */
    sizes[slot] = 40 + (rng >> 16) % 64;
    blocks[slot] = malloc(sizes[slot]);
    if (!blocks[slot]) return 4;
    memset(blocks[slot], (unsigned char)((uintptr_t)blocks[slot] >> 4), sizes[slot]);
  }
  struct itimerval off = {{0, 0}, {0, 0}};
  setitimer(ITIMER_REAL, &off, NULL);
  for (int s = 0; s < SLOTS; ++s) free(blocks[s]);
  printf("ok %d signals\n", (int)g_signals);
  return 0;
}
