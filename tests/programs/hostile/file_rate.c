/* Disk writes under a `bandwidth` fault: each write must take as long as its bytes need at the
 * rate, and threads writing the same file must share the rate, not each get it whole.
 *
 *   fl_file_rate PATH KIB THREADS CHUNK_KIB
 *
 * THREADS threads each pwrite KIB/THREADS KiB to PATH (their own region), in CHUNK_KIB KiB
 * calls. Prints "start" before the first write, then "done MS" (wall time in milliseconds)
 * and exits 0 when every byte was written. Bounded by alarm(60). */
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int fd;
static long per_thread, chunk;
static int failed;

static void* writer(void* arg) {
  long index = (long)arg;
  char* buf = malloc((size_t)chunk);
  memset(buf, 'w', (size_t)chunk);
  for (long done = 0; done < per_thread; done += chunk) {
    if (pwrite(fd, buf, (size_t)chunk, index * per_thread + done) != chunk) failed = 1;
  }
  free(buf);
  return NULL;
}

int main(int argc, char** argv) {
  if (argc < 5) return 2;
  alarm(60);
  int threads = atoi(argv[3]);
  chunk = atol(argv[4]) * 1024;
  per_thread = atol(argv[2]) * 1024 / threads;
  fd = open(argv[1], O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0 || threads < 1 || threads > 16 || chunk <= 0) return 2;
  struct timespec t0, t1;
  printf("start\n");
  fflush(stdout);
  clock_gettime(CLOCK_MONOTONIC, &t0);
  pthread_t tid[16];
  for (long i = 0; i < threads; ++i) pthread_create(&tid[i], NULL, writer, (void*)i);
  for (int i = 0; i < threads; ++i) pthread_join(tid[i], NULL);
  clock_gettime(CLOCK_MONOTONIC, &t1);
  long ms = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
  printf("done %ld\n", ms);
  close(fd);
  return failed;
}
