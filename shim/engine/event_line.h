// One event as a JSON line (policy.md's event line), written by one formatter for both of its
// writers: the shim's event log (events.cpp, inside the target: allocation-free, into a
// scratch buffer) and `faultline events --json` (the CLI, from the event ring). Sharing it
// keeps the two byte-identical by construction, field for field and escape for escape.
#pragma once

#include <cstddef>
#include <cstdint>

#include "shim/engine/text_buf.h"

namespace faultline::shim {

// Room for any line but one with a stack (the log's: names, a path up to PATH_MAX, fields).
constexpr std::size_t kEventLineMax = 8192;

// What one line says. Text fields are NUL-terminated; "" (or nullptr) leaves a field out, as
// do has_fd false and bytes -1. Trivial (no initialisers) so that the shim keeps it in its
// scratch buffer, off a signal handler's small stack: value-initialise it (`EventFields e{}`)
// and set what the event has.
struct EventFields {
  std::uint64_t seq;
  std::int64_t ts_ns;  // CLOCK_REALTIME
  std::int64_t pid;
  std::int64_t tid;
  const char* process;
  const char* fault;
  const char* call;
  bool has_fd;
  int fd;
  const char* path;  // the file
  const char* addr;  // @net: the socket's address
  const char* host;  // @dns: the name looked up
  const char* action;
  bool has_error;  // an `error` event: its errno (or EAI code) follows
  int error;
  bool has_size;
  std::uint64_t size;
  std::int64_t bytes;     // < 0: left out
  std::int64_t delay_ns;  // written when > 0
  bool has_signal;        // a `crash` event
  int signal;
};

// The line up to its last field but the seed: `{"seq":...` through `"signal"`. `keep_free`
// bytes are left free by the variable-length fields (names, path) for what follows them, so
// that however long a path is, the line stays one valid JSON object.
void event_line_fields(TextBuf& line, const EventFields& e, std::size_t keep_free) noexcept;

// The end of the line: `,"seed":"..."}` (no newline: the log adds one, the CLI prints one).
void event_line_end(TextBuf& line, std::uint64_t seed) noexcept;

}  // namespace faultline::shim
