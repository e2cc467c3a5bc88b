// Cancels threads that sit in waits the shim adds: (a) a write held by an injected `delay`,
// (b) a blocking connect into a `blackhole`, (c) a blocking recv on a blackholed socket. Each
// wait must be a cancellation point that unwinds like the real call's would: the thread's
// cleanup handler and C++ destructors run, the join reports PTHREAD_CANCELED, and the process
// lives on (a `noexcept` frame on the way aborts it: "terminate called without an active
// exception"). Then a write that an `error` fault covers must fail: the cancelled wait left no
// reentrancy guard behind. (d) adds a cancel that is already pending when the thread enters a
// write an `error` fault fails, with an event log configured. Usage: fl_cancel_wait DIR (slow.txt
// and later.txt are made there).
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sched.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <string>

namespace {

std::string g_dir;
int g_cleanups = 0;
int g_destructors = 0;

void cleanup(void*) { ++g_cleanups; }

struct Destructor {
  ~Destructor() { ++g_destructors; }
};

void* delayed_write(void*) {
  Destructor d;
  pthread_cleanup_push(cleanup, nullptr);
  const int fd = open((g_dir + "/slow.txt").c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  const ssize_t r = write(fd, "x", 1);  // held 10 s by the fault
  std::printf("a: write returned %zd before the cancel\n", r);
  pthread_cleanup_pop(0);
  return nullptr;
}

void* blackholed_connect(void*) {
  Destructor d;
  pthread_cleanup_push(cleanup, nullptr);
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in to {};
  to.sin_family = AF_INET;
  to.sin_port = htons(9);
  to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  const int r = connect(fd, reinterpret_cast<struct sockaddr*>(&to), sizeof to);
  std::printf("b: connect returned %d (%s) before the cancel\n", r, strerror(errno));
  pthread_cleanup_pop(0);
  return nullptr;
}

void* blackholed_recv(void*) {
  Destructor d;
  pthread_cleanup_push(cleanup, nullptr);
  int sv[2];
  socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
  struct timeval limit = {8, 0};  // bounds the test if the cancel does nothing
  setsockopt(sv[0], SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof limit);
  char buf[8];
  const ssize_t r = recv(sv[0], buf, sizeof buf, 0);
  std::printf("c: recv returned %zd (%s) before the cancel\n", r, strerror(errno));
  pthread_cleanup_pop(0);
  return nullptr;
}

// (d) A cancel already pending when the thread enters a write that an `error` fault fails:
// the real write is a cancellation point, so the thread ends there. The shim's own work on
// the way (deciding, writing the event line to the log: open and write are cancellation
// points) must not act on it inside noexcept code.
std::atomic<int> g_step{0};  // 1: the thread is ready, 2: the cancel was sent
bool g_write_returned = false;

void* pending_then_write(void*) {
  Destructor d;
  pthread_cleanup_push(cleanup, nullptr);
  const int fd = open((g_dir + "/later.txt").c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
  int old = 0;
  pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &old);
  g_step = 1;
  for (int i = 0; i < 10'000'000 && g_step.load() != 2; ++i) sched_yield();
  pthread_setcancelstate(old, nullptr);
  write(fd, "z", 1);  // cancelled here, as without the shim
  g_write_returned = true;
  pthread_cleanup_pop(0);
  return nullptr;
}

bool cancel_pending() {
  const int cleanups = g_cleanups, destructors = g_destructors;
  pthread_t thread;
  if (pthread_create(&thread, nullptr, pending_then_write, nullptr) != 0) return false;
  for (int i = 0; i < 10'000'000 && g_step.load() != 1; ++i) sched_yield();
  pthread_cancel(thread);
  g_step = 2;
  void* result = nullptr;
  pthread_join(thread, &result);
  const bool cancelled = result == PTHREAD_CANCELED;
  std::printf("d: %s %s, cleanup %s, destructor %s\n", cancelled ? "cancelled" : "not cancelled",
              g_write_returned ? "after the write" : "at the write",
              g_cleanups > cleanups ? "ran" : "did not run",
              g_destructors > destructors ? "ran" : "did not run");
  return cancelled && !g_write_returned && g_cleanups > cleanups && g_destructors > destructors;
}

bool cancel_after_200ms(const char* name, void* (*body)(void*)) {
  const int cleanups = g_cleanups, destructors = g_destructors;
  pthread_t thread;
  if (pthread_create(&thread, nullptr, body, nullptr) != 0) return false;
  struct timespec pause = {0, 200'000'000};
  nanosleep(&pause, nullptr);
  pthread_cancel(thread);
  void* result = nullptr;
  pthread_join(thread, &result);
  const bool cancelled = result == PTHREAD_CANCELED;
  std::printf("%s: %s, cleanup %s, destructor %s\n", name,
              cancelled ? "cancelled" : "not cancelled",
              g_cleanups > cleanups ? "ran" : "did not run",
              g_destructors > destructors ? "ran" : "did not run");
  std::fflush(stdout);
  return cancelled && g_cleanups > cleanups && g_destructors > destructors;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) return 2;
  g_dir = argv[1];
  setvbuf(stdout, nullptr, _IOLBF, 0);
  bool ok = cancel_after_200ms("a", delayed_write);
  ok = cancel_after_200ms("b", blackholed_connect) && ok;
  ok = cancel_after_200ms("c", blackholed_recv) && ok;
  ok = cancel_pending() && ok;
  const int fd = open((g_dir + "/later.txt").c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  const ssize_t r = write(fd, "y", 1);
  std::printf("later write: %s\n", r < 0 ? strerrorname_np(errno) : "ok");
  close(fd);
  return ok && r < 0 && errno == EIO ? 0 : 1;
}
