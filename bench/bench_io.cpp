// bench_io: the cost of one interposable I/O call, for comparing a native run with the same
// binary under LD_PRELOAD (passthrough, libfaultline.so idle / armed / injecting). Every
// benchmark is the cheapest form of its call, so the wrapper's share is as visible as it
// gets: the kernel work is a 1-byte transfer to /dev/null or from /dev/zero, an fsync of an
// empty tmpfs file, an open+close of /dev/null.
//
// Return values are deliberately not checked inside the loops: under a fault policy some
// calls fail by design, and the benchmark measures their cost, not their result.
#include <benchmark/benchmark.h>
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

namespace {

int open_or_skip(benchmark::State& state, const char* path, int flags) {
  int fd = open(path, flags);
  if (fd < 0)
    state.SkipWithError((std::string("open ") + path + ": " + std::strerror(errno)).c_str());
  return fd;
}

void BM_write_devnull(benchmark::State& state) {
  int fd = open_or_skip(state, "/dev/null", O_WRONLY);
  if (fd < 0) return;
  const char byte = 'x';
  for (auto _ : state) {
    ssize_t r = write(fd, &byte, 1);
    benchmark::DoNotOptimize(r);
  }
  close(fd);
}
BENCHMARK(BM_write_devnull);

void BM_pwrite_devnull(benchmark::State& state) {
  int fd = open_or_skip(state, "/dev/null", O_WRONLY);
  if (fd < 0) return;
  const char byte = 'x';
  for (auto _ : state) {
    ssize_t r = pwrite(fd, &byte, 1, 0);
    benchmark::DoNotOptimize(r);
  }
  close(fd);
}
BENCHMARK(BM_pwrite_devnull);

void BM_read_devzero(benchmark::State& state) {
  int fd = open_or_skip(state, "/dev/zero", O_RDONLY);
  if (fd < 0) return;
  char byte = 0;
  for (auto _ : state) {
    ssize_t r = read(fd, &byte, 1);
    benchmark::DoNotOptimize(r);
    benchmark::ClobberMemory();
  }
  close(fd);
}
BENCHMARK(BM_read_devzero);

// fsync of a file with nothing written: on tmpfs (/dev/shm) this is the syscall and little
// else. The file is unlinked at once, so an interrupted run leaves nothing behind.
void BM_fsync_tmpfile(benchmark::State& state) {
  int fd = -1;
  for (const char* dir : {"/dev/shm", "/tmp"}) {
    std::string path = std::string(dir) + "/faultline-bench-XXXXXX";
    fd = mkstemp(path.data());
    if (fd >= 0) {
      unlink(path.c_str());
      break;
    }
  }
  if (fd < 0) {
    state.SkipWithError("mkstemp in /dev/shm and /tmp failed");
    return;
  }
  for (auto _ : state) {
    int r = fsync(fd);
    benchmark::DoNotOptimize(r);
  }
  close(fd);
}
BENCHMARK(BM_fsync_tmpfile);

void BM_open_close(benchmark::State& state) {
  for (auto _ : state) {
    int fd = open("/dev/null", O_RDONLY);
    benchmark::DoNotOptimize(fd);
    close(fd);
  }
}
BENCHMARK(BM_open_close);

}  // namespace

BENCHMARK_MAIN();
