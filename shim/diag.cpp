// The shim's own diagnostics (a refused policy, an unusable control block, corrupt fault
// slots, an unwritable event log): one line each, through spdlog, to stderr or to the file
// named by FAULTLINE_DIAG.
//
// Inside a target this must never flood, block or leak: every distinct message is printed
// once per process (a hash table of what was said, lock-free), at most kMaxDiagnostics of
// them, then one "suppressed" line and silence. spdlog and fmt are compiled header-only into
// the shim with hidden visibility (the version script keeps them local), so they never clash
// with a copy the program carries. The logger is synchronous and owns no thread and no mutex:
// its one sink formats with a pattern formatter made per line (no shared mutable state) and
// hands the line to the real write(2) in one call, opening the FAULTLINE_DIAG file per line
// as the event log does, because daemons close descriptors they did not open.
#include <fcntl.h>
#include <spdlog/logger.h>
#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/sink.h>
#include <stdarg.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>
#include <new>

#include "log_limit.h"
#include "shim.h"

namespace faultline::shim {
namespace {

constexpr int kMaxDiagnostics = 32;
constexpr std::size_t kMaxLine = 1024;

std::atomic<std::uint64_t> g_said[kMaxDiagnostics];
std::atomic<bool> g_suppressed{false};

// FAULTLINE_DIAG as read at start-up; empty: stderr. Written once by the constructor before
// any other thread of the process can exist, read afterwards.
char g_diag_path[512];

std::uint64_t fnv1a(const char* text, std::size_t n) {
  std::uint64_t h = 0xcbf29ce484222325ull;
  for (std::size_t i = 0; i < n; ++i) h = (h ^ static_cast<unsigned char>(text[i])) * 0x100000001b3ull;
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
      if (entry.compare_exchange_strong(seen, hash, std::memory_order_acq_rel)) return Verdict::kFirst;
      if (seen == hash) return Verdict::kRepeat;
    }
  }
  return Verdict::kTableFull;
}

void write_all(int fd, const char* data, std::size_t size) {
  while (size > 0) {
    const ssize_t n = FL_REAL(write)(fd, data, size);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    data += n;
    size -= static_cast<std::size_t>(n);
  }
}

class FdSink final : public spdlog::sinks::sink {
 public:
  void log(const spdlog::details::log_msg& msg) override {
    const bool to_file = g_diag_path[0] != '\0';
    // With several processes (and their restarts) appending to one file, say when and who.
    spdlog::pattern_formatter formatter(to_file ? "[%Y-%m-%d %H:%M:%S.%e] [%P] %v" : "%v",
                                        spdlog::pattern_time_type::local, "\n");
    spdlog::memory_buf_t line;
    formatter.format(msg, line);
    if (to_file) {
      // Never through a link or into a file another user planted in /tmp (log_limit.h).
      const char* refusal = nullptr;
      const int fd = open_append_file(g_diag_path, 0600, &refusal);
      if (fd >= 0) {
        write_all(fd, line.data(), line.size());
        FL_REAL(close)(fd);
        return;
      }
      // The diagnostic must not be lost because its destination is: stderr instead.
      char note[640];
      const int n =
          std::snprintf(note, sizeof note, "faultline: cannot open FAULTLINE_DIAG file %s: %s\n",
                        g_diag_path, refusal ? refusal : std::strerror(errno));
      if (n > 0) write_all(STDERR_FILENO, note, std::min(sizeof note - 1, static_cast<std::size_t>(n)));
      g_diag_path[0] = '\0';
      spdlog::memory_buf_t plain;
      spdlog::pattern_formatter("%v", spdlog::pattern_time_type::local, "\n").format(msg, plain);
      write_all(STDERR_FILENO, plain.data(), plain.size());
      return;
    }
    write_all(STDERR_FILENO, line.data(), line.size());
  }
  void flush() override {}
  void set_pattern(const std::string&) override {}
  void set_formatter(std::unique_ptr<spdlog::formatter>) override {}
};

// Built on first use and never destroyed: a diagnostic may come from a destructor or another
// thread while the process exits.
spdlog::logger& logger() {
  static spdlog::logger* instance = [] {
    auto* made = new spdlog::logger("faultline", std::make_shared<FdSink>());
    made->set_level(spdlog::level::info);
    made->flush_on(spdlog::level::off);
    return made;
  }();
  return *instance;
}

void say(std::string_view text) {
  try {
    logger().warn("{}", text);
  } catch (...) {
    // Allocation failure while formatting: the diagnostic is lost, the program is not.
  }
}

}  // namespace

void diag_init(const char* diag_path) noexcept {
  g_diag_path[0] = '\0';
  if (diag_path != nullptr && std::strlen(diag_path) < sizeof g_diag_path)
    std::memcpy(g_diag_path, diag_path, std::strlen(diag_path) + 1);
}

void diag(const char* fmt, ...) noexcept {
  CancelOff no_cancel;  // shim.h
  Guard guard;  // spdlog allocates and formats: none of it may be faulted
  char line[kMaxLine];
  va_list ap;
  va_start(ap, fmt);
  const int n = vsnprintf(line, sizeof line, fmt, ap);
  va_end(ap);
  if (n < 0) return;
  const std::size_t size = std::min(sizeof line - 1, static_cast<std::size_t>(n));
  switch (remember(fnv1a(line, size))) {
    case Verdict::kRepeat:
      return;
    case Verdict::kTableFull:
      if (!g_suppressed.exchange(true))
        say("faultline: too many diagnostics; further ones are suppressed");
      return;
    case Verdict::kFirst:
      say(std::string_view(line, size));
      return;
  }
}

void event_line(const char* fmt, ...) noexcept {
  char line[kMaxLine];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(line, sizeof line - 1, fmt, ap);
  va_end(ap);
  if (n < 0) return;
  if (n > static_cast<int>(sizeof line) - 2) n = sizeof line - 2;
  line[n++] = '\n';
  write_all(STDERR_FILENO, line, static_cast<std::size_t>(n));
}

void diag_reset_for_tests() noexcept {
  for (auto& entry : g_said) entry.store(0, std::memory_order_relaxed);
  g_suppressed.store(false, std::memory_order_relaxed);
}

}  // namespace faultline::shim
