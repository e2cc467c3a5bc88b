// The event log's bounds (max_rate, max_size) and its safe opening: see log_limit.h. No
// allocation, no lock, no stdio: the lines are built by hand in fixed buffers, the counters
// are atomics, and the file is reached through the real open/write/close.
#include "shim/engine/log_limit.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <new>

#include "faultline/seqlock.h"
#include "session/session.h"
#include "shim/engine/engine.h"
#include "shim/engine/scratch.h"
#include "shim/engine/shim.h"

namespace faultline::shim {

// ---- the rate limiter ---------------------------------------------------------------------

namespace {

constexpr std::uint64_t kCountMask = 0xffffffffull;

std::uint64_t pack(std::uint64_t stamp, std::uint64_t count) { return (stamp << 32) | count; }

}  // namespace

LogRateLimiter::Admission LogRateLimiter::admit(std::uint64_t now_sec,
                                                std::uint64_t max_rate) noexcept {
  const std::uint64_t stamp = (now_sec + 1) & kCountMask;  // 0 = no second yet
  std::uint64_t old = state_.load(std::memory_order_relaxed);
  for (;;) {
    const std::uint64_t old_stamp = old >> 32;
    const std::uint64_t count = old & kCountMask;
    // A thread whose clock read is older than the word's second counts in the word's second.
    const bool new_second = stamp > old_stamp;
    const std::uint64_t next =
        new_second ? pack(stamp, 1) : pack(old_stamp, count == kCountMask ? count : count + 1);
    if (state_.compare_exchange_weak(old, next, std::memory_order_acq_rel,
                                     std::memory_order_relaxed))
      return Admission{new_second || count < max_rate, new_second};
  }
}

void LogRateLimiter::count_suppressed(std::int64_t now_ns) noexcept {
  if (pending_.fetch_add(1, std::memory_order_acq_rel) == 0)
    first_ns_.store(now_ns, std::memory_order_relaxed);
  last_ns_.store(now_ns, std::memory_order_relaxed);
}

std::uint64_t LogRateLimiter::take_pending(std::int64_t& first_ns, std::int64_t& last_ns) noexcept {
  first_ns = first_ns_.load(std::memory_order_relaxed);
  last_ns = last_ns_.load(std::memory_order_relaxed);
  const std::uint64_t n = pending_.exchange(0, std::memory_order_acq_rel);
  if (last_ns < first_ns) last_ns = first_ns;  // a racing count: keep the interval sane
  return n;
}

void LogRateLimiter::reset() noexcept {
  state_.store(0, std::memory_order_relaxed);
  pending_.store(0, std::memory_order_relaxed);
  first_ns_.store(0, std::memory_order_relaxed);
  last_ns_.store(0, std::memory_order_relaxed);
}

// ---- the summary and cut lines ------------------------------------------------------------

namespace {

// Appends to a fixed buffer, dropping what does not fit (one byte is kept for the '\n').
class Out {
 public:
  Out(char* buf, std::size_t size) : buf_(buf), size_(size) {}
  Out& text(const char* s) {
    while (*s) put(*s++);
    return *this;
  }
  Out& u64(std::uint64_t v) {
    char digits[20];
    int n = 0;
    do {
      digits[n++] = static_cast<char>('0' + v % 10);
      v /= 10;
    } while (v);
    while (n) put(digits[--n]);
    return *this;
  }
  Out& i64(std::int64_t v) {
    if (v < 0) {
      put('-');
      return u64(0 - static_cast<std::uint64_t>(v));
    }
    return u64(static_cast<std::uint64_t>(v));
  }
  // A JSON string value: quotes, backslashes and control characters escaped.
  Out& str(const char* s) {
    put('"');
    for (; *s; ++s) {
      const auto c = static_cast<unsigned char>(*s);
      if (c == '"' || c == '\\') {
        put('\\');
        put(static_cast<char>(c));
      } else if (c < 0x20) {
        text("\\u00");
        put("0123456789abcdef"[c >> 4]);
        put("0123456789abcdef"[c & 15]);
      } else {
        put(static_cast<char>(c));
      }
    }
    put('"');
    return *this;
  }
  std::size_t line() {
    if (size_ == 0) return 0;
    buf_[len_++] = '\n';
    return len_;
  }

 private:
  void put(char c) {
    if (len_ + 1 < size_) buf_[len_++] = c;
  }
  char* buf_;
  std::size_t size_;
  std::size_t len_ = 0;
};

}  // namespace

std::size_t format_suppressed_line(char* buf, std::size_t size, std::uint64_t count,
                                   std::int64_t first_ns, std::int64_t last_ns,
                                   std::uint64_t max_rate, pid_t pid,
                                   const char* process) noexcept {
  Out out(buf, size);
  out.text("{\"suppressed\":").u64(count);
  out.text(",\"first_ns\":\"").i64(first_ns).text("\",\"last_ns\":\"").i64(last_ns).text("\"");
  out.text(",\"max_rate\":").u64(max_rate);
  out.text(",\"pid\":").i64(pid).text(",\"process\":").str(process).text("}");
  return out.line();
}

std::size_t format_cut_line(char* buf, std::size_t size, std::uint64_t max_size, std::int64_t ts_ns,
                            pid_t pid, const char* process) noexcept {
  Out out(buf, size);
  out.text("{\"log_cut\":\"max_size\",\"max_size\":\"").u64(max_size).text("\"");
  out.text(",\"ts_ns\":\"").i64(ts_ns).text("\"");
  out.text(",\"pid\":").i64(pid).text(",\"process\":").str(process).text("}");
  return out.line();
}

// ---- opening ------------------------------------------------------------------------------

namespace {

// Whether the directory that holds `path` may be written by anyone (true when it cannot be
// told: a path too long for the buffer, or a directory that cannot be stat'ed).
bool in_world_writable_dir(const char* path) noexcept {
  // The directory's name and its stat in a pool buffer, not on the stack: this runs on the
  // event path, which a signal handler on a small sigaltstack may reach (docs/reliability.md).
  Scratch scratch;
  char* dir = scratch.get();
  if (dir == nullptr) return true;
  constexpr std::size_t kDirBytes = kLogPathMax;
  static_assert(kDirBytes + sizeof(struct stat) <= Scratch::kBytes);
  const char* slash = std::strrchr(path, '/');
  if (slash == nullptr) {
    std::memcpy(dir, ".", 2);
  } else if (slash == path) {
    std::memcpy(dir, "/", 2);
  } else {
    const auto n = static_cast<std::size_t>(slash - path);
    if (n >= kDirBytes) return true;
    std::memcpy(dir, path, n);
    dir[n] = '\0';
  }
  using Stat = struct stat;
  auto* st = new (dir + kDirBytes) Stat{};
  if (stat(dir, st) != 0) return true;
  return (st->st_mode & S_IWOTH) != 0;
}

}  // namespace

int open_append_file(const char* path, mode_t mode, const char** refusal) noexcept {
  if (refusal) *refusal = nullptr;
  constexpr int kFlags = O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC;
  if (!in_world_writable_dir(path)) return FL_REAL(open)(path, kFlags, mode);
  // Anyone can plant a name here: never follow a symbolic link (another user's link to one of
  // our files), never block on a FIFO, and write only to a regular file that is ours.
  const int fd = FL_REAL(open)(path, kFlags | O_NOFOLLOW | O_NONBLOCK, mode);
  if (fd < 0) {
    if (errno == ELOOP && refusal)
      *refusal = "it is a symbolic link in a world-writable directory (not followed)";
    return -1;
  }
  Scratch scratch;  // the stat off the stack, as in in_world_writable_dir
  using Stat = struct stat;
  auto* st = scratch.get() ? new (scratch.get()) Stat{} : nullptr;
  const char* why = nullptr;
  if (st == nullptr || fstat(fd, st) != 0)
    why = "it cannot be checked (fstat failed)";
  else if (!S_ISREG(st->st_mode))
    why = "it is not a regular file, in a world-writable directory";
  else if (st->st_uid != geteuid())
    why = "it belongs to another user, in a world-writable directory";
  if (why == nullptr) return fd;
  FL_REAL(close)(fd);
  if (refusal) *refusal = why;
  errno = EPERM;
  return -1;
}

// ---- writing ------------------------------------------------------------------------------

namespace {

LogRateLimiter g_limiter;

std::uint64_t limit_or(std::uint64_t value, std::uint64_t fallback) {
  return value != 0 ? value : fallback;  // 0: a block written before the limits existed
}

std::uint64_t file_key(const struct stat& st) noexcept {
  std::uint64_t h = 0xcbf29ce484222325ull;
  for (std::uint64_t part :
       {static_cast<std::uint64_t>(st.st_dev), static_cast<std::uint64_t>(st.st_ino)})
    for (int i = 0; i < 8; ++i) h = (h ^ ((part >> (8 * i)) & 0xff)) * 0x100000001b3ull;
  return h | 1;  // 0 = no file cut yet
}

// Writes `line` unless the file would pass max_size; then, once per file for the session,
// writes the cut line instead. False when the line was not written.
bool write_bounded(ControlHeader& header, int fd, const char* line, std::size_t size) noexcept {
  const std::uint64_t max_size =
      limit_or(header.log_max_size.load(std::memory_order_relaxed), kDefaultLogMaxSize);
  Scratch scratch;  // the stat and the cut line off the stack, as in in_world_writable_dir
  char* mem = scratch.get();
  using Stat = struct stat;
  auto* st = mem ? new (mem) Stat{} : nullptr;
  if (st == nullptr || fstat(fd, st) != 0 || !S_ISREG(st->st_mode)) {
    write_all(fd, line, size);  // a pipe or a device does not grow: nothing to bound
    return true;
  }
  const auto used = static_cast<std::uint64_t>(st->st_size);
  if (used <= max_size && size <= max_size - used) {
    write_all(fd, line, size);
    return true;
  }
  const std::uint64_t key = file_key(*st);
  std::uint64_t cut = header.log_cut_file.load(std::memory_order_acquire);
  while (cut != key) {
    if (header.log_cut_file.compare_exchange_weak(cut, key, std::memory_order_acq_rel)) {
      char* text = mem + 256;
      const std::size_t n =
          format_cut_line(text, 256, max_size, realtime_ns(), getpid(), engine_process_name());
      write_all(fd, text, n);
      break;
    }
  }
  return false;
}

// The session's log path, without allocating; false when there is none.
bool read_log_path_into(const ControlHeader& header, char (&path)[kLogPathMax]) noexcept {
  std::uint64_t words[kLogPathMax / 8];
  if (!seqlock_read(header.log_path_seq, header.log_path_words, words, kLogPathMax / 8))
    return false;
  std::memcpy(path, words, sizeof path);
  path[kLogPathMax - 1] = '\0';
  return path[0] != '\0';
}

void write_summary(ControlHeader& header, int fd, std::uint64_t count, std::int64_t first_ns,
                   std::int64_t last_ns) noexcept {
  Scratch scratch;  // the event path's stack budget: see in_world_writable_dir
  char* text = scratch.get();
  if (text == nullptr) return;
  const std::uint64_t rate =
      limit_or(header.log_max_rate.load(std::memory_order_relaxed), kDefaultLogMaxRate);
  const std::size_t n = format_suppressed_line(text, 256, count, first_ns, last_ns, rate, getpid(),
                                               engine_process_name());
  write_bounded(header, fd, text, n);
}

int open_log(const char* path) noexcept {
  const char* refusal = nullptr;
  const int fd = open_append_file(path, 0644, &refusal);
  // Once per path and cause (diag remembers what it said), however many events follow.
  if (fd < 0 && refusal)
    diag("faultline: not writing the event log %s: %s; events are still in the session's ring",
         path, refusal);
  else if (fd < 0)
    diag("faultline: cannot open event log %s (%s); events are still in the session's ring", path,
         std::strerror(errno));
  return fd;
}

}  // namespace

void write_event_line(ControlHeader& header, LogRateLimiter& limiter, const char* path,
                      const char* line, std::size_t size) noexcept {
  const std::uint64_t rate =
      limit_or(header.log_max_rate.load(std::memory_order_relaxed), kDefaultLogMaxRate);
  const auto now_sec = static_cast<std::uint64_t>(monotonic_ns() / 1000000000);
  const LogRateLimiter::Admission admission = limiter.admit(now_sec, rate);
  if (!admission.write) {
    limiter.count_suppressed(realtime_ns());
    return;
  }
  // Opened per line: a long-lived fd could be closed or dup2'd over by a program that tidies
  // its descriptors (daemons close everything), and then we would write into its files.
  const int fd = open_log(path);
  if (fd < 0) return;
  if (admission.new_second) {
    std::int64_t first_ns = 0, last_ns = 0;
    if (const std::uint64_t n = limiter.take_pending(first_ns, last_ns))
      write_summary(header, fd, n, first_ns, last_ns);
  }
  write_bounded(header, fd, line, size);
  FL_REAL(close)(fd);
}

void log_event_line(const char* path, const char* line, std::size_t size) noexcept {
  ControlBlock* block = g_block.load(std::memory_order_acquire);
  if (block) write_event_line(block->header, g_limiter, path, line, size);
}

void log_flush_suppressed() noexcept {
  ControlBlock* block = g_block.load(std::memory_order_acquire);
  if (!block) return;
  std::int64_t first_ns = 0, last_ns = 0;
  const std::uint64_t n = g_limiter.take_pending(first_ns, last_ns);
  if (n == 0) return;
  char path[kLogPathMax];
  if (!read_log_path_into(block->header, path)) return;
  const int fd = open_log(path);
  if (fd < 0) return;
  write_summary(block->header, fd, n, first_ns, last_ns);
  FL_REAL(close)(fd);
}

void log_limit_after_fork_child() noexcept { g_limiter.reset(); }

}  // namespace faultline::shim
