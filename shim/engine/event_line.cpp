// The shared event line formatter (event_line.h).
#include "shim/engine/event_line.h"

#include <string_view>

#include "calls/calls.h"

namespace faultline::shim {

namespace {
bool present(const char* text) { return text && text[0]; }
}  // namespace

void event_line_fields(TextBuf& line, const EventFields& e, std::size_t keep_free) noexcept {
  // policy.md's event line: 64-bit values that may exceed 2^53 (ts_ns, seed) as strings.
  line.put("{\"seq\":").dec(e.seq);
  line.put(",\"time\":\"").utc_time(e.ts_ns).put('"');
  line.json_digits_signed("ts_ns", e.ts_ns);
  line.json_number("pid", e.pid).json_number("tid", e.tid);
  line.json_string("process", e.process ? e.process : "", keep_free);
  line.json_string("fault", e.fault ? e.fault : "", keep_free);
  line.json_string("call", e.call ? e.call : "", keep_free);
  if (e.has_fd) line.json_number("fd", e.fd);
  if (present(e.path)) line.json_string("path", e.path, keep_free);
  if (present(e.addr)) line.json_string("addr", e.addr, keep_free);
  if (present(e.host)) line.json_string("host", e.host, keep_free);
  line.json_string("action", e.action ? e.action : "");
  if (e.has_error) {  // an errno the C library has no name for: its number
    const std::string_view name = errno_name(e.error);
    if (name.empty())
      line.json_digits_signed("errno", e.error);
    else
      line.json_string("errno", name.data());
  }
  if (e.has_size) line.json_unsigned("size", e.size);
  if (e.bytes >= 0) line.json_number("bytes", e.bytes);
  if (e.delay_ns > 0) line.json_number("delay_ns", e.delay_ns);
  if (e.has_signal) line.json_number("signal", e.signal);
}

void event_line_end(TextBuf& line, std::uint64_t seed) noexcept {
  line.json_digits("seed", seed);
  line.put('}');
}

}  // namespace faultline::shim
