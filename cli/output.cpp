// Formatting shared by every subcommand: see output.h.
#include "cli/output.h"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <signal.h>
#include <string.h>  // sigabbrev_np (GNU)
#include <time.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <fstream>

#include "calls/calls.h"
#include "faultline/glob.h"
#include "policy/net_policy.h"

namespace faultline::cli {
namespace {

constexpr std::int64_t kUs = 1000;
constexpr std::int64_t kMs = 1000 * kUs;
constexpr std::int64_t kSec = 1000 * kMs;
constexpr std::int64_t kMin = 60 * kSec;
constexpr std::int64_t kHour = 60 * kMin;

// "1.500" -> "1.5", "2.000" -> "2".
std::string trim_decimals(std::string text) {
  if (text.find('.') == std::string::npos) return text;
  while (text.back() == '0') text.pop_back();
  if (text.back() == '.') text.pop_back();
  return text;
}

std::string join(const std::vector<std::string>& parts, std::string_view separator,
                 std::string_view if_empty) {
  if (parts.empty()) return std::string(if_empty);
  return fmt::format("{}", fmt::join(parts, separator));
}

// The entries of a packed glob list field (faultline/glob.h), as written in the policy.
template <std::size_t N>
std::vector<std::string> glob_entries(const char (&field)[N]) {
  std::vector<std::string> out;
  for (const char* e = glob_list_first(field, N); e; e = glob_list_next(field, N, e))
    out.emplace_back(e, strnlen(e, static_cast<std::size_t>(field + N - e)));
  return out;
}

// The glob and address selectors given, in the policy's key order, each as its entries.
std::vector<std::pair<std::string_view, std::vector<std::string>>> selector_lists(
    const FaultSpec& spec) {
  std::vector<std::pair<std::string_view, std::vector<std::string>>> out;
  for (auto&& [key, entries] : {std::pair{std::string_view("path"), glob_entries(spec.path)},
                                std::pair{std::string_view("process"), glob_entries(spec.process)},
                                std::pair{std::string_view("thread"), glob_entries(spec.thread)},
                                std::pair{std::string_view("stack"), glob_entries(spec.stack)},
                                std::pair{std::string_view("addr"), addr_selector_entries(spec)},
                                std::pair{std::string_view("host"), glob_entries(spec.host)}})
    if (!entries.empty()) out.emplace_back(key, entries);
  return out;
}

std::string size_range_text(const FaultSpec& spec) {
  if (spec.size_min == spec.size_max) return human_size(spec.size_min);
  std::string text = spec.size_min == 0 ? "" : human_size(spec.size_min);
  text += "..";
  if (spec.size_max != kUnlimited) text += human_size(spec.size_max);
  return text;
}

std::string short_text(const FaultSpec& spec) {
  if (spec.short_percent != 0) return fmt::format("short={}%", spec.short_percent);
  return fmt::format("short={}", spec.short_bytes);
}

// Length of the valid UTF-8 sequence starting at text[i], or 0 if it is not one.
std::size_t utf8_sequence_length(std::string_view text, std::size_t i) {
  const auto byte = [&](std::size_t k) { return static_cast<unsigned char>(text[k]); };
  const unsigned char lead = byte(i);
  std::size_t length = 0;
  if (lead >= 0xc2 && lead <= 0xdf)
    length = 2;
  else if (lead >= 0xe0 && lead <= 0xef)
    length = 3;
  else if (lead >= 0xf0 && lead <= 0xf4)
    length = 4;
  if (length == 0 || i + length > text.size()) return 0;
  for (std::size_t k = 1; k < length; ++k)
    if ((byte(i + k) & 0xc0) != 0x80) return 0;
  // Overlong 3/4-byte forms, UTF-16 surrogates and code points past U+10FFFF.
  const unsigned char second = byte(i + 1);
  if ((lead == 0xe0 && second < 0xa0) || (lead == 0xed && second > 0x9f) ||
      (lead == 0xf0 && second < 0x90) || (lead == 0xf4 && second > 0x8f))
    return 0;
  return length;
}

}  // namespace

std::string human_duration(std::int64_t ns) {
  if (ns < 0) return "-" + human_duration(ns == INT64_MIN ? INT64_MAX : -ns);
  if (ns >= kMin && ns % kSec == 0) {
    std::string text;
    if (ns >= kHour) text += fmt::format("{}h", ns / kHour);
    if (ns % kHour >= kMin) text += fmt::format("{}m", ns % kHour / kMin);
    if (ns % kMin != 0) text += fmt::format("{}s", ns % kMin / kSec);
    return text;
  }
  const auto scaled = [&](std::int64_t unit, std::string_view suffix) {
    return trim_decimals(fmt::format("{:.3f}", static_cast<double>(ns) / unit)) +
           std::string(suffix);
  };
  if (ns >= kSec) return scaled(kSec, "s");
  if (ns >= kMs) return scaled(kMs, "ms");
  if (ns >= kUs) return scaled(kUs, "us");
  return fmt::format("{}ns", ns);
}

std::string human_age(std::int64_t ns) {
  if (ns >= kMin) return human_duration(ns - ns % kSec);
  if (ns >= kSec) return human_duration(ns - ns % (100 * kMs));
  return human_duration(ns - ns % kMs);
}

std::string human_size(std::uint64_t bytes) {
  constexpr std::uint64_t kKiB = 1024;
  if (bytes != 0 && bytes % (kKiB * kKiB * kKiB) == 0)
    return fmt::format("{}GiB", bytes / (kKiB * kKiB * kKiB));
  if (bytes != 0 && bytes % (kKiB * kKiB) == 0) return fmt::format("{}MiB", bytes / (kKiB * kKiB));
  if (bytes != 0 && bytes % kKiB == 0) return fmt::format("{}KiB", bytes / kKiB);
  return fmt::format("{}B", bytes);
}

std::string errno_text(int err) {
  const std::string_view name = errno_name(err);
  return name.empty() ? std::to_string(err) : std::string(name);
}

std::string signal_text(int sig) {
  const char* abbrev = sigabbrev_np(sig);
  return abbrev != nullptr ? fmt::format("SIG{}", abbrev) : std::to_string(sig);
}

std::string local_time(std::int64_t realtime_ns) {
  const time_t seconds = static_cast<time_t>(realtime_ns / kSec);
  struct tm parts {};
  localtime_r(&seconds, &parts);
  char clock[16];
  strftime(clock, sizeof clock, "%H:%M:%S", &parts);
  return fmt::format("{}.{:06}", clock, realtime_ns % kSec / kUs);
}

std::string ago_text(std::int64_t at_ns) {
  if (at_ns == 0) return "-";
  return human_age(std::max<std::int64_t>(0, realtime_ns() - at_ns)) + " ago";
}

// A family prints as "@family" when the fault has every call of it that takes the fault's
// actions: the compiler drops the others from a family (fflush from a `short` fault).
std::string calls_text(const FaultSpec& spec) {
  const auto has = [&](const CallInfo& c) {
    return (spec.calls_mask[c.id / 64] >> (c.id % 64)) & 1;
  };
  std::vector<std::string> parts;
  std::uint32_t whole = 0;
  for (std::uint32_t family = 1; family <= kFamFs; family <<= 1) {
    bool any = false;
    bool all = true;
    for (const CallInfo& c : all_calls()) {
      if (c.family != family || (c.actions & spec.actions) != spec.actions) continue;
      any = true;
      all = all && has(c);
    }
    if (!any || !all) continue;
    parts.emplace_back(family_name(static_cast<Family>(family)));
    whole |= family;
  }
  // read/write/readv/writev aimed only at sockets are part of a whole @net.
  const bool rw_in_net =
      (whole & kFamNet) && rw_scope_hits(spec, true) && !rw_scope_hits(spec, false);
  for (const CallInfo& c : all_calls())
    if (has(c) && !(whole & c.family) && !(rw_in_net && is_rw_call(c.id)))
      parts.emplace_back(c.name);
  return join(parts, ",", "-");
}

std::string selectors_text(const FaultSpec& spec) {
  std::vector<std::string> parts;
  // One entry as itself ("path=/data/*"), several as a TOML array that `faultline set` takes
  // back: path=["/data/*","!/data/tmp/*"].
  for (const auto& [key, entries] : selector_lists(spec))
    parts.push_back(fmt::format("{}={}", key, selector_list_text(entries)));
  if (spec.has_size) parts.push_back("size=" + size_range_text(spec));
  if (spec.site[0]) parts.push_back("site=" + std::string(fixed_text(spec.site)));
  if (spec.start_after_ns > 0)
    parts.push_back("start_after=" + human_duration(spec.start_after_ns));
  if (spec.duration_ns != kForever) parts.push_back("duration=" + human_duration(spec.duration_ns));
  if (spec.after_bytes > 0) parts.push_back("after_bytes=" + human_size(spec.after_bytes));
  return join(parts, " ", "-");
}

// The main action first, then the delay that may accompany it.
std::string action_text(const FaultSpec& spec) {
  std::vector<std::string> parts;
  const std::uint32_t a = spec.actions;
  if (a & kActError)  // a resolver error (EAI_AGAIN) for @dns faults, else the errno
    parts.push_back("error=" + (spec.dns_error ? std::string(dns_error_name(spec.dns_error))
                                               : errno_text(spec.error)));
  if (a & kActShort) parts.push_back(short_text(spec));
  if (a & kActCorrupt) parts.push_back(fmt::format("corrupt={}", spec.corrupt_bits));
  if (a & kActQuota) parts.push_back("quota=" + human_size(spec.quota_bytes));
  if (a & kActLie) parts.emplace_back("lie");
  if (a & kActCrash) {
    parts.push_back("crash=" + signal_text(spec.crash_signal));
    if (spec.crash_when == kCrashAfter) parts.emplace_back("when=after");
  }
  if (a & kActPowercut) {
    parts.emplace_back("powercut");
    if (spec.crash_when == kCrashAfter) parts.emplace_back("when=after");
  }
  for (std::uint32_t bit : {kActReset, kActBlackhole, kActLimit, kActEof})
    if (a & bit) parts.emplace_back(action_name(bit));
  if (a & kActLatency) {
    parts.push_back("latency=" + human_duration(spec.latency_ns));
    if (spec.jitter_ns > 0) parts.push_back("jitter=" + human_duration(spec.jitter_ns));
    if (spec.p99_ns > 0) parts.push_back("p99=" + human_duration(spec.p99_ns));
  }
  if (a & kActBandwidth) parts.push_back("bandwidth=" + human_size(spec.bandwidth_bps) + "/s");
  if (a & kActLoss) parts.push_back(fmt::format("loss={}", spec.loss));
  if (a & kActResolve) parts.push_back("resolve_to=" + resolve_to_text(spec));
  if (spec.timeout_ns > 0) parts.push_back("timeout=" + human_duration(spec.timeout_ns));
  if (spec.record[0]) parts.push_back("record=" + std::string(fixed_text(spec.record)));
  if (a & kActDelay) {
    parts.push_back("delay=" + human_duration(spec.delay_ns));
    if (!(a & kActLatency) && spec.jitter_ns > 0)
      parts.push_back("jitter=" + human_duration(spec.jitter_ns));
    if (!(a & kActLatency) && spec.p99_ns > 0)
      parts.push_back("p99=" + human_duration(spec.p99_ns));
  }
  return join(parts, " ", "-");
}

std::string times_text(std::uint64_t times) {
  return times == kUnlimited ? "-" : std::to_string(times);
}

std::string utf8_text(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (std::size_t i = 0; i < text.size(); ++i) {
    const auto c = static_cast<unsigned char>(text[i]);
    if (c < 0x80) {
      out += static_cast<char>(c);
    } else if (const std::size_t n = utf8_sequence_length(text, i); n != 0) {
      out.append(text.substr(i, n));
      i += n - 1;
    } else {
      out += fmt::format("\\x{:02x}", c);
    }
  }
  return out;
}

Json json_number(double value) { return std::isfinite(value) ? Json(value) : Json(nullptr); }

std::string utc_time(std::int64_t ns) {
  std::int64_t secs = ns / kSec;
  std::int64_t frac = ns % kSec;
  if (frac < 0) {
    frac += kSec;
    --secs;
  }
  const time_t t = static_cast<time_t>(secs);
  struct tm tm {};
  gmtime_r(&t, &tm);
  return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:09}Z", tm.tm_year + 1900, tm.tm_mon + 1,
                     tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, frac);
}

void add_instant(Json& object, std::string_view key, std::int64_t realtime_ns) {
  const std::string k(key);
  object[k + "_ns"] = realtime_ns == 0 ? Json(nullptr) : json_digits(realtime_ns);
  object[k + "_time"] = realtime_ns == 0 ? Json(nullptr) : Json(utc_time(realtime_ns));
}

// Strict: every string went through utf8_text, so invalid UTF-8 here is a bug worth an error.
std::string json_dump(const Json& value) { return value.dump(); }

void print_json(const Json& value) { fmt::print("{}\n", json_dump(value)); }

namespace {

std::vector<std::string> split(const std::string& text, char separator) {
  std::vector<std::string> parts;
  std::size_t start = 0;
  for (std::size_t at; (at = text.find(separator, start)) != std::string::npos; start = at + 1)
    parts.push_back(text.substr(start, at - start));
  parts.push_back(text.substr(start));
  return parts;
}

// The selectors as policy keys and values (the values a policy file takes for them). The
// glob and address selectors are always arrays of their entries as written (a single glob is
// an array of one; '!' entries keep their '!'): {"path": ["/data/*"]}.
Json selectors_json(const FaultSpec& spec) {
  Json o = Json::object();
  for (const auto& [key, entries] : selector_lists(spec)) {
    Json items = Json::array();
    for (const std::string& entry : entries) items.push_back(json_text(entry));
    o[std::string(key)] = items;
  }
  if (spec.has_size) o["size"] = size_range_text(spec);
  if (spec.site[0]) o["site"] = json_text(fixed_text(spec.site));
  return o;
}

// The action keys, as in a policy file: the same set action_text shows, typed.
Json action_json(const FaultSpec& spec) {
  Json o = Json::object();
  const std::uint32_t a = spec.actions;
  if (a & kActError) {
    if (spec.dns_error)
      o["error"] = std::string(dns_error_name(spec.dns_error));
    else if (const std::string_view name = errno_name(spec.error); !name.empty())
      o["error"] = std::string(name);
    else
      o["error"] = spec.error;
  }
  if (a & kActShort) {
    if (spec.short_percent != 0)
      o["short"] = fmt::format("{}%", spec.short_percent);
    else
      o["short"] = spec.short_bytes;
  }
  if (a & kActCorrupt) o["corrupt"] = spec.corrupt_bits;
  if (a & kActQuota) o["quota"] = human_size(spec.quota_bytes);
  if (a & kActLie) o["lie"] = true;
  if (a & kActCrash) {
    o["crash"] = signal_text(spec.crash_signal);
    if (spec.crash_when == kCrashAfter) o["when"] = "after";
  }
  if (a & kActPowercut) {
    o["powercut"] = true;
    if (spec.crash_when == kCrashAfter) o["when"] = "after";
  }
  if (a & kActReset) o["reset"] = true;
  if (a & kActBlackhole) o["blackhole"] = true;
  if (a & kActEof) o["eof"] = true;
  if (a & kActLimit) o["limit"] = spec.fd_limit;
  if (a & kActLatency) o["latency"] = human_duration(spec.latency_ns);
  if (a & kActBandwidth) o["bandwidth"] = human_size(spec.bandwidth_bps) + "/s";
  if (a & kActLoss) o["loss"] = json_number(spec.loss);
  if (a & kActResolve) o["resolve_to"] = Json::parse(resolve_to_text(spec));
  if (spec.timeout_ns > 0) o["timeout"] = human_duration(spec.timeout_ns);
  if (spec.record[0]) o["record"] = json_text(fixed_text(spec.record));
  if (a & kActDelay) o["delay"] = human_duration(spec.delay_ns);
  if (spec.jitter_ns > 0) o["jitter"] = human_duration(spec.jitter_ns);
  if (spec.p99_ns > 0) o["p99"] = human_duration(spec.p99_ns);
  if (spec.log_stack) o["log_stack"] = true;
  return o;
}

Json triggers_json(const FaultSpec& spec) {
  Json o = Json::object();
  o["probability"] = json_number(spec.probability);
  o["after"] = spec.after;
  o["every"] = spec.every;
  o["times"] = spec.times == kUnlimited ? Json(nullptr) : Json(spec.times);
  if (spec.start_after_ns > 0) o["start_after"] = human_duration(spec.start_after_ns);
  if (spec.duration_ns != kForever) o["duration"] = human_duration(spec.duration_ns);
  if (spec.after_bytes > 0) o["after_bytes"] = human_size(spec.after_bytes);
  return o;
}

}  // namespace

Json fault_json(const FaultView& fault) {
  Json o;
  o["name"] = json_text(fixed_text(fault.spec.name));
  o["enabled"] = fault.enabled;
  // Flat copies of the triggers first, as before `triggers` existed (scripts read them).
  o["probability"] = json_number(fault.spec.probability);
  o["after"] = fault.spec.after;
  o["every"] = fault.spec.every;
  o["times"] = fault.spec.times == kUnlimited ? Json(nullptr) : Json(fault.spec.times);
  o["seen"] = fault.seen;
  o["matched"] = fault.matched;
  o["injected"] = fault.injected;
  o["quota_used"] = fault.quota_used;
  add_instant(o, "first_injection", fault.first_injection_ns);
  add_instant(o, "last_injection", fault.last_injection_ns);
  const std::string calls = calls_text(fault.spec);
  o["calls"] = calls == "-" ? Json::array() : Json(split(calls, ','));
  o["selectors"] = selectors_json(fault.spec);
  o["action"] = action_json(fault.spec);
  o["triggers"] = triggers_json(fault.spec);
  return o;
}

Table::Table(std::vector<std::string> header, std::vector<bool> numeric)
    : header_(std::move(header)), numeric_(std::move(numeric)) {
  numeric_.resize(header_.size(), false);
}

void Table::add_row(std::vector<std::string> row) {
  row.resize(header_.size());
  rows_.push_back(std::move(row));
}

void Table::print(std::FILE* out, std::string_view indent) const {
  std::vector<std::size_t> width(header_.size());
  for (std::size_t c = 0; c < header_.size(); ++c) {
    width[c] = header_[c].size();
    for (const auto& row : rows_) width[c] = std::max(width[c], row[c].size());
  }
  const auto print_row = [&](const std::vector<std::string>& row) {
    std::string line(indent);
    for (std::size_t c = 0; c < row.size(); ++c) {
      const bool last = c + 1 == row.size();
      if (numeric_[c])
        line += fmt::format("{:>{}}", row[c], width[c]);
      else if (last)
        line += row[c];  // no trailing blanks
      else
        line += fmt::format("{:<{}}", row[c], width[c]);
      if (!last) line += "  ";
    }
    // An empty last column (a note most rows lack) must not leave trailing blanks.
    line.erase(line.find_last_not_of(' ') + 1);
    fmt::print(out, "{}\n", line);
  };
  print_row(header_);
  for (const auto& row : rows_) print_row(row);
}

}  // namespace faultline::cli
