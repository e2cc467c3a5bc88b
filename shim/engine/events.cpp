// Recording injected faults: the event ring in the control block (for `faultline events`),
// one JSON line appended to the log file, and one human line on stderr when asked. A signal
// handler's write(2) reaches this like any other armed call, so everything here is
// allocation-free and lock-free: the line is built with TextBuf in a scratch buffer (never on
// the caller's stack, which may be an 8 KiB sigaltstack), the fault's name comes from the
// rules copy that decided (fault_facts.h: never the slot's spec, which an edit may have
// changed since), the log path is read alone through its seqlock, every write goes through
// the real functions, and nothing here ever blocks. Only `log_stack` (symbolising the stack) may
// use more.
#include <fcntl.h>
#include <netdb.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstring>
#include <new>
#include <string_view>
#include <type_traits>

#include "faultline/seqlock.h"
#include "session/session.h"
#include "shim/engine/engine.h"
#include "shim/engine/event_line.h"
#include "shim/engine/fault_facts.h"
#include "shim/engine/fd_table.h"
#include "shim/engine/log_limit.h"
#include "shim/engine/net_select.h"
#include "shim/engine/scratch.h"
#include "shim/engine/stack.h"
#include "shim/engine/text_buf.h"

namespace faultline::shim {

// The seccomp backend's caller (engine.h, engine_set_event_caller); nullptr: this process.
constinit thread_local const EventCaller* t_caller __attribute__((tls_model("initial-exec"))) =
    nullptr;

namespace {

// Text into a slot's words, NUL-padded and truncated to fit (one word at a time: no copy of
// the whole field on the stack).
template <std::size_t N>
void store_text_words(std::atomic<std::uint64_t> (&words)[N], const char* text) {
  std::size_t left = strnlen(text, N * 8 - 1);
  for (std::size_t i = 0; i < N; ++i) {
    std::uint64_t w = 0;
    const std::size_t take = left < 8 ? left : 8;
    std::memcpy(&w, text, take);
    text += take;
    left -= take;
    words[i].store(w, std::memory_order_release);
  }
}

// The error an event reports: the fault's errno, or for a lookup (@dns) the resolver's code
// ("EAI_AGAIN"; EAI_SYSTEM for a fault that names an errno), as the lookup returns it.
int event_error(const Decision& d, std::uint32_t call) {
  if (call_family(call) != kFamDns) return d.error;
  return d.dns_error ? d.dns_error : EAI_SYSTEM;
}

std::uint64_t push_ring(ControlBlock& block, const Decision& d, const CallArgs& args,
                        std::int64_t ts, pid_t pid, pid_t tid, const char* path, std::int64_t bytes,
                        const char* fault_name, std::uint32_t where) {
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
  slot.call.store(args.call, std::memory_order_release);
  const EventCaller* const caller = t_caller;
  slot.fd.store(caller && args.fd == caller->local_fd ? caller->remote_fd : args.fd,
                std::memory_order_release);
  slot.error.store(d.action == kActError   ? event_error(d, args.call)
                   : d.action == kActCrash ? d.crash_signal
                                           : 0,
                   std::memory_order_release);
  slot.action.store(event_action(d), std::memory_order_release);
  slot.size.store(args.has_size ? args.size : 0, std::memory_order_release);
  slot.bytes.store(bytes >= 0 ? static_cast<std::uint64_t>(bytes) : 0, std::memory_order_release);
  slot.delay_ns.store(d.delay_ns, std::memory_order_release);
  slot.present.store(
      (args.has_size ? kEventHasSize : 0u) | (bytes >= 0 ? kEventHasBytes : 0u) | where,
      std::memory_order_release);
  store_text_words(slot.path_words, path);
  store_text_words(slot.process_words, engine_process_name());
  store_text_words(slot.fault_words, fault_name);
  slot.seq.store(2 * index + 2, std::memory_order_release);
  return index;
}

// ---- what one event needs, off the caller's stack ------------------------------------------

constexpr std::size_t kLineMax = kEventLineMax;
constexpr std::size_t kHumanMax = 1024;
// Left free by the variable-length fields (path, names, stack) for the fields after them
// (action, errno, size, bytes, delay, signal, seed, closing brace, newline): however long a
// path or deep a stack, the line stays one valid JSON object.
constexpr std::size_t kLineTailReserve = 256;

// Laid over one Scratch buffer.
struct EventScratch {
  char line[kLineMax];
  char path[4096];
  std::uint64_t log_words[kLogPathMax / 8];
  char human[kHumanMax];
  char where[128];  // the ring holds 128 bytes of text
  char fault[kNameMax];
  EventFields fields;
};
static_assert(sizeof(EventScratch) <= Scratch::kBytes);
static_assert(std::is_trivial_v<EventScratch>);

// The session's `[log] path` into `words` (a NUL-terminated string on return); "" when none.
const char* read_log_path(const ControlHeader& header, std::uint64_t (&words)[kLogPathMax / 8]) {
  char* text = reinterpret_cast<char*>(words);
  if (!seqlock_read(header.log_path_seq, header.log_path_words, words, kLogPathMax / 8)) {
    text[0] = '\0';
    return text;
  }
  text[kLogPathMax - 1] = '\0';
  return text;
}

// ---- "stack": [...] (log_stack = true) ----------------------------------------------------
// The one part of an event that may use more stack than the 1 KiB budget: symbolising frames
// (libunwind, the symbol cache) is documented as such in docs/reliability.md.

constexpr int kMaxLoggedFrames = 32;

struct StackLine {
  TextBuf* line;
  int frames;
};

void append_frame(const FrameInfo& frame, void* ctx) {
  auto* s = static_cast<StackLine*>(ctx);
  if (s->frames < 0) return;  // once a frame does not fit, no later one is written either
  char text[512];
  format_frame(frame, text, sizeof text);
  const std::size_t before = s->line->size();
  if (s->frames) s->line->put(',');
  s->line->put('"').json_text(text, kLineTailReserve + 2);
  if (s->line->truncated() || s->line->room() < kLineTailReserve + 1) {
    s->line->resize_down(before);  // the array is a prefix of whole frames
    s->frames = -1;
    return;
  }
  s->line->put('"');
  ++s->frames;
}

// The caller's stack, innermost frame first, without the shim's own frames. Never inlined:
// its frame (the captured addresses) is paid only by events of `log_stack` faults.
[[gnu::noinline]] void append_stack(TextBuf& line) {
  CapturedStack stack;
  if (!capture_stack(stack)) return;
  if (stack.count > kMaxLoggedFrames) stack.count = kMaxLoggedFrames;
  line.put(",\"stack\":[");
  StackLine ctx{&line, 0};
  visit_frames(stack, append_frame, &ctx);
  line.put(']');
}

// ---- writing -------------------------------------------------------------------------------

// Appends one formatted line to the event log. Kept apart from the formatting: what is
// written, how often and how much ([log] max_rate and max_size), and how the file is opened
// (per event, safely in a world-writable directory) is decided in log_limit.h.
void append_log(const char* path, const char* line, std::size_t size) {
  log_event_line(path, line, size);
}

}  // namespace

void engine_set_event_caller(const EventCaller* caller) noexcept { t_caller = caller; }

void emit_event(const Decision& d, const CallArgs& args, std::int64_t bytes) noexcept {
  CancelOff no_cancel;  // shim.h: the log's open and write are cancellation points
  ControlBlock* block = g_block.load(std::memory_order_acquire);
  if (!block || d.fault < 0 || d.fault >= static_cast<int>(kMaxFaults)) return;
  const int saved_errno = errno;  // the wrapper sets the injected errno after this
  Scratch scratch;
  if (!scratch.get()) return;  // no memory at all: the event is lost, the program is not
  auto* mem = new (scratch.get()) EventScratch;
  const std::int64_t ts = realtime_ns();
  const EventCaller* const caller = t_caller;
  const pid_t pid = caller ? caller->pid : getpid();
  const auto tid = caller ? caller->tid : static_cast<pid_t>(syscall(SYS_gettid));
  const int shown_fd = caller && args.fd == caller->local_fd ? caller->remote_fd : args.fd;
  char* path = mem->path;
  path[0] = '\0';
  if (args.fd >= 0) {
    fd_path(args.fd, path, sizeof mem->path);
  } else if (args.path) {
    TextBuf text(path, sizeof mem->path);
    text.put(args.path);
    // rename and link name both paths ("old -> new"), symlink its link and target.
    if (call_family(args.call) == kFamFs && args.path2()) text.put(" -> ").put(args.path2());
  }
  // @net: the socket's address stands in for its "socket:[...]" link; @dns: the name.
  char* where = mem->where;
  const std::uint32_t where_kind = net_event_text(args, path, where, sizeof mem->where);
  if (where_kind == kEventHasAddr) path[0] = '\0';
  // The fault as the rules that decided had it, not as its slot is now (an edit during the
  // call's delay may have renamed or replaced it): fault_facts.h.
  bool log_stack = false;
  fault_facts_read(d.fault, d.epoch, mem->fault, log_stack);
  const std::uint64_t seq = push_ring(*block, d, args, ts, pid, tid, where_kind ? where : path,
                                      bytes, mem->fault, where_kind);

  // The line is only formatted for someone who reads it: a log file or stderr.
  const char* log_path = read_log_path(block->header, mem->log_words);
  const bool to_stderr = block->header.log_stderr.load(std::memory_order_relaxed) != 0;
  if (log_path[0] == '\0' && !to_stderr) {
    errno = saved_errno;
    return;
  }

  const char* call = call_info(args.call).name.data();
  const char* action = action_name(event_action(d)).data();
  if (log_path[0] != '\0') {
    EventFields& e = mem->fields;
    e = EventFields{};
    e.seq = seq;
    e.ts_ns = ts;
    e.pid = pid;
    e.tid = tid;
    e.process = engine_process_name();
    e.fault = mem->fault;
    e.call = call;
    e.has_fd = args.fd >= 0;
    e.fd = shown_fd;
    e.path = path;
    e.addr = "";
    e.host = "";
    if (where_kind == kEventHasAddr) e.addr = where;
    if (where_kind == kEventHasHost) e.host = where;
    e.action = action;
    e.has_error = d.action == kActError;
    e.error = event_error(d, args.call);
    e.has_size = args.has_size;
    e.size = args.size;
    e.bytes = bytes;
    e.delay_ns = d.delay_ns;
    e.has_signal = d.action == kActCrash;
    e.signal = d.crash_signal;
    TextBuf line(mem->line, sizeof mem->line);
    event_line_fields(line, e, kLineTailReserve);
    if (log_stack) append_stack(line);
    event_line_end(line, block->header.seed.load(std::memory_order_relaxed));
    line.put('\n');
    append_log(log_path, line.data(), line.size());
  }
  if (to_stderr) {
    const char* shown = where_kind ? where : path;
    TextBuf human(mem->human, sizeof mem->human);
    human.put("faultline: injected ").put(action).put(" into ").put(call).put("(fd ");
    human.dec_signed(shown_fd);
    if (shown[0]) human.put(", ").put(shown);
    human.put(") #").dec(d.index).put(" [fault ").put(mem->fault).put(']');
    if (human.room() == 0) human.resize_down(human.size() - 1);
    human.put('\n');
    event_line(std::string_view(human.data(), human.size()));
  }
  errno = saved_errno;
}

}  // namespace faultline::shim
