// The shim's own diagnostics (a refused policy, an unusable control block, corrupt fault
// slots, an unwritable event log) and the human stderr line of `[log] stderr = true`.
//
// Inside a target this must never flood, block, allocate or write where it does not belong.
// Every distinct message is printed once per process (a lock-free table of hashes of what was
// said), at most kMaxDiagnostics of them, then one "suppressed" line and silence. A signal
// handler's write(2) can lead here (an event log that cannot be opened), so the line is built
// with the allocation-free TextBuf in a scratch buffer and handed to the real write(2) in one
// call: no spdlog, no stdio, no malloc, no lock.
//
// Where it goes: to the file FAULTLINE_DIAG names (opened per line, because daemons close
// descriptors they did not open), else to the stderr the program had at start, but only while
// fd 2 is still that same open file (device, inode and type as fstat saw them at start). A
// program that closed fd 2 and got its database back as fd 2 must not find our text in it:
// then the line goes nowhere.
#include <fcntl.h>
#include <stdarg.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>

#include "session/session.h"
#include "shim/engine/log_limit.h"
#include "shim/engine/scratch.h"
#include "shim/engine/shim.h"
#include "shim/engine/text_buf.h"

namespace faultline::shim {
namespace {

constexpr int kMaxDiagnostics = 32;
constexpr std::size_t kMaxLine = 1024;

std::atomic<std::uint64_t> g_said[kMaxDiagnostics];
std::atomic<bool> g_suppressed{false};

// FAULTLINE_DIAG as read at start-up; empty: stderr. Written once by the constructor before
// any other thread of the process can exist, read afterwards.
char g_diag_path[512];

// fd 2 as the program had it at start. 0: not recorded yet, 1: recorded, 2: fd 2 was not
// open at start (nothing is ever written to it).
std::atomic<int> g_stderr_state{0};
std::atomic<std::uint64_t> g_stderr_dev, g_stderr_ino, g_stderr_rdev;
std::atomic<std::uint32_t> g_stderr_type;

void record_stderr() {
  struct stat st;
  if (fstat(STDERR_FILENO, &st) != 0) {
    g_stderr_state.store(2, std::memory_order_release);
    return;
  }
  g_stderr_dev.store(st.st_dev, std::memory_order_relaxed);
  g_stderr_ino.store(st.st_ino, std::memory_order_relaxed);
  g_stderr_rdev.store(st.st_rdev, std::memory_order_relaxed);
  g_stderr_type.store(st.st_mode & S_IFMT, std::memory_order_relaxed);
  g_stderr_state.store(1, std::memory_order_release);
}

// Is fd 2 still the stderr the program started with? (A pipe or a socket has its own inode
// in pipefs/sockfs, a tty its device node: the same identity covers them all.)
bool stderr_is_ours() {
  int state = g_stderr_state.load(std::memory_order_acquire);
  if (state == 0) {  // a diagnostic before diag_init (unit tests): take fd 2 as it is now
    record_stderr();
    state = g_stderr_state.load(std::memory_order_acquire);
  }
  if (state != 1) return false;
  struct stat st;
  if (fstat(STDERR_FILENO, &st) != 0) return false;
  return st.st_dev == g_stderr_dev.load(std::memory_order_relaxed) &&
         st.st_ino == g_stderr_ino.load(std::memory_order_relaxed) &&
         st.st_rdev == g_stderr_rdev.load(std::memory_order_relaxed) &&
         (st.st_mode & S_IFMT) == g_stderr_type.load(std::memory_order_relaxed);
}

std::uint64_t fnv1a(const char* text, std::size_t n) {
  std::uint64_t h = 0xcbf29ce484222325ull;
  for (std::size_t i = 0; i < n; ++i)
    h = (h ^ static_cast<unsigned char>(text[i])) * 0x100000001b3ull;
  return h == 0 ? 1 : h;  // 0 marks a free entry
}

enum class Verdict { kFirst, kRepeat, kTableFull };

// Records the message; says whether it is the first time. Lock-free: a CAS into the first
// free entry; a racing thread saying the same message sees it there or loses the CAS to it.
Verdict remember(std::uint64_t hash) {
  for (auto& entry : g_said) {
    std::uint64_t seen = entry.load(std::memory_order_acquire);
    if (seen == hash) return Verdict::kRepeat;
    if (seen == 0) {
      if (entry.compare_exchange_strong(seen, hash, std::memory_order_acq_rel))
        return Verdict::kFirst;
      if (seen == hash) return Verdict::kRepeat;
    }
  }
  return Verdict::kTableFull;
}

void to_stderr(const char* data, std::size_t size) {
  if (stderr_is_ours()) write_all(STDERR_FILENO, data, size);
}

// One message (without newline) to its destination. `scratch` has room for a line with the
// file prefix and for the fallback note.
void say(std::string_view message, char* scratch) {
  TextBuf line(scratch, kMaxLine + 64);
  if (g_diag_path[0] != '\0') {
    // With several processes (and their restarts) appending to one file, say when and who.
    line.put('[').utc_time(realtime_ns(), 3).put("] [").dec(static_cast<std::uint64_t>(getpid()));
    line.put("] ").put(message).put('\n');
    // Never through a link or into a file another user planted in /tmp (log_limit.h).
    const char* refusal = nullptr;
    const int fd = open_append_file(g_diag_path, 0600, &refusal);
    if (fd >= 0) {
      write_all(fd, line.data(), line.size());
      FL_REAL(close)(fd);
      return;
    }
    // The diagnostic must not be lost because its destination is: stderr instead.
    const int err = errno;
    TextBuf note(scratch + kMaxLine + 64, kMaxLine);
    note.put("faultline: cannot open FAULTLINE_DIAG file ").put(g_diag_path).put(": ");
    note.put(refusal ? refusal : error_text(err)).put('\n');
    to_stderr(note.data(), note.size());
    g_diag_path[0] = '\0';
    line.resize_down(0);
  }
  line.put(message).put('\n');
  to_stderr(line.data(), line.size());
}

}  // namespace

void write_all(int fd, const char* data, std::size_t size) noexcept {
  while (size > 0) {
    const ssize_t n = FL_REAL(write)(fd, data, size);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    data += n;
    size -= static_cast<std::size_t>(n);
  }
}

void diag_init(const char* diag_path) noexcept {
  g_diag_path[0] = '\0';
  if (diag_path != nullptr && std::strlen(diag_path) < sizeof g_diag_path)
    std::memcpy(g_diag_path, diag_path, std::strlen(diag_path) + 1);
  record_stderr();
}

void diag(const char* fmt, ...) noexcept {
  CancelOff no_cancel;  // shim.h: the open and write below are cancellation points
  Guard guard;          // the open and write below must not be faulted
  Scratch scratch;
  if (!scratch.get()) return;
  char* text = scratch.get() + 2 * kMaxLine + 128;
  TextBuf message(text, kMaxLine);
  va_list ap;
  va_start(ap, fmt);
  message.vformat(fmt, ap);
  va_end(ap);
  switch (remember(fnv1a(message.data(), message.size()))) {
    case Verdict::kRepeat:
      return;
    case Verdict::kTableFull:
      if (!g_suppressed.exchange(true))
        say("faultline: too many diagnostics; further ones are suppressed", scratch.get());
      return;
    case Verdict::kFirst:
      say(std::string_view(message.data(), message.size()), scratch.get());
      return;
  }
}

void event_line(std::string_view line) noexcept { to_stderr(line.data(), line.size()); }

void diag_reset_for_tests() noexcept {
  for (auto& entry : g_said) entry.store(0, std::memory_order_relaxed);
  g_suppressed.store(false, std::memory_order_relaxed);
}

}  // namespace faultline::shim
