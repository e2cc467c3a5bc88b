// What the CLI shows people and scripts: the words and units a session's faults are described
// in (the same units a policy file uses, so what `status` prints can be pasted back into
// `faultline set`), aligned tables, and JSON. Shared by `run`'s summary, `status`, `sessions`,
// `events` and `watch` so they never disagree on a name or a unit. The snapshots they format
// come from control/inspect.h, which the C++ API reads through too.
#pragma once

#include <concepts>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "faultline/control_block.h"
#include "inspect.h"
#include "session.h"

namespace faultline::cli {

// fixed_text, FaultView/read_faults, MemberView/read_members, SessionState/read_state and
// state_name live in control/inspect.h, shared with the C++ API.

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

// A JSON string literal, quotes included. Bytes that are not valid UTF-8 (paths may hold any)
// become \u00XX, so the output is always valid JSON and the original byte can be recovered.
std::string json_string(std::string_view text);

// Builds one JSON object in key order. Booleans have their own method: an overload on bool
// would silently catch `const char*` arguments.
class JsonObject {
 public:
  JsonObject& add(std::string_view key, std::string_view value);
  JsonObject& add(std::string_view key, const char* value) {
    return add(key, std::string_view(value));
  }
  JsonObject& add(std::string_view key, const std::string& value) {
    return add(key, std::string_view(value));
  }
  template <std::integral T>
  requires(!std::same_as<T, bool>) JsonObject& add(std::string_view key, T value) {
    return add_raw(key, std::to_string(value));
  }
  JsonObject& add(std::string_view key, double value);
  JsonObject& add_bool(std::string_view key, bool value);
  JsonObject& add_null(std::string_view key);
  JsonObject& add_raw(std::string_view key, std::string_view json);
  std::string str() const { return body_ + "}"; }

 private:
  std::string body_ = "{";
};

// The per-fault object of `status --json` (and of `run --json-summary`, which adds to it).
JsonObject fault_json(const FaultView& fault);
std::string json_array(const std::vector<std::string>& items);

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
