/* Cancels a thread held by an injected `delay` in an @fs call. rename is not a cancellation
 * point (glibc declares it __THROW, noexcept in C++): the held rename must complete and the
 * thread return normally, the cancel staying pending — a wait that acted on it would unwind
 * through a noexcept frame ("terminate called without an active exception") or cancel a call
 * that cannot be cancelled. close is a cancellation point: the held close is cancelled, as the
 * real close would be. Prints "rename: done" or "rename: canceled", then "close: canceled" or
 * "close: done". Usage: fl_fs_cancel DIR (DIR/x is renamed to DIR/y; DIR/z is opened and
 * closed). Expects a delay of about 400 ms on rename and close.
 */
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

static char g_from[4096], g_to[4096], g_closed[4096];

static void* do_rename(void* arg) {
  (void)arg;
  rename(g_from, g_to);
  return NULL;
}

static void* do_close(void* arg) {
  close(*(int*)arg);
  return NULL;
}

static void run(const char* name, void* (*fn)(void*), void* arg) {
  pthread_t t;
  void* result = NULL;
  struct timespec pause = {0, 100 * 1000 * 1000};
  pthread_create(&t, NULL, fn, arg);
  nanosleep(&pause, NULL); /* the thread is now held in the delay */
  pthread_cancel(t);
  pthread_join(t, &result);
  printf("%s: %s\n", name, result == PTHREAD_CANCELED ? "canceled" : "done");
  fflush(stdout);
}

int main(int argc, char** argv) {
  if (argc != 2) return 2;
  snprintf(g_from, sizeof g_from, "%s/x", argv[1]);
  snprintf(g_to, sizeof g_to, "%s/y", argv[1]);
  snprintf(g_closed, sizeof g_closed, "%s/z", argv[1]);
  int fd = open(g_closed, O_WRONLY | O_CREAT, 0644);
  if (fd < 0 || close(open(g_from, O_WRONLY | O_CREAT, 0644)) != 0) return 1;
  run("rename", do_rename, NULL);
  run("close", do_close, &fd);
  return 0;
}
