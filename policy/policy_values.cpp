// One `key = value` of a policy being compiled: its typed value (an integer, a size, a
// duration, ...) or an error at its position, and the "did you mean" suggestion for a typo.
#include <algorithm>
#include <optional>
#include <string>
#include <vector>

#include "policy/policy_compile.h"

namespace faultline::policy_detail {
namespace {

constexpr std::size_t kMaxSuggestDistance = 3;

// ---- suggestions ------------------------------------------------------------------------

// Optimal string alignment distance: Levenshtein plus adjacent transpositions ("tiems").
std::size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<std::vector<std::size_t>> d(a.size() + 1, std::vector<std::size_t>(b.size() + 1));
  for (std::size_t i = 0; i <= a.size(); ++i) d[i][0] = i;
  for (std::size_t j = 0; j <= b.size(); ++j) d[0][j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    for (std::size_t j = 1; j <= b.size(); ++j) {
      std::size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
      d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1])
        d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
    }
  }
  return d[a.size()][b.size()];
}

// The closest choice, if close enough to be what was meant. The threshold grows with the
// word so that "tll" finds "ttl" but "x" is not "matched" to every one-letter edit.
std::optional<std::string_view> nearest(std::string_view word,
                                        std::span<const std::string_view> choices) {
  std::size_t limit = std::clamp<std::size_t>(word.size() / 2, 1, kMaxSuggestDistance);
  std::optional<std::string_view> best;
  std::size_t best_distance = limit + 1;
  for (std::string_view choice : choices) {
    std::size_t distance = edit_distance(word, choice);
    if (distance < best_distance) {
      best = choice;
      best_distance = distance;
    }
  }
  return best;
}

}  // namespace

void fail(Position where, std::string message) {
  throw CompileError{std::move(message), where, {}};
}

void fail(Position where, std::string message, std::string suggestion) {
  throw CompileError{std::move(message), where, std::move(suggestion)};
}

std::string did_you_mean(std::string_view word, std::span<const std::string_view> choices) {
  if (auto suggestion = nearest(word, choices))
    return " (did you mean " + quoted(*suggestion) + "?)";
  return "";
}

std::string nearest_word(std::string_view word, std::span<const std::string_view> choices) {
  return std::string(nearest(word, choices).value_or(std::string_view{}));
}

// "unknown key 'pathh' (did you mean 'path'?)", or the valid keys when nothing is close.
std::string unknown_key_message(std::string_view key, std::span<const std::string_view> valid) {
  std::string hint = did_you_mean(key, valid);
  if (hint.empty()) hint = " (valid: " + join(valid, ", ") + ")";
  return "unknown key " + quoted(key) + hint;
}

// ---- entries and typed values -----------------------------------------------------------

// toml++ tables are ordered by key; the user reads the file top to bottom.
std::vector<Entry> entries_in_source_order(const toml::table& table) {
  std::vector<Entry> entries;
  for (auto&& [key, value] : table) entries.push_back(Entry{key.str(), &value, key.source().begin});
  std::stable_sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) {
    return std::pair(a.key_at.line, a.key_at.column) < std::pair(b.key_at.line, b.key_at.column);
  });
  return entries;
}

[[noreturn]] void fail_value(const Entry& e, std::string_view requirement) {
  fail(e.value_at(), quoted(e.key) + " must be " + std::string(requirement));
}

std::int64_t get_integer(const Entry& e) {
  if (const auto* v = e.value->as_integer()) return v->get();
  fail_value(e, "an integer");
}

std::uint64_t get_integer_at_least(const Entry& e, std::int64_t min) {
  std::int64_t v = get_integer(e);
  if (v < min) fail_value(e, ">= " + std::to_string(min));
  return static_cast<std::uint64_t>(v);
}

const std::string& get_string(const Entry& e) {
  if (const auto* v = e.value->as_string()) return v->get();
  fail_value(e, "a string");
}

bool get_bool(const Entry& e) {
  if (const auto* v = e.value->as_boolean()) return v->get();
  fail_value(e, "true or false");
}

double get_number(const Entry& e) {
  if (const auto* v = e.value->as_floating_point()) return v->get();
  if (const auto* v = e.value->as_integer()) return static_cast<double>(v->get());
  fail_value(e, "a number");
}

std::uint64_t get_size(const Entry& e) {
  if (e.value->is_integer()) return get_integer_at_least(e, 0);
  if (!e.value->is_string()) fail_value(e, "a size (bytes, or a string like \"10MiB\")");
  const std::string& text = get_string(e);
  if (auto size = parse_size(text)) return *size;
  fail(e.value_at(), "bad size " + quoted(text) + " (use B, KiB, MiB, GiB)");
}

namespace {

// Pieces of digits, an optional fraction, and a known unit, whatever the size
// ("99999999999999h", "9999999999h30m").
bool well_formed_duration(std::string_view text) {
  if (text.empty()) return false;
  while (!text.empty()) {
    std::size_t i = text.find_first_not_of("0123456789");
    if (i == 0 || i == std::string_view::npos) return false;
    if (text[i] == '.') {
      std::size_t end = text.find_first_not_of("0123456789", i + 1);
      if (end == i + 1 || end == std::string_view::npos) return false;
      i = end;
    }
    const std::size_t unit_end = std::min(text.find_first_of("0123456789.", i), text.size());
    const std::string_view unit = text.substr(i, unit_end - i);
    if (unit != "us" && unit != "ms" && unit != "s" && unit != "m" && unit != "h") return false;
    text.remove_prefix(unit_end);
  }
  return true;
}

}  // namespace

std::int64_t get_duration(const Entry& e) {
  if (!e.value->is_string()) fail_value(e, "a duration string like \"250ms\"");
  const std::string& text = get_string(e);
  std::optional<std::int64_t> ns = parse_duration_ns(text);
  // Past 100 years nothing is meant but "never", and sums with a clock (start_after + now,
  // delay + jitter) could wrap: refused here so the shim's arithmetic cannot overflow. A
  // well-formed duration too big even for 64 bits gets the same message, not "bad duration".
  if ((ns && *ns > kDurationMaxNs) || (!ns && well_formed_duration(text)))
    fail(e.value_at(), quoted(e.key) + " " + quoted(text) +
                           " is longer than 100 years (at most \"876000h\"; leave the key "
                           "out for no limit)");
  if (ns) return *ns;
  fail(e.value_at(),
       "bad duration " + quoted(text) + " (use us, ms, s, m, h, e.g. \"250ms\" or \"1m30s\")");
}

}  // namespace faultline::policy_detail
