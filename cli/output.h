// What the CLI shows people and scripts: the words and units a session's faults are described
// in (the same units a policy file uses, so what `status` prints can be pasted back into
// `faultline set`), aligned tables, and JSON. Shared by `run`'s summary, `status`, `sessions`,
// `events` and `watch` so they never disagree on a name or a unit. The snapshots they format
// come from controller/inspect.h, which the C++ API reads through too.
#pragma once

#include <concepts>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "controller/inspect.h"
#include "faultline/control_block.h"
#include "session/session.h"

namespace faultline::cli {

// fixed_text, FaultView/read_faults, MemberView/read_members, SessionState/read_state and
// state_name live in controller/inspect.h, shared with the C++ API.

// Units as in a policy file: "250ms", "1.5s", "10m", "1h30m".
std::string human_duration(std::int64_t ns);
// An age or time left, rounded for people: "3m12s", "4.2s", "850ms".
std::string human_age(std::int64_t ns);
std::string human_size(std::uint64_t bytes);       // "10MiB", "4KiB", "1000B"
std::string errno_text(int err);                   // "EIO", or the number
std::string signal_text(int sig);                  // "SIGKILL", or the number
std::string local_time(std::int64_t realtime_ns);  // "12:03:04.123456"
// Time since a CLOCK_REALTIME instant: "1.2s ago", or "-" for 0 (never).
std::string ago_text(std::int64_t realtime_ns);

std::string calls_text(const FaultSpec& spec);      // "@fsync", "write,pwrite"
std::string selectors_text(const FaultSpec& spec);  // "path=/data/* size=4KiB..", or "-"
std::string action_text(const FaultSpec& spec);     // "error=EIO delay=250ms", or "-"
std::string times_text(std::uint64_t times);        // "3", or "-" for unlimited

// JSON is built with nlohmann::ordered_json (keys in the order written: a reader sees the
// same field order every time). Rules every JSON output of the CLI follows (docs/cli.md):
// 64-bit values that may exceed 2^53 (`seed`, `*_ns` instants) are strings of digits, an
// instant also gets an RFC 3339 `time` next to it, and text that is not valid UTF-8 (paths
// may hold any byte) has each bad byte written as `\xNN`, exactly as the shim's event line.
using Json = nlohmann::ordered_json;

// `text` with every byte that is not part of valid UTF-8 replaced by the four characters
// \xNN (lower-case hex): what the shim's event line does (shim/engine/text_buf.cpp json_text).
std::string utf8_text(std::string_view text);
inline Json json_text(std::string_view text) { return Json(utf8_text(text)); }
// A 64-bit value as a JSON string of decimal digits.
inline Json json_digits(std::uint64_t value) { return Json(std::to_string(value)); }
inline Json json_digits(std::int64_t value) { return Json(std::to_string(value)); }
// A finite double; NaN and infinities (impossible from a validated spec) become null.
Json json_number(double value);
// CLOCK_REALTIME nanoseconds as "2026-12-04T16:00:53.123456789Z", as the shim writes it.
std::string utc_time(std::int64_t realtime_ns);
// `KEY_ns` (digits) and `KEY_time` (RFC 3339) for an instant; both null for 0 (never).
void add_instant(Json& object, std::string_view key, std::int64_t realtime_ns);
// One line of compact JSON (no trailing newline).
std::string json_dump(const Json& value);
// Prints `value` and a newline on stdout.
void print_json(const Json& value);

// The per-fault object of `status --json` (and of `run --json`): counters first, then what
// reads the fault back (`calls`, `selectors`, `action`, `triggers`) in policy units, so that
// the object can be turned back into a [[fault]] table and `faultline add`ed (docs/cli.md).
Json fault_json(const FaultView& fault);

// Left-aligned text columns, right-aligned numeric ones, two spaces apart.
class Table {
 public:
  explicit Table(std::vector<std::string> header, std::vector<bool> numeric = {});
  void add_row(std::vector<std::string> row);
  bool empty() const { return rows_.empty(); }
  void print(std::FILE* out, std::string_view indent = "") const;

 private:
  std::vector<std::string> header_;
  std::vector<bool> numeric_;
  std::vector<std::vector<std::string>> rows_;
};

}  // namespace faultline::cli
