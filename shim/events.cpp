// Recording injected faults: the event ring in the control block (for `faultline events`),
// one JSON line appended to the log file, and one human line on stderr when asked. Bounded,
// fixed buffers; every write goes through the real functions; nothing here ever blocks.
#include <fcntl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <iterator>
#include <string>

#include "engine.h"
#include "fd_table.h"
#include "log_limit.h"
#include "net_select.h"
#include "session.h"
#include "stack.h"

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
  std::size_t room() const { return sizeof buf_ - 1 - len_; }

 private:
  char buf_[8192];
  std::size_t len_ = 0;
};

// Text into a slot's words, NUL-padded and truncated to fit.
template <std::size_t N>
void store_text_words(std::atomic<std::uint64_t> (&words)[N], const char* text) {
  char buf[N * 8] = {};
  std::memcpy(buf, text, strnlen(text, sizeof buf - 1));
  for (std::size_t i = 0; i < N; ++i) {
    std::uint64_t w;
    std::memcpy(&w, buf + i * 8, 8);
    words[i].store(w, std::memory_order_release);
  }
}

std::uint64_t push_ring(ControlBlock& block, const Decision& d, const CallSite& site,
                        std::int64_t ts, pid_t pid, pid_t tid, const char* path,
                        std::int64_t bytes, const char* fault_name, std::uint32_t where) {
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
  slot.error.store(d.action == kActError   ? d.error
                   : d.action == kActCrash ? d.crash_signal
                                           : 0,
                   std::memory_order_release);
  slot.action.store(d.action ? d.action : kActDelay, std::memory_order_release);
  slot.size.store(site.has_size ? site.size : 0, std::memory_order_release);
  slot.bytes.store(bytes >= 0 ? static_cast<std::uint64_t>(bytes) : 0, std::memory_order_release);
  slot.delay_ns.store(d.delay_ns, std::memory_order_release);
  slot.present.store((site.has_size ? kEventHasSize : 0u) | (bytes >= 0 ? kEventHasBytes : 0u) |
                         where,
                     std::memory_order_release);
  store_text_words(slot.path_words, path);
  store_text_words(slot.process_words, engine_process_name());
  store_text_words(slot.fault_words, fault_name);
  slot.seq.store(2 * index + 2, std::memory_order_release);
  return index;
}

// ---- "stack": [...] (log_stack = true) ----------------------------------------------------

constexpr int kMaxLoggedFrames = 32;
// Left free for the fields after "stack" (seed, closing brace, newline): the line stays one
// valid JSON object however deep the stack.
constexpr std::size_t kLineTailReserve = 96;

// `text` as the inside of a JSON string, cut (never mid-escape) to fit `size`.
void json_escape(const char* text, char* out, std::size_t size) {
  std::size_t n = 0;
  for (const char* p = text; *p; ++p) {
    const auto c = static_cast<unsigned char>(*p);
    char piece[8];
    int len = 1;
    if (c == '"' || c == '\\') {
      piece[0] = '\\';
      piece[1] = static_cast<char>(c);
      len = 2;
    } else if (c < 0x20) {
      len = std::snprintf(piece, sizeof piece, "\\u%04x", c);
    } else {
      piece[0] = static_cast<char>(c);
    }
    if (n + static_cast<std::size_t>(len) >= size) break;
    std::memcpy(out + n, piece, static_cast<std::size_t>(len));
    n += static_cast<std::size_t>(len);
  }
  out[n] = '\0';
}

struct StackLine {
  LineBuilder* line;
  int frames;
};

void append_frame(const FrameInfo& frame, void* ctx) {
  auto* s = static_cast<StackLine*>(ctx);
  char text[512];
  format_frame(frame, text, sizeof text);
  char escaped[1024];
  json_escape(text, escaped, sizeof escaped);
  // Once a frame does not fit, no later one is written either: the array is a prefix.
  if (s->frames < 0 || s->line->room() < std::strlen(escaped) + 4 + kLineTailReserve) {
    s->frames = -1;
    return;
  }
  s->line->append("%s\"%s\"", s->frames ? "," : "", escaped);
  ++s->frames;
}

// The caller's stack, innermost frame first, without the shim's own frames.
void append_stack(LineBuilder& line) {
  CapturedStack stack;
  if (!capture_stack(stack)) return;
  if (stack.count > kMaxLoggedFrames) stack.count = kMaxLoggedFrames;
  line.append(",\"stack\":[");
  StackLine ctx{&line, 0};
  visit_frames(stack, append_frame, &ctx);
  line.append("]");
}

void append_log(const std::string& path, const LineBuilder& line) {
  // Bounded by [log] max_rate and max_size, and opened safely: log_limit.h.
  log_event_line(path.c_str(), line.data(), line.size());
}

}  // namespace

void emit_event(const Decision& d, const CallSite& site, std::int64_t bytes) noexcept {
  CancelOff no_cancel;  // shim.h: the log's open and write are cancellation points
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
    // @net: the socket's address stands in for its "socket:[...]" link; @dns: the name.
    char where[128];  // the ring holds 128 bytes of text
    const std::uint32_t where_kind = net_event_text(site, path, where, sizeof where);
    if (where_kind == kEventHasAddr) path[0] = '\0';
    FaultSpec spec = read_fault_spec(block->faults[d.fault]);
    std::uint64_t seq = push_ring(*block, d, site, ts, pid, tid, where_kind ? where : path, bytes,
                                  spec.name, where_kind);

    // The line is only formatted for someone who reads it: a log file or stderr.
    std::string log_path = read_log_path(block->header);
    const bool to_stderr = block->header.log_stderr.load(std::memory_order_relaxed) != 0;
    if (log_path.empty() && !to_stderr) return;

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
    if (where_kind == kEventHasAddr) line.json_string("addr", where);
    if (where_kind == kEventHasHost) line.json_string("host", where);
    line.json_string("action", action);
    if (d.action == kActError) line.json_string("errno", errno_name(d.error).data());
    if (site.has_size) line.append(",\"size\":%llu", static_cast<unsigned long long>(site.size));
    if (bytes >= 0) line.append(",\"bytes\":%lld", static_cast<long long>(bytes));
    if (d.delay_ns > 0) line.append(",\"delay_ns\":%lld", static_cast<long long>(d.delay_ns));
    if (d.action == kActCrash) line.append(",\"signal\":%d", d.crash_signal);
    if (spec.log_stack && !log_path.empty()) append_stack(line);
    line.append(",\"seed\":%llu}\n",
                static_cast<unsigned long long>(block->header.seed.load(std::memory_order_relaxed)));

    if (!log_path.empty()) append_log(log_path, line);
    if (to_stderr) {
      const char* shown = where_kind ? where : path;
      event_line("faultline: injected %s into %s(fd %d%s%s) #%llu [fault %s]", action, call, site.fd,
           shown[0] ? ", " : "", shown, static_cast<unsigned long long>(d.index), spec.name);
    }
  } catch (...) {
    // std::string allocation failure: the event is lost, the program is not.
  }
}

}  // namespace faultline::shim
