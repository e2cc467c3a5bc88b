// The event log's bounds and its safe opening: `[log] max_rate` (event lines per second per
// process; the rest are counted and written as one "suppressed" line a second) and
// `[log] max_size` (the file stops growing there, with one last "cut" line), and the rule that
// the log and FAULTLINE_DIAG never follow a link or write a file another user planted in a
// world-writable directory such as /tmp. A program that spins on an injected error must not
// be able to fill a disk through the shim, and a stranger must not be able to aim the shim's
// writes at a file of ours. Everything here is reachable from a signal handler (an injected
// write in a handler): lock-free, allocation-free, fixed buffers, real functions only.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "faultline/control_block.h"

namespace faultline::shim {

// Per-process rate limiter: one word packs the current second (monotonic, +1 so that 0 means
// "none yet") and the lines admitted in it; a CAS loop updates it, so two threads and a
// signal handler can race on it without a lock. Suppressed lines are counted apart until the
// first line of a later second (or the exit) takes them for the summary line. A count that
// races a second boundary may land in the neighbouring summary; the total is always exact.
class LogRateLimiter {
 public:
  struct Admission {
    bool write;       // this line is within max_rate: write it
    bool new_second;  // first line of a new second: write the pending summary before it
  };
  Admission admit(std::uint64_t now_sec, std::uint64_t max_rate) noexcept;
  // One line not written, at CLOCK_REALTIME `now_ns`.
  void count_suppressed(std::int64_t now_ns) noexcept;
  // Takes the lines suppressed so far (0: none) and the times of the first and last of them.
  std::uint64_t take_pending(std::int64_t& first_ns, std::int64_t& last_ns) noexcept;
  void reset() noexcept;

 private:
  std::atomic<std::uint64_t> state_{0};
  std::atomic<std::uint64_t> pending_{0};
  std::atomic<std::int64_t> first_ns_{0};
  std::atomic<std::int64_t> last_ns_{0};
};

// The summary and cut lines (docs/policy.md, Event log line), '\n'-terminated, into `buf`.
// Return the length (truncated to fit, never unterminated JSON for the sizes used here).
std::size_t format_suppressed_line(char* buf, std::size_t size, std::uint64_t count,
                                   std::int64_t first_ns, std::int64_t last_ns,
                                   std::uint64_t max_rate, pid_t pid, const char* process) noexcept;
std::size_t format_cut_line(char* buf, std::size_t size, std::uint64_t max_size, std::int64_t ts_ns,
                            pid_t pid, const char* process) noexcept;

// Opens `path` for appending a line (O_WRONLY|O_APPEND|O_CREAT|O_CLOEXEC, `mode`). When the
// file's directory is world-writable (/tmp, /var/tmp, a mode-1777 directory), or cannot be
// told, the last component is opened with O_NOFOLLOW|O_NONBLOCK and must be a regular file
// owned by this effective user; anything else is refused. Returns the fd, or -1 with errno
// set; `*refusal` (when not null) is set to a reason for a refusal of ours, else to null.
int open_append_file(const char* path, mode_t mode, const char** refusal) noexcept;

// Appends one finished event line to the log at `path`, bounded by the header's max_rate
// (through `limiter`) and max_size. Writes the pending summary line first when this is the
// first line of a new second. Reports an unopenable or refused log once (diag).
void write_event_line(ControlHeader& header, LogRateLimiter& limiter, const char* path,
                      const char* line, std::size_t size) noexcept;
// The same with this process's limiter and the session's header (g_block); no session: no-op.
void log_event_line(const char* path, const char* line, std::size_t size) noexcept;

// Writes this process's pending summary line, if any (the shim's destructor at exit).
void log_flush_suppressed() noexcept;
// A forked child starts with its own, empty limiter: the parent's pending count is the
// parent's to write.
void log_limit_after_fork_child() noexcept;

}  // namespace faultline::shim
