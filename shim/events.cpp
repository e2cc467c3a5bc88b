// Recording injected faults: the event ring in the control block (for `faultline events`),
// one JSON line appended to the log file, and one human line on stderr when asked. Bounded,
// fixed buffers; every write goes through the real functions; nothing here ever blocks.
#include <fcntl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <iterator>
#include <string>

#include "engine.h"
#include "fd_table.h"
#include "session.h"

namespace faultline::shim {
namespace {

class LineBuilder {
 public:
  void append(const char* fmt, ...) __attribute__((format(printf, 2, 3))) {
    if (len_ >= sizeof buf_) return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf_ + len_, sizeof buf_ - len_, fmt, ap);
    va_end(ap);
    if (n > 0) len_ = std::min(sizeof buf_ - 1, len_ + static_cast<std::size_t>(n));
  }
  // A JSON string value, escaped.
  void json_string(const char* key, const char* value) {
    append(",\"%s\":\"", key);
    for (const char* p = value; *p && len_ < sizeof buf_ - 8; ++p) {
      unsigned char c = static_cast<unsigned char>(*p);
      if (c == '"' || c == '\\') {
        append("\\%c", c);
      } else if (c < 0x20) {
        append("\\u%04x", c);
      } else {
        buf_[len_++] = static_cast<char>(c);
      }
    }
    append("\"");
  }
  const char* data() const { return buf_; }
  std::size_t size() const { return len_; }

 private:
  char buf_[8192];
  std::size_t len_ = 0;
};

void store_path_words(EventSlot& slot, const char* path) {
  char buf[sizeof slot.path_words] = {};
  std::snprintf(buf, sizeof buf, "%s", path);
  for (std::size_t i = 0; i < std::size(slot.path_words); ++i) {
    std::uint64_t w;
    std::memcpy(&w, buf + i * 8, 8);
    slot.path_words[i].store(w, std::memory_order_release);
  }
}

std::uint64_t push_ring(ControlBlock& block, const Decision& d, const CallSite& site,
                        std::int64_t ts, pid_t pid, pid_t tid, const char* path,
                        std::int64_t bytes) {
  ControlHeader& h = block.header;
  std::uint64_t index = h.event_head.fetch_add(1, std::memory_order_relaxed);
  EventSlot& slot = block.events[index % kEventSlots];
  std::uint64_t prev = slot.seq.load(std::memory_order_relaxed);
  if (prev & 1) h.events_dropped.fetch_add(1, std::memory_order_relaxed);
  slot.seq.store(2 * index + 1, std::memory_order_relaxed);
  // Payload stores are release so none can be seen before the odd sequence above.
  slot.ts_ns.store(ts, std::memory_order_release);
  slot.pid.store(static_cast<std::uint32_t>(pid), std::memory_order_release);
  slot.tid.store(static_cast<std::uint32_t>(tid), std::memory_order_release);
  slot.fault.store(static_cast<std::uint32_t>(d.fault), std::memory_order_release);
  slot.call.store(site.call, std::memory_order_release);
  slot.fd.store(site.fd, std::memory_order_release);
  slot.error.store(d.action == kActError ? d.error : 0, std::memory_order_release);
  slot.action.store(d.action ? d.action : kActDelay, std::memory_order_release);
  slot.size.store(site.has_size ? site.size : 0, std::memory_order_release);
  slot.bytes.store(bytes >= 0 ? static_cast<std::uint64_t>(bytes) : 0, std::memory_order_release);
  slot.delay_ns.store(d.delay_ns, std::memory_order_release);
  store_path_words(slot, path);
  slot.seq.store(2 * index + 2, std::memory_order_release);
  return index;
}

void append_log(const std::string& path, const LineBuilder& line) {
  // Opened per event: events are rare, and a long-lived fd could be closed or dup2'd over by
  // a program that tidies its descriptors (daemons close everything), then we would write
  // into one of its files.
  int fd = FL_REAL(open)(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) {
    static std::atomic<bool> reported{false};
    if (!reported.exchange(true)) diag("faultline: cannot open event log %s", path.c_str());
    return;
  }
  FL_REAL(write)(fd, line.data(), line.size());
  FL_REAL(close)(fd);
}

}  // namespace

void emit_event(const Decision& d, const CallSite& site, std::int64_t bytes) noexcept {
  ControlBlock* block = g_block.load(std::memory_order_acquire);
  if (!block) return;
  try {
    std::int64_t ts = realtime_ns();
    pid_t pid = getpid();
    pid_t tid = static_cast<pid_t>(syscall(SYS_gettid));
    char path[4096] = "";
    if (site.fd >= 0) {
      fd_path(site.fd, path, sizeof path);
    } else if (site.path) {
      std::snprintf(path, sizeof path, "%s", site.path);
    }
    std::uint64_t seq = push_ring(*block, d, site, ts, pid, tid, path, bytes);

    // The line is only formatted for someone who reads it: a log file or stderr.
    std::string log_path = read_log_path(block->header);
    const bool to_stderr = block->header.log_stderr.load(std::memory_order_relaxed) != 0;
    if (log_path.empty() && !to_stderr) return;

    FaultSpec spec = read_fault_spec(block->faults[d.fault]);
    const char* call = call_info(site.call).name.data();
    const char* action = action_name(d.action ? d.action : kActDelay).data();
    LineBuilder line;
    line.append("{\"seq\":%llu,\"ts_ns\":%lld,\"pid\":%d,\"tid\":%d",
                static_cast<unsigned long long>(seq), static_cast<long long>(ts), pid, tid);
    line.json_string("process", engine_process_name());
    line.json_string("fault", spec.name);
    line.json_string("call", call);
    if (site.fd >= 0) line.append(",\"fd\":%d", site.fd);
    if (path[0]) line.json_string("path", path);
    line.json_string("action", action);
    if (d.action == kActError) line.json_string("errno", errno_name(d.error).data());
    if (site.has_size) line.append(",\"size\":%llu", static_cast<unsigned long long>(site.size));
    if (bytes >= 0) line.append(",\"bytes\":%lld", static_cast<long long>(bytes));
    if (d.delay_ns > 0) line.append(",\"delay_ns\":%lld", static_cast<long long>(d.delay_ns));
    if (d.action == kActCrash) line.append(",\"signal\":%d", d.crash_signal);
    line.append(",\"seed\":%llu}\n",
                static_cast<unsigned long long>(block->header.seed.load(std::memory_order_relaxed)));

    if (!log_path.empty()) append_log(log_path, line);
    if (to_stderr) {
      diag("faultline: injected %s into %s(fd %d%s%s) #%llu [fault %s]", action, call, site.fd,
           path[0] ? ", " : "", path, static_cast<unsigned long long>(d.index), spec.name);
    }
  } catch (...) {
    // std::string allocation failure: the event is lost, the program is not.
  }
}

}  // namespace faultline::shim
