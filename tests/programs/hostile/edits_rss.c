/* Grows under live edits? Four threads write to /dev/null without pause (every write is an
 * armed call, so every edit of the session makes the shim compile a new copy of its rules
 * while the other threads may still read the old one) while the test edits the session from
 * outside. Prints "ready" once every thread has made a call (the first copy exists), then for
 * each "measure" line on stdin one line "rss_growth_kib R heap_growth_kib H writes W": the
 * growth of VmRSS and of the malloc heap since "ready". Ends at EOF on stdin. */
#include <fcntl.h>
#include <malloc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum { kThreads = 4 };

static atomic_int stop;
static atomic_long writes;
static int null_fd;

static long rss_kib(void) {
  FILE* f = fopen("/proc/self/status", "r");
  if (!f) return -1;
  char line[256];
  long kib = -1;
  while (fgets(line, sizeof line, f))
    if (strncmp(line, "VmRSS:", 6) == 0) kib = atol(line + 6);
  fclose(f);
  return kib;
}

static long heap_kib(void) { return (long)(mallinfo2().uordblks / 1024); }

static void* writer(void* arg) {
  (void)arg;
  char byte = 'x';
  while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
    if (write(null_fd, &byte, 1) != 1) {
      perror("write");
      exit(1);
    }
    atomic_fetch_add_explicit(&writes, 1, memory_order_relaxed);
  }
  return NULL;
}

int main(void) {
  null_fd = open("/dev/null", O_WRONLY);
  if (null_fd < 0) {
    perror("open /dev/null");
    return 1;
  }
  pthread_t threads[kThreads];
  for (int i = 0; i < kThreads; ++i) pthread_create(&threads[i], NULL, writer, NULL);
  /* Every thread has written (bounded: 10 s) before the baseline is taken. */
  for (int i = 0; i < 10000 && atomic_load(&writes) < 1000 * kThreads; ++i) usleep(1000);
  const long rss0 = rss_kib(), heap0 = heap_kib();
  printf("ready\n");
  fflush(stdout);
  char line[64];
  while (fgets(line, sizeof line, stdin)) {
    if (strncmp(line, "measure", 7) != 0) continue;
    printf("rss_growth_kib %ld heap_growth_kib %ld writes %ld\n", rss_kib() - rss0,
           heap_kib() - heap0, atomic_load(&writes));
    fflush(stdout);
  }
  atomic_store(&stop, 1);
  for (int i = 0; i < kThreads; ++i) pthread_join(threads[i], NULL);
  return 0;
}
