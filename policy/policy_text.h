// Words and numbers in policy text, shared by the policy compiler's files (policy*.cpp): quoting
// and joining for messages, and the unit parsers that policy_units.cpp implements next to the
// public parse_size and parse_duration_ns. No toml++ here, so the unit parsers stay light.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace faultline::policy_detail {

inline std::string quoted(std::string_view text) { return "'" + std::string(text) + "'"; }

inline std::string join(std::span<const std::string_view> words, std::string_view separator) {
  std::string out;
  for (std::string_view word : words) {
    if (!out.empty()) out += separator;
    out += word;
  }
  return out;
}

// "25%" -> 25; nullopt unless a whole percentage from 1 to 100.
std::optional<std::uint32_t> parse_percent(std::string_view text);
// A duration as a message shows it: "1.5s" style is not needed, exact units are.
std::string duration_text(std::int64_t ns);

}  // namespace faultline::policy_detail
