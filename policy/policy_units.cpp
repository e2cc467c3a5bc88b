// Units of policy values: sizes ("10MiB"), size ranges ("4KiB..1MiB"), Go-style durations
// ("1m30s"), percentages ("25%"), and glob syntax, shared with the CLI and the tests.
#include <algorithm>
#include <charconv>
#include <cstdint>
#include <limits>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <system_error>

#include "policy/policy.h"
#include "policy/policy_text.h"

namespace faultline {
namespace policy_detail {
namespace {

// ---- number and text parsers ------------------------------------------------------------

// Leading decimal digits of `text` (consumed); nullopt if there are none or they overflow.
std::optional<std::uint64_t> take_digits(std::string_view& text) {
  std::uint64_t value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc{}) return std::nullopt;
  text.remove_prefix(static_cast<std::size_t>(end - text.data()));
  return value;
}

struct Unit {
  std::string_view suffix;
  std::uint64_t scale;
};
constexpr Unit kSizeUnits[] = {
    {"", 1}, {"B", 1}, {"KiB", 1ull << 10}, {"MiB", 1ull << 20}, {"GiB", 1ull << 30}};
constexpr Unit kDurationUnits[] = {{"us", 1'000},
                                   {"ms", 1'000'000},
                                   {"s", 1'000'000'000},
                                   {"m", 60'000'000'000},
                                   {"h", 3'600'000'000'000}};

std::optional<std::uint64_t> unit_scale(std::span<const Unit> units, std::string_view suffix) {
  for (const Unit& unit : units)
    if (unit.suffix == suffix) return unit.scale;
  return std::nullopt;
}

// The nanoseconds of a decimal fraction ("5" of "1.5s") in `scale` units, truncated to whole
// nanoseconds. Digit by digit so that nothing overflows even for hours.
std::optional<std::uint64_t> fraction_ns(std::string_view digits, std::uint64_t scale) {
  constexpr std::size_t kMaxFractionDigits = 12;  // below a nanosecond even for hours
  if (digits.empty() || digits.size() > kMaxFractionDigits) return std::nullopt;
  std::uint64_t ns = 0;
  std::uint64_t place = scale;
  for (char c : digits) {
    if (c < '0' || c > '9') return std::nullopt;
    place /= 10;
    ns += static_cast<std::uint64_t>(c - '0') * place;
  }
  return ns;
}

// Index just past the ']' closing the class that starts at `i` (just after '['), or npos.
// Mirrors class_match in glob.cpp: a leading '!' or '^' negates, a ']' right after the
// opening (or after the negation) is a literal, a backslash escapes the next character.
std::size_t class_end(std::string_view glob, std::size_t i) {
  if (i < glob.size() && (glob[i] == '!' || glob[i] == '^')) ++i;
  bool first = true;
  while (i < glob.size() && (glob[i] != ']' || first)) {
    if (glob[i] == '\\' && i + 1 < glob.size()) ++i;
    ++i;
    first = false;
  }
  return i < glob.size() ? i + 1 : std::string_view::npos;
}

}  // namespace

std::optional<std::uint32_t> parse_percent(std::string_view text) {
  if (!text.ends_with('%')) return std::nullopt;
  text.remove_suffix(1);
  auto value = take_digits(text);
  if (!value || !text.empty() || *value < 1 || *value > 100) return std::nullopt;
  return static_cast<std::uint32_t>(*value);
}

std::string duration_text(std::int64_t ns) {
  if (ns % 1'000'000'000 == 0) return std::to_string(ns / 1'000'000'000) + "s";
  if (ns % 1'000'000 == 0) return std::to_string(ns / 1'000'000) + "ms";
  return std::to_string(ns / 1'000) + "us";
}

}  // namespace policy_detail

using namespace policy_detail;

std::optional<std::uint64_t> parse_size(std::string_view text) {
  std::optional<std::uint64_t> count = take_digits(text);
  std::optional<std::uint64_t> scale = unit_scale(kSizeUnits, text);
  if (!count || !scale || *count > std::numeric_limits<std::uint64_t>::max() / *scale)
    return std::nullopt;
  return *count * *scale;
}

// Go-style: one or more NUMBER[.FRACTION]UNIT pieces, summed ("1m30s", "1h0.5m", "250ms").
std::optional<std::int64_t> parse_duration_ns(std::string_view text) {
  constexpr std::uint64_t kMaxNs = std::numeric_limits<std::int64_t>::max();
  if (text.empty()) return std::nullopt;
  std::uint64_t total = 0;
  while (!text.empty()) {
    std::optional<std::uint64_t> whole = take_digits(text);
    if (!whole) return std::nullopt;
    std::string_view fraction;
    if (text.starts_with('.')) {
      std::size_t end = text.find_first_not_of("0123456789", 1);
      if (end == std::string_view::npos) return std::nullopt;  // no unit
      fraction = text.substr(1, end - 1);
      text.remove_prefix(end);
      if (fraction.empty()) return std::nullopt;  // "1.s"
    }
    const std::size_t unit_end = std::min(text.find_first_of("0123456789."), text.size());
    std::optional<std::uint64_t> scale = unit_scale(kDurationUnits, text.substr(0, unit_end));
    text.remove_prefix(unit_end);
    if (!scale || unit_end == 0 || *whole > kMaxNs / *scale) return std::nullopt;
    std::uint64_t ns = *whole * *scale;
    if (!fraction.empty()) {
      std::optional<std::uint64_t> part = fraction_ns(fraction, *scale);
      if (!part || *part > kMaxNs - ns) return std::nullopt;
      ns += *part;
    }
    if (ns > kMaxNs - total) return std::nullopt;
    total += ns;
  }
  return static_cast<std::int64_t>(total);
}

bool parse_size_range(std::string_view text, std::uint64_t& min, std::uint64_t& max) {
  std::size_t dots = text.find("..");
  if (dots == std::string_view::npos) {
    std::optional<std::uint64_t> exact = parse_size(text);
    if (!exact) return false;
    min = max = *exact;
    return true;
  }
  std::string_view low = text.substr(0, dots);
  std::string_view high = text.substr(dots + 2);
  if (low.empty() && high.empty()) return false;  // ".." alone is a selector that selects nothing
  std::optional<std::uint64_t> lo = low.empty() ? std::optional<std::uint64_t>(0) : parse_size(low);
  std::optional<std::uint64_t> hi =
      high.empty() ? std::optional<std::uint64_t>(kUnlimited) : parse_size(high);
  if (!lo || !hi || *lo > *hi) return false;
  min = *lo;
  max = *hi;
  return true;
}

std::optional<std::string> check_glob(std::string_view glob) {
  for (std::size_t i = 0; i < glob.size();) {
    if (glob[i] == '\\') {
      if (i + 1 == glob.size())
        return "bad glob " + quoted(glob) + ": trailing backslash (write \\\\ for a literal one)";
      i += 2;
    } else if (glob[i] == '[') {
      i = class_end(glob, i + 1);
      if (i == std::string_view::npos)
        return "bad glob " + quoted(glob) + ": unterminated [...] class";
    } else {
      ++i;
    }
  }
  return std::nullopt;
}

}  // namespace faultline
