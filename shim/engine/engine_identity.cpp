// The process identity the engine matches and names: comm (the `process` selector and event
// lines) and the executable's name, re-read after fork and exec and when the program renames
// itself (identity.cpp's wrappers call engine_process_renamed), or set by the seccomp backend
// for the process it decides for. A change makes the rules re-evaluate `process`.
#include <fcntl.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "faultline/glob.h"
#include "shim/engine/engine_internal.h"

namespace faultline::shim::engine_detail {
namespace {

// Process identity, for the `process` selector and event lines; re-read after fork and exec,
// and when the program renames itself (identity.cpp). comm is kept as atomic words: a rename
// on one thread races event lines on others, and a torn name is better than a data race.
// The executable's name changes only with exec, so g_exe is written before threads exist.
std::atomic<std::uint64_t> g_comm_words[2];
constinit thread_local char t_comm[17] __attribute__((tls_model("initial-exec"))) = {};
char g_exe[256];

void load_comm(char (&out)[17]) {
  for (int i = 0; i < 2; ++i) {
    const std::uint64_t w = g_comm_words[i].load(std::memory_order_relaxed);
    std::memcpy(out + 8 * i, &w, 8);
  }
  out[16] = '\0';
}

// false when unchanged.
bool store_comm(const char* name) {
  char buf[16] = {};
  std::memcpy(buf, name, std::min<std::size_t>(std::strlen(name), 15));
  bool changed = false;
  for (int i = 0; i < 2; ++i) {
    std::uint64_t w;
    std::memcpy(&w, buf + 8 * i, 8);
    changed |= g_comm_words[i].exchange(w, std::memory_order_relaxed) != w;
  }
  return changed;
}

// The process's comm (its main thread's name), from any thread: /proc/self/comm, or the
// calling thread's own name where /proc is not mounted (at start and after fork, the calling
// thread is the main one).
void read_comm(char (&out)[17]) {
  CancelOff no_cancel;  // shim.h: open, read and close are cancellation points
  out[0] = '\0';
  const int fd = FL_REAL(open)("/proc/self/comm", O_RDONLY | O_CLOEXEC);
  if (fd >= 0) {
    const ssize_t n = FL_REAL(read)(fd, out, 16);
    FL_REAL(close)(fd);
    if (n > 0) {
      out[n] = '\0';
      if (out[n - 1] == '\n') out[n - 1] = '\0';
      return;
    }
  }
  prctl(PR_GET_NAME, out, 0, 0, 0);
  out[16] = '\0';
}

}  // namespace

bool process_matches(const FaultSpec& spec) {
  if (!spec.process[0]) return true;
  char comm[17];
  load_comm(comm);
  return glob_list_hits(spec.process, sizeof spec.process,
                        [&comm](const char* glob) {
                          return glob_match(glob, comm) || glob_match(glob, g_exe);
                        })
      .matches();
}

}  // namespace faultline::shim::engine_detail

namespace faultline::shim {

using namespace engine_detail;

void engine_reset_process_identity() noexcept {
  char comm[17];
  read_comm(comm);
  store_comm(comm);
  char exe[4096];
  ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
  g_exe[0] = '\0';
  if (n > 0) {
    exe[n] = '\0';
    const char* base = std::strrchr(exe, '/');
    const char* name = base ? base + 1 : exe;
    std::size_t len = std::min(std::strlen(name), sizeof g_exe - 1);
    std::memcpy(g_exe, name, len);
    g_exe[len] = '\0';
  }
  g_identity_changed.store(true, std::memory_order_relaxed);
}

void engine_process_renamed() noexcept {
  char comm[17];
  read_comm(comm);
  // Thread pools name every worker: only a change of the process's own name rebuilds rules.
  if (store_comm(comm)) g_identity_changed.store(true, std::memory_order_release);
}

void engine_set_process_identity(const char* comm, const char* exe) noexcept {
  bool changed = store_comm(comm);
  if (std::strncmp(g_exe, exe, sizeof g_exe - 1) != 0) {
    const std::size_t n = std::min(std::strlen(exe), sizeof g_exe - 1);
    std::memcpy(g_exe, exe, n);
    g_exe[n] = '\0';
    changed = true;
  }
  if (changed) g_identity_changed.store(true, std::memory_order_release);
}

const char* engine_process_name() noexcept {
  load_comm(t_comm);
  return t_comm;
}

// The cut is recorded before anyone dies, so that whoever reverts the tracked files (the
}  // namespace faultline::shim
