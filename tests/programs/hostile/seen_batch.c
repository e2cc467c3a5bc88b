/* `seen` counted in batches (shim/engine/engine.h, fd_call_quiet): quiet writes (a fd whose
 * cached verdict says no fault can match) add to a per-thread count that reaches the shared
 * counters later. This program tries to lose or double such counts at every point the shim
 * promises exactness: threads that end (joined, and one by pthread_exit in a detached-style
 * exit), a forked child that inherits the forking thread's pending count and exits, and the
 * main thread's own count at exit. Counts are not multiples of the batch size, so a lost
 * partial batch shows.
 *
 *   fl_seen_batch   prints "writes=N" (every write() this process tree made to /dev/null)
 *                   and exits 0; the test compares N with the fault's `seen`. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

enum { kThreads = 4 };
static int g_fd;

static long writes(long n) {
  long done = 0;
  for (long i = 0; i < n; ++i) done += write(g_fd, "x", 1) == 1;
  return done;
}

static void* worker(void* arg) {
  long n = (long)arg;
  writes(n);
  if (n % 2) pthread_exit(NULL); /* the thread-exit flush through pthread_exit too */
  return NULL;
}

int main(void) {
  g_fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
  if (g_fd < 0) return 1;
  long total = writes(101); /* the first decides and caches the verdict; the rest are quiet */
  pthread_t threads[kThreads];
  for (int i = 0; i < kThreads; ++i) {
    long n = 1000 + 37 * i;
    if (pthread_create(&threads[i], NULL, worker, (void*)n) != 0) return 1;
    total += n;
  }
  for (int i = 0; i < kThreads; ++i) pthread_join(threads[i], NULL);
  total += writes(29); /* pending in the main thread when it forks */
  pid_t child = fork();
  if (child < 0) return 1;
  if (child == 0) {
    writes(77);
    return 0; /* exit(): the shim's destructor flushes the child's own count */
  }
  int status = 0;
  if (waitpid(child, &status, 0) != child || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
    return 1;
  total += 77;
  total += writes(45);
  printf("writes=%ld\n", total);
  return 0;
}
