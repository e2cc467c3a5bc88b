// A target for stress tests: THREADS threads write one byte to /dev/null as fast as they can
// for SECONDS seconds, a SIGALRM handler firing every 100 us also writes (re-entering libc
// while a thread may be inside the shim's slow path), and halfway through the main thread
// forks a child that must be able to write and exit. Prints the number of failed writes
// (the faults the threads saw) and "child ok" when the child worked.
//
// usage: stress_writer THREADS SECONDS
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <thread>
#include <vector>

namespace {

std::atomic<long> g_failed{0};
std::atomic<long> g_handler_writes{0};
int g_devnull = -1;

void on_alarm(int) {
  int saved = errno;
  if (write(g_devnull, "s", 1) < 0) g_failed.fetch_add(1, std::memory_order_relaxed);
  g_handler_writes.fetch_add(1, std::memory_order_relaxed);
  errno = saved;
}

void writer(std::chrono::steady_clock::time_point deadline) {
  long failed = 0;
  while (std::chrono::steady_clock::now() < deadline) {
    for (int i = 0; i < 256; ++i)
      if (write(g_devnull, "x", 1) < 0) ++failed;
  }
  g_failed.fetch_add(failed, std::memory_order_relaxed);
}

// The child writes too, and reports its own failures through a pipe, since its injections
// count in the session's shared counters like everyone else's.
bool child_works() {
  int report[2];
  if (pipe(report) != 0) return false;
  pid_t pid = fork();
  if (pid == 0) {
    long failed = 0;
    for (int i = 0; i < 1000; ++i)
      if (write(g_devnull, "c", 1) < 0) ++failed;
    (void)!write(report[1], &failed, sizeof failed);
    _exit(0);
  }
  close(report[1]);
  long child_failed = 0;
  bool got = read(report[0], &child_failed, sizeof child_failed) == sizeof child_failed;
  close(report[0]);
  g_failed.fetch_add(child_failed, std::memory_order_relaxed);
  int status = 0;
  return got && pid > 0 && waitpid(pid, &status, 0) == pid && WIFEXITED(status) &&
         WEXITSTATUS(status) == 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: stress_writer THREADS SECONDS\n");
    return 2;
  }
  const int threads = std::atoi(argv[1]);
  const double seconds = std::atof(argv[2]);
  g_devnull = open("/dev/null", O_WRONLY);
  if (g_devnull < 0) return 1;

  struct sigaction sa = {};
  sa.sa_handler = on_alarm;
  sa.sa_flags = SA_RESTART;
  sigaction(SIGALRM, &sa, nullptr);
  struct itimerval timer = {{0, 100}, {0, 100}};
  setitimer(ITIMER_REAL, &timer, nullptr);

  const auto start = std::chrono::steady_clock::now();
  const auto deadline = start + std::chrono::microseconds(static_cast<long>(seconds * 1e6));
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) pool.emplace_back(writer, deadline);
  std::this_thread::sleep_until(start + (deadline - start) / 2);
  const bool child_ok = child_works();
  for (auto& t : pool) t.join();

  struct itimerval off = {};
  setitimer(ITIMER_REAL, &off, nullptr);
  std::printf("failed %ld\n", g_failed.load());
  std::printf("handler writes %ld\n", g_handler_writes.load());
  std::printf("%s\n", child_ok ? "child ok" : "child failed");
  return child_ok ? 0 : 1;
}
