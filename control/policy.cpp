// The policy compiler (docs/policy.md): TOML in, validated FaultSpec rows out.
//
// toml++ parses; then every key has exactly one compile function (kFaultKeys), used for policy
// files, fault snippets and `faultline set` alike, so a value means the same thing wherever it
// is typed. Errors are thrown as CompileError and caught per fault table and per top-level
// key (compile_faults, compile_document), which collect them: any error refuses the whole
// policy (the contract), every one is reported, and no function threads error codes through.
// Keys are compiled in source order so "first error" means the first one in the file. Checks
// that need several keys (an action against the calls, jitter without delay) run once all keys
// of a fault are read, and look their position back up in the toml table.
#include "policy.h"

#include <fcntl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <charconv>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <exception>
#include <limits>
#include <span>
#include <utility>
#include <vector>

#include "calls.h"
#include "net_policy.h"
#include "site_policy.h"
#include "toml_safe.h"

namespace faultline {
namespace {

using Position = toml::source_position;

// The actions of which a fault has at most one; `delay` may be added to any of them.
constexpr std::uint32_t kMainActions = kActError | kActShort | kActCorrupt | kActQuota | kActLie |
                                       kActCrash | kActReset | kActBlackhole | kActResolve |
                                       kActLimit | kActLatency | kActBandwidth | kActLoss |
                                       kActEof | kActPowercut;
// What the engine implements today. The other actions are still parsed, so that the error can
// say "not supported yet" instead of "unknown key" for a documented feature.
constexpr std::uint32_t kSupportedActions = kActError | kActDelay | kActShort | kActCorrupt |
                                            kActQuota | kActLie | kActCrash | kActLimit |
                                            kActReset | kActBlackhole | kActResolve | kActLatency |
                                            kActBandwidth | kActLoss | kActEof | kActPowercut;
constexpr std::size_t kMaxSuggestDistance = 3;
// Linux errno values are all below this; used only to list names for a suggestion.
constexpr int kErrnoScanLimit = 256;

struct CompileError {
  std::string message;
  Position where{};  // {0, 0} for `faultline set`, which has no source
};

[[noreturn]] void fail(Position where, std::string message) {
  throw CompileError{std::move(message), where};
}

std::string quoted(std::string_view text) { return "'" + std::string(text) + "'"; }

std::string join(std::span<const std::string_view> words, std::string_view separator) {
  std::string out;
  for (std::string_view word : words) {
    if (!out.empty()) out += separator;
    out += word;
  }
  return out;
}

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

std::string did_you_mean(std::string_view word, std::span<const std::string_view> choices) {
  if (auto suggestion = nearest(word, choices))
    return " (did you mean " + quoted(*suggestion) + "?)";
  return "";
}

// "unknown key 'pathh' (did you mean 'path'?)", or the valid keys when nothing is close.
std::string unknown_key_message(std::string_view key, std::span<const std::string_view> valid) {
  std::string hint = did_you_mean(key, valid);
  if (hint.empty()) hint = " (valid: " + join(valid, ", ") + ")";
  return "unknown key " + quoted(key) + hint;
}

// ---- entries and typed values -----------------------------------------------------------

// One `key = value` being compiled, with where its key sits (for errors about the key itself;
// errors about the value point at the value).
struct Entry {
  std::string_view key;
  const toml::node* value;
  Position key_at;
  Position value_at() const { return value->source().begin; }
};

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

std::optional<std::uint32_t> parse_percent(std::string_view text) {
  if (!text.ends_with('%')) return std::nullopt;
  text.remove_suffix(1);
  auto value = take_digits(text);
  if (!value || !text.empty() || *value < 1 || *value > 100) return std::nullopt;
  return static_cast<std::uint32_t>(*value);
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

// ---- faults being compiled --------------------------------------------------------------

// A fault being compiled: its spec, plus the calls named one by one. A named call must take
// the fault's action; a family contributes only those of its calls that can (`@write` with
// `short` means the @write calls that move bytes, not fflush).
struct FaultDraft {
  FaultSpec spec;
  std::uint64_t named_calls[2];
};

void set_call_bit(std::uint64_t (&mask)[2], std::uint32_t id) {
  mask[id / 64] |= 1ull << (id % 64);
}
void clear_call_bit(std::uint64_t (&mask)[2], std::uint32_t id) {
  mask[id / 64] &= ~(1ull << (id % 64));
}
bool has_call_bit(const std::uint64_t (&mask)[2], std::uint32_t id) {
  return (mask[id / 64] >> (id % 64)) & 1;
}

std::string fault_label(const FaultSpec& spec) {
  return spec.name[0] ? "fault " + quoted(spec.name) : std::string("fault");
}

void copy_text(std::span<char> field, std::string_view text) {
  std::fill(field.begin(), field.end(), '\0');
  std::copy(text.begin(), text.end(), field.begin());
}

// ---- name and calls ---------------------------------------------------------------------

void compile_name(FaultDraft& d, const Entry& e) {
  const std::string& name = get_string(e);
  if (!valid_fault_name(name))
    fail(e.value_at(),
         "bad fault name " + quoted(name) + " (1 to 31 characters from A-Z a-z 0-9 _ . -)");
  copy_text(d.spec.name, name);
}

constexpr int kFamilyCount = 7;

std::vector<std::string_view> family_names(std::uint32_t families) {
  std::vector<std::string_view> names;
  for (int i = 0; i < kFamilyCount; ++i)
    if (families & (1u << i)) names.push_back(family_name(static_cast<Family>(1u << i)));
  return names;
}

// What `calls` accepts today: supported families, then their calls in table order.
std::vector<std::string_view> valid_call_choices() {
  std::vector<std::string_view> choices = family_names(kSupportedFamilies);
  for (const CallInfo& call : all_calls())
    if (call.family & kSupportedFamilies) choices.push_back(call.name);
  return choices;
}

[[noreturn]] void fail_unknown_call(std::string_view name, Position at) {
  std::vector<std::string_view> valid = valid_call_choices();
  std::vector<std::string_view> known = family_names(~0u);  // a typo of a planned name too
  known.insert(known.end(), valid.begin(), valid.end());
  fail(at,
       "unknown call " + quoted(name) + did_you_mean(name, known) + "; valid: " + join(valid, " "));
}

void require_supported(Family family, const std::string& what, Position at) {
  if (family & kSupportedFamilies) return;
  fail(at, what + " is not supported yet by this faultline; supported families: " +
               join(family_names(kSupportedFamilies), " "));
}

void add_family(FaultDraft& d, std::string_view name, Position at) {
  std::optional<Family> family = find_family(name);
  if (!family) fail_unknown_call(name, at);
  require_supported(*family, quoted(name), at);
  for (int word = 0; word < 2; ++word) d.spec.calls_mask[word] |= family_calls_mask(*family, word);
  net_note_family(d.spec, *family);
}

void add_call(FaultDraft& d, std::string_view name, Position at) {
  if (name.starts_with('@')) return add_family(d, name, at);
  if (std::optional<CallInfo> call = find_call(name)) {
    require_supported(call->family,
                      quoted(name) + " (" + std::string(family_name(call->family)) + ")", at);
    set_call_bit(d.spec.calls_mask, call->id);
    set_call_bit(d.named_calls, call->id);
    net_note_named_call(d.spec, call->id);
    return;
  }
  fail_unknown_call(name, at);
}

void compile_calls(FaultDraft& d, const Entry& e) {
  const toml::array* list = e.value->as_array();
  if (!list) fail_value(e, "an array of call names and @families, e.g. [\"fsync\", \"@write\"]");
  if (list->empty()) fail(e.value_at(), "'calls' must name at least one call or @family");
  d.spec.calls_mask[0] = d.spec.calls_mask[1] = 0;
  d.named_calls[0] = d.named_calls[1] = 0;
  d.spec.rw_scope = 0;
  for (const toml::node& item : *list) {
    const auto* name = item.as_string();
    if (!name) fail(item.source().begin, "'calls' must be an array of strings");
    add_call(d, name->get(), item.source().begin);
  }
}

// ---- selectors --------------------------------------------------------------------------

// A glob or address selector's value: one string or a list of them (policy.md, "Selectors"),
// each with where it sits, so that an error points at the entry at fault.
struct SelectorItem {
  std::string_view text;
  Position at;
};

// What the key accepts, with an example of a list, for the errors.
std::string selector_form(std::string_view key) {
  std::string_view example = "[\"/data/*\", \"!/data/tmp/*\"]";
  if (key == "process") example = "[\"postgres*\", \"!postgres-backup\"]";
  if (key == "thread") example = "[\"worker-*\", \"!worker-0\"]";
  if (key == "host") example = "[\"*.db.internal\", \"!primary.db.internal\"]";
  if (key == "stack") example = "[\"sqlite3*\", \"!sqlite3_backup*\"]";
  if (key == "addr") example = "[\"10.0.0.1:5432\", \"10.0.0.2:5432\"]";
  const std::string_view one = key == "addr" ? "an address" : "a glob";
  return std::string(one) + " or a list of them, e.g. " + std::string(example);
}

std::vector<SelectorItem> selector_items(const Entry& e) {
  if (const auto* text = e.value->as_string()) return {SelectorItem{text->get(), e.value_at()}};
  const toml::array* list = e.value->as_array();
  if (!list) fail_value(e, selector_form(e.key));
  if (list->empty())
    fail(e.value_at(), quoted(e.key) + " must not be an empty list (give " + selector_form(e.key) +
                           "; leave the key out to match everything)");
  std::vector<SelectorItem> items;
  for (const toml::node& item : *list) {
    const auto* text = item.as_string();
    if (!text)
      fail(item.source().begin,
           quoted(e.key) + " list entries must be strings (" + selector_form(e.key) + ")");
    items.push_back(SelectorItem{text->get(), item.source().begin});
  }
  return items;
}

// The shim matches selector globs in place from the FaultSpec, so they must fit its fields:
// a list is packed as consecutive NUL-terminated entries (faultline/glob.h), a leading '!'
// kept (it excludes), and must fit the field whole.
void compile_glob(std::span<char> field, const Entry& e) {
  const std::vector<SelectorItem> items = selector_items(e);
  const bool list = e.value->is_array();
  std::size_t bytes = 0;
  for (const SelectorItem& item : items) {
    const std::string_view glob = item.text;
    if (glob.empty())
      fail(item.at, list ? quoted(e.key) + " list entries must not be empty (give " +
                               selector_form(e.key) + ")"
                         : quoted(e.key) + " must not be empty (leave it out to match everything)");
    if (glob.find('\0') != std::string::npos)
      fail(item.at, quoted(e.key) + " must not contain a NUL character");
    if (glob == "!")
      fail(item.at, quoted(e.key) +
                        " entry '!' excludes nothing (write \"!GLOB\" to exclude what " +
                        "GLOB matches, or '\\!' for a glob that starts with a literal '!')");
    if (std::optional<std::string> problem = check_glob(glob.substr(glob.starts_with('!'))))
      fail(item.at, *problem);
    bytes += glob.size() + 1;
  }
  if (bytes > field.size()) {
    if (items.size() == 1)
      fail(items[0].at, quoted(e.key) + " is too long (at most " +
                            std::to_string(field.size() - 1) + " characters)");
    fail(e.value_at(), quoted(e.key) + " list is too long: its " + std::to_string(items.size()) +
                           " entries take " + std::to_string(bytes) +
                           " bytes (each entry's length + 1), at most " +
                           std::to_string(field.size()) + " fit");
  }
  std::fill(field.begin(), field.end(), '\0');
  std::size_t at = 0;
  for (const SelectorItem& item : items) {
    std::copy(item.text.begin(), item.text.end(), field.begin() + static_cast<std::ptrdiff_t>(at));
    at += item.text.size() + 1;
  }
}

void compile_path(FaultDraft& d, const Entry& e) { compile_glob(d.spec.path, e); }
void compile_process(FaultDraft& d, const Entry& e) { compile_glob(d.spec.process, e); }
void compile_thread(FaultDraft& d, const Entry& e) { compile_glob(d.spec.thread, e); }

void compile_size(FaultDraft& d, const Entry& e) {
  std::uint64_t min = 0;
  std::uint64_t max = 0;
  if (e.value->is_integer()) {
    min = max = get_integer_at_least(e, 0);
  } else if (e.value->is_string()) {
    if (!parse_size_range(get_string(e), min, max))
      fail(e.value_at(), "bad size range " + quoted(get_string(e)) +
                             " (use \"4096..\", \"..64\", \"1KiB..1MiB\" or an exact size; "
                             "units B, KiB, MiB, GiB)");
  } else {
    fail_value(e, "a size range like \"4096..\" or a byte count");
  }
  d.spec.size_min = min;
  d.spec.size_max = max;
  d.spec.has_size = 1;
}

// Any call can be targeted by its stack; the shim unwinds only for faults that set it.
void compile_stack(FaultDraft& d, const Entry& e) { compile_glob(d.spec.stack, e); }
void compile_log_stack(FaultDraft& d, const Entry& e) { d.spec.log_stack = get_bool(e) ? 1 : 0; }

// explore (site_policy.h): a call site to fail, or a file that collects call sites.
void compile_site(FaultDraft& d, const Entry& e) {
  if (auto problem = compile_site_selector(get_string(e), d.spec)) fail(e.value_at(), *problem);
}
void compile_record(FaultDraft& d, const Entry& e) {
  if (auto problem = compile_record_path(get_string(e), d.spec)) fail(e.value_at(), *problem);
}
void compile_site_depth_key(FaultDraft& d, const Entry& e) {
  if (auto problem = compile_site_depth(get_integer(e), d.spec)) fail(e.value_at(), *problem);
}

// ---- actions ----------------------------------------------------------------------------

std::uint32_t action_bit(std::string_view name) {
  for (int i = 0; i < 32; ++i)
    if (action_name(1u << i) == name) return 1u << i;
  return 0;
}

// Replacing the main action (`set error=EIO` on a short fault) drops the old one's parameters
// so that no stale value is published with the new action. Nothing is cleared while no main
// action is set, because in a file `when` may come before `crash`.
// A quota may name the errno it fails with (ENOSPC by default; EDQUOT for a user quota):
// that is the one pair of main actions that combine.
constexpr std::uint32_t kQuotaWithErrno = kActQuota | kActError;
// The same for a limit: EMFILE by default, ENFILE for a system-wide table that is full.
constexpr std::uint32_t kLimitWithErrno = kActLimit | kActError;

void set_main_action(FaultSpec& s, std::uint32_t action) {
  std::uint32_t current = s.actions & kMainActions;
  if ((current | action) == kQuotaWithErrno || (current | action) == kLimitWithErrno) {
    s.actions |= action;
    return;
  }
  if (current != 0 && current != action) {
    s.error = 0;
    s.short_percent = 0;
    s.short_bytes = 0;
    s.corrupt_bits = 0;
    s.quota_bytes = 0;
    s.fd_limit = 0;
    s.crash_signal = 0;
    s.crash_when = kCrashBefore;
    net_clear_action_params(s);
  }
  s.actions = (s.actions & ~kMainActions) | action;
}

std::vector<std::string_view> errno_names() {
  std::vector<std::string_view> names;
  for (int err = 1; err < kErrnoScanLimit; ++err)
    if (std::string_view name = errno_name(err); !name.empty()) names.push_back(name);
  return names;
}

void compile_error(FaultDraft& d, const Entry& e) {
  if (const auto* number = e.value->as_integer()) {  // `error = 71`: an errno by number
    if (number->get() < 1 || number->get() > 4095) fail_value(e, "an errno from 1 to 4095");
    set_main_action(d.spec, kActError);
    d.spec.error = static_cast<int>(number->get());
    d.spec.dns_error = 0;
    return;
  }
  if (!e.value->is_string()) fail_value(e, "an errno name like \"EIO\", or its number");
  const std::string& name = get_string(e);
  if (std::optional<int> eai = dns_error_from_name(name)) {  // EAI_AGAIN, TRY_AGAIN: @dns only
    set_main_action(d.spec, kActError);
    d.spec.error = 0;
    d.spec.dns_error = *eai;
    return;
  }
  std::optional<int> err = errno_from_name(name);
  if (!err) {
    std::vector<std::string_view> names = errno_names();
    for (std::string_view dns : dns_error_names()) names.push_back(dns);
    std::string hint = did_you_mean(name, names);
    if (hint.empty()) hint = " (use a name from errno(3), e.g. EIO, ENOSPC, EAGAIN)";
    fail(e.value_at(), "unknown errno name " + quoted(name) + hint);
  }
  set_main_action(d.spec, kActError);
  d.spec.error = *err;
  d.spec.dns_error = 0;
}

void compile_delay(FaultDraft& d, const Entry& e) {
  d.spec.delay_ns = get_duration(e);
  d.spec.actions |= kActDelay;
}

void compile_jitter(FaultDraft& d, const Entry& e) { d.spec.jitter_ns = get_duration(e); }

void compile_p99(FaultDraft& d, const Entry& e) { d.spec.p99_ns = get_duration(e); }

void compile_latency(FaultDraft& d, const Entry& e) {
  std::int64_t ns = get_duration(e);
  if (ns == 0) fail_value(e, "longer than 0 (leave 'latency' out for none)");
  set_main_action(d.spec, kActLatency);
  d.spec.latency_ns = ns;
}

// "256KiB/s": a size per second. Bits are not taken: "Mbit/s" and "MB/s" read alike to a
// tired eye, and a factor of eight is the one mistake a rate must not invite.
void compile_bandwidth(FaultDraft& d, const Entry& e) {
  constexpr std::string_view kForm =
      " (use a size per second: \"256KiB/s\", \"1MiB/s\", \"100B/s\")";
  if (!e.value->is_string()) fail_value(e, "a rate string like \"256KiB/s\"");
  const std::string& text = get_string(e);
  std::string_view rate(text);
  if (!rate.ends_with("/s"))
    fail(e.value_at(), "bad bandwidth " + quoted(text) + std::string(kForm));
  rate.remove_suffix(2);
  std::optional<std::uint64_t> bytes = parse_size(rate);
  if (!bytes) fail(e.value_at(), "bad bandwidth " + quoted(text) + std::string(kForm));
  if (*bytes == 0)
    fail(e.value_at(), "bandwidth " + quoted(text) +
                           " lets nothing through (at least \"1B/s\"; for no traffic at all use "
                           "blackhole = true)");
  set_main_action(d.spec, kActBandwidth);
  d.spec.bandwidth_bps = *bytes;
}

void compile_loss(FaultDraft& d, const Entry& e) {
  double p = get_number(e);
  if (!(p >= 0.0 && p <= 1.0)) fail_value(e, "between 0 and 1 (0.02 = 2% of packets)");
  if (p == 0.0) {
    d.spec.actions &= ~kActLoss;
    d.spec.loss = 0;
    return;
  }
  set_main_action(d.spec, kActLoss);
  d.spec.loss = p;
}

void compile_after_bytes(FaultDraft& d, const Entry& e) { d.spec.after_bytes = get_size(e); }

void compile_short(FaultDraft& d, const Entry& e) {
  std::uint32_t percent = 0;
  std::uint64_t bytes = 0;
  if (e.value->is_integer()) {
    bytes = get_integer_at_least(e, 1);
  } else if (e.value->is_string()) {
    const std::string& text = get_string(e);
    if (auto share = parse_percent(text)) {
      percent = *share;
    } else if (auto size = parse_size(text); size && *size >= 1) {
      bytes = *size;
    } else {
      fail(e.value_at(), "bad short " + quoted(text) +
                             " (use a share from \"1%\" to \"100%\" or a byte count >= 1)");
    }
  } else {
    fail_value(e, "a share like \"50%\" or a byte count");
  }
  set_main_action(d.spec, kActShort);
  d.spec.short_percent = percent;
  d.spec.short_bytes = bytes;
}

void compile_corrupt(FaultDraft& d, const Entry& e) {
  std::uint64_t bits = get_integer_at_least(e, 1);
  // Each bit costs a draw on every injected call: 2^20 bits already flip every bit of a
  // 128 KiB buffer on average; more is a typo, and 2^32 cost seconds of CPU per call.
  if (bits > kCorruptBitsMax)
    fail_value(e, "at most " + std::to_string(kCorruptBitsMax) + " (2^20 bits)");
  set_main_action(d.spec, kActCorrupt);
  d.spec.corrupt_bits = static_cast<std::uint32_t>(bits);
}

void compile_quota(FaultDraft& d, const Entry& e) {
  std::uint64_t bytes = get_size(e);
  set_main_action(d.spec, kActQuota);
  d.spec.quota_bytes = bytes;
}

// `lie = false` only takes lie away, so that `set lie=false` never touches another action.
void compile_lie(FaultDraft& d, const Entry& e) {
  if (get_bool(e))
    set_main_action(d.spec, kActLie);
  else
    d.spec.actions &= ~kActLie;
}

struct SignalName {
  std::string_view name;
  int value;
};
constexpr SignalName kCrashSignals[] = {
    {"SIGKILL", SIGKILL}, {"SIGABRT", SIGABRT}, {"SIGSEGV", SIGSEGV}, {"SIGBUS", SIGBUS}};

void compile_crash(FaultDraft& d, const Entry& e) {
  const std::string& name = get_string(e);
  const auto* found = std::find_if(std::begin(kCrashSignals), std::end(kCrashSignals),
                                   [&](const SignalName& s) { return s.name == name; });
  if (found == std::end(kCrashSignals))
    fail(e.value_at(),
         "bad crash signal " + quoted(name) + " (use SIGKILL, SIGABRT, SIGSEGV or SIGBUS)");
  set_main_action(d.spec, kActCrash);
  d.spec.crash_signal = found->value;
}

void compile_when(FaultDraft& d, const Entry& e) {
  const std::string& when = get_string(e);
  if (when != "before" && when != "after") fail_value(e, "\"before\" or \"after\"");
  d.spec.crash_when = when == "after" ? kCrashAfter : kCrashBefore;
}

void compile_limit(FaultDraft& d, const Entry& e) {
  std::uint64_t fds = get_integer_at_least(e, 0);
  set_main_action(d.spec, kActLimit);
  d.spec.fd_limit = fds;
}

// ---- @net / @dns keys (the values are parsed in net_policy.cpp) ---------------------------

void compile_addr(FaultDraft& d, const Entry& e) {
  const std::vector<SelectorItem> items = selector_items(e);
  clear_addr_selector(d.spec);
  for (const SelectorItem& item : items) {
    if (item.text.empty() && e.value->is_array())
      fail(item.at, "'addr' list entries must not be empty (give " + selector_form("addr") + ")");
    if (std::optional<std::string> problem = add_addr_selector(item.text, d.spec))
      fail(item.at, *problem);
  }
}

void compile_host(FaultDraft& d, const Entry& e) { compile_glob(d.spec.host, e); }

// `reset = false` / `blackhole = false` / `powercut = false` only take that action away, like
// `lie = false`.
void compile_net_switch(FaultDraft& d, const Entry& e) {
  const std::uint32_t action = action_bit(e.key);
  if (get_bool(e))
    set_main_action(d.spec, action);
  else
    d.spec.actions &= ~action;
}

void compile_resolve_to(FaultDraft& d, const Entry& e) {
  const toml::array* list = e.value->as_array();
  if (!list) fail_value(e, "an array of IP addresses, e.g. [\"127.0.0.2\", \"::1\"]");
  if (list->empty()) fail(e.value_at(), "'resolve_to' must give at least one address");
  if (list->size() > kResolveMax)
    fail(e.value_at(), "'resolve_to' takes at most " + std::to_string(kResolveMax) + " addresses");
  FaultSpec& s = d.spec;
  set_main_action(s, kActResolve);
  std::size_t n = 0;
  for (const toml::node& item : *list) {
    const auto* text = item.as_string();
    if (!text) fail(item.source().begin, "'resolve_to' must be an array of address strings");
    if (std::optional<std::string> problem =
            parse_resolve_address(text->get(), s.resolve_family[n], s.resolve_addr[n]))
      fail(item.source().begin, *problem);
    ++n;
  }
  s.resolve_count = static_cast<std::uint8_t>(n);
}

void compile_timeout(FaultDraft& d, const Entry& e) {
  std::int64_t ns = get_duration(e);
  if (ns == 0) fail_value(e, "longer than 0");
  d.spec.timeout_ns = ns;
}

// ---- triggers ---------------------------------------------------------------------------

void compile_probability(FaultDraft& d, const Entry& e) {
  double p = get_number(e);
  if (!(p >= 0.0 && p <= 1.0)) fail_value(e, "between 0 and 1");  // also refuses nan
  d.spec.probability = p;
}

void compile_after(FaultDraft& d, const Entry& e) { d.spec.after = get_integer_at_least(e, 0); }
void compile_every(FaultDraft& d, const Entry& e) { d.spec.every = get_integer_at_least(e, 1); }
void compile_times(FaultDraft& d, const Entry& e) { d.spec.times = get_integer_at_least(e, 1); }

void compile_start_after(FaultDraft& d, const Entry& e) { d.spec.start_after_ns = get_duration(e); }

// A duration as a message shows it: "1.5s" style is not needed, exact units are.
std::string duration_text(std::int64_t ns) {
  if (ns % 1'000'000'000 == 0) return std::to_string(ns / 1'000'000'000) + "s";
  if (ns % 1'000'000 == 0) return std::to_string(ns / 1'000'000) + "ms";
  return std::to_string(ns / 1'000) + "us";
}

void compile_duration(FaultDraft& d, const Entry& e) {
  std::int64_t ns = get_duration(e);
  if (ns == 0) fail_value(e, "longer than 0");
  d.spec.duration_ns = ns;
}

void compile_enabled(FaultDraft& d, const Entry& e) {
  d.spec.enabled_initially = get_bool(e) ? 1 : 0;
}

// ---- the key table ----------------------------------------------------------------------

using FaultKeyCompiler = void (*)(FaultDraft&, const Entry&);
struct FaultKey {
  std::string_view name;
  FaultKeyCompiler compile;
};
constexpr FaultKey kFaultKeys[] = {
    {"name", compile_name},
    {"calls", compile_calls},
    {"path", compile_path},
    {"process", compile_process},
    {"thread", compile_thread},
    {"size", compile_size},
    {"addr", compile_addr},
    {"host", compile_host},
    {"stack", compile_stack},
    {"error", compile_error},
    {"delay", compile_delay},
    {"jitter", compile_jitter},
    {"p99", compile_p99},
    {"latency", compile_latency},
    {"bandwidth", compile_bandwidth},
    {"loss", compile_loss},
    {"eof", compile_net_switch},
    {"after_bytes", compile_after_bytes},
    {"short", compile_short},
    {"corrupt", compile_corrupt},
    {"quota", compile_quota},
    {"lie", compile_lie},
    {"crash", compile_crash},
    {"when", compile_when},
    {"powercut", compile_net_switch},
    {"log_stack", compile_log_stack},
    {"reset", compile_net_switch},
    {"blackhole", compile_net_switch},
    {"resolve_to", compile_resolve_to},
    {"limit", compile_limit},
    {"timeout", compile_timeout},
    {"probability", compile_probability},
    {"after", compile_after},
    {"every", compile_every},
    {"times", compile_times},
    {"start_after", compile_start_after},
    {"duration", compile_duration},
    {"enabled", compile_enabled},
    {"site", compile_site},
    {"record", compile_record},
    {"site_depth", compile_site_depth_key},
};

template <typename Key>
std::vector<std::string_view> key_names(std::span<const Key> keys) {
  std::vector<std::string_view> names;
  for (const Key& key : keys) names.push_back(key.name);
  return names;
}

template <typename Key>
const Key& find_key(std::span<const Key> keys, const Entry& e) {
  for (const Key& key : keys)
    if (key.name == e.key) return key;
  fail(e.key_at, unknown_key_message(e.key, key_names(keys)));
}

// The one compile function per key, shared by files, snippets and `faultline set`.
void compile_fault_key(FaultDraft& d, const Entry& e) {
  find_key(std::span<const FaultKey>(kFaultKeys), e).compile(d, e);
}

// In a file, a second main action is a mistake, not a replacement as it is for `set`.
void compile_file_fault_key(FaultDraft& d, const Entry& e) {
  std::uint32_t before = d.spec.actions & kMainActions;
  compile_fault_key(d, e);
  std::uint32_t after = d.spec.actions & kMainActions;
  if (before != 0 && after != before && after != kQuotaWithErrno && after != kLimitWithErrno)
    fail(e.key_at, fault_label(d.spec) + " has two actions, " + quoted(action_name(before)) +
                       " and " + quoted(e.key) + " (one per fault; only 'delay' may be added)");
}

// ---- checks across the keys of one fault ------------------------------------------------

// Where a key of the fault sits, for checks made after all its keys were read. `set` has no
// table: positions stay {0, 0} and only the message is used.
struct FaultSource {
  const toml::table* table = nullptr;

  Position table_at() const { return table ? table->source().begin : Position{}; }
  Position key_at(std::string_view key) const {
    if (!table) return {};
    auto it = table->find(key);
    return it == table->end() ? table_at() : it->first.source().begin;
  }
  Position value_at(std::string_view key) const {
    if (!table) return {};
    const toml::node* value = table->get(key);
    return value ? value->source().begin : table_at();
  }
};

// Load-time warnings: "file:line:col: warning: ..." for files, the bare message for `set`.
struct Warnings {
  const std::string* source = nullptr;
  std::vector<std::string>* out = nullptr;

  void add(Position at, const std::string& message) const {
    if (!out) return;
    if (source && at.line)
      out->push_back(*source + ":" + std::to_string(at.line) + ":" + std::to_string(at.column) +
                     ": warning: " + message);
    else
      out->push_back(message);
  }
};

void check_required_keys(const FaultSpec& spec, const FaultSource& src) {
  if (!spec.name[0]) fail(src.table_at(), "fault has no 'name'");
  if (!spec.calls_mask[0] && !spec.calls_mask[1])
    fail(src.table_at(), fault_label(spec) + " has no 'calls'");
}

void check_has_action(const FaultSpec& spec, const FaultSource& src) {
  if (spec.actions & (kMainActions | kActDelay)) return;
  fail(src.table_at(), fault_label(spec) +
                           " has no action (error, delay, short, corrupt, quota, lie, crash, "
                           "powercut, reset, blackhole, resolve_to, limit)");
}

bool call_takes(const CallInfo& call, std::uint32_t action) { return call.actions & action; }

std::string not_valid_for_call(std::uint32_t action, const CallInfo& call) {
  std::vector<std::string_view> valid;
  for (int i = 0; i < 32; ++i)
    if (call.actions & (1u << i)) valid.push_back(action_name(1u << i));
  return "action " + quoted(action_name(action)) + " is not valid for call " + quoted(call.name) +
         " (valid: " + join(valid, ", ") + ")";
}

// The first of `actions` that `call` does not take, or 0.
std::uint32_t first_refused_action(const CallInfo& call, std::uint32_t actions) {
  for (int i = 0; i < 32; ++i)
    if ((actions & (1u << i)) && !call_takes(call, 1u << i)) return 1u << i;
  return 0;
}

// A named call that cannot take an action is an error; a family's call is dropped, unless
// that leaves the fault with no call at all.
void restrict_calls_to_actions(FaultDraft& d, const FaultSource& src) {
  std::optional<CompileError> first_drop;
  for (const CallInfo& call : all_calls()) {
    if (!has_call_bit(d.spec.calls_mask, call.id)) continue;
    // read/write calls aimed at sockets also take the @net data actions (reset, blackhole).
    std::uint32_t refused =
        first_refused_action(call, d.spec.actions & ~net_extra_actions(d.spec, call));
    if (!refused) continue;
    CompileError problem{not_valid_for_call(refused, call), src.key_at(action_name(refused))};
    if (has_call_bit(d.named_calls, call.id)) throw problem;
    if (!first_drop) first_drop = problem;
    clear_call_bit(d.spec.calls_mask, call.id);
  }
  if (first_drop && !d.spec.calls_mask[0] && !d.spec.calls_mask[1]) throw *first_drop;
}

void check_actions_supported(const FaultSpec& spec, const FaultSource& src) {
  std::uint32_t unsupported = spec.actions & ~kSupportedActions;
  if (!unsupported) return;
  std::uint32_t action = 1u << std::countr_zero(unsupported);
  fail(src.key_at(action_name(action)),
       "action " + quoted(action_name(action)) + " is not supported yet by this faultline");
}

// An allocation has no file: a `path` on a fault with @memory calls would never match them.
void check_selectors_apply(const FaultSpec& spec, const FaultSource& src) {
  if (!spec.path[0]) return;
  for (const CallInfo& call : all_calls())
    if (call.family == kFamMemory && has_call_bit(spec.calls_mask, call.id))
      fail(src.key_at("path"), "'path' does not apply to call " + quoted(call.name) +
                                   " (@memory has no file; use size, process, thread)");
}

void check_dependent_keys(const FaultSpec& spec, const FaultSource& src) {
  const bool varies_latency = (spec.actions & kActLatency) != 0;
  const bool varies_delay = (spec.actions & kActDelay) != 0;
  for (std::string_view key : {std::string_view{"jitter"}, std::string_view{"p99"}}) {
    const bool given = key == "jitter" ? spec.jitter_ns != 0 : spec.p99_ns != 0;
    if (!given) continue;
    if (!varies_latency && !varies_delay)
      fail(src.key_at(key), quoted(key) + " needs a 'delay' or a 'latency' to vary");
    if (varies_latency && varies_delay)
      fail(src.key_at(key), quoted(key) +
                                " is ambiguous with both 'delay' and 'latency' (it varies one of "
                                "them: put the delay in a fault of its own)");
  }
  if (spec.jitter_ns != 0 && spec.p99_ns != 0)
    fail(src.key_at("p99"),
         "'jitter' and 'p99' exclude each other (jitter: uniform spread; "
         "p99: a heavy tail)");
  if (spec.p99_ns != 0) {
    const std::int64_t median = varies_latency ? spec.latency_ns : spec.delay_ns;
    if (spec.p99_ns < median)
      fail(src.key_at("p99"), "'p99' (" + duration_text(spec.p99_ns) + ") is below the median " +
                                  quoted(varies_latency ? "latency" : "delay") + " (" +
                                  duration_text(median) +
                                  "): the 99th percentile is at least the median");
    if (median == 0)
      fail(src.key_at("p99"), "'p99' needs a median above 0: set 'delay' (or 'latency') too");
  }
  if (spec.crash_when == kCrashAfter && !(spec.actions & (kActCrash | kActPowercut)))
    fail(src.key_at("when"), "'when' applies only to 'crash' and 'powercut'");
}

// An errno the man page does not list still works (programs must cope with surprises), but
// it is usually a typo of intent, so it earns a warning rather than a refusal.
void warn_implausible_errno(const FaultSpec& spec, const FaultSource& src,
                            const Warnings& warnings) {
  if (!(spec.actions & kActError)) return;
  for (const CallInfo& call : all_calls()) {
    if (has_call_bit(spec.calls_mask, call.id) && !errno_plausible(call, spec.error) &&
        !(net_extra_actions(spec, call) && net_errno_plausible(spec.error)))
      warnings.add(src.value_at("error"), std::string(call.name) + " cannot return " +
                                              std::string(errno_name(spec.error)) +
                                              " per its man page");
  }
}

// A limit that cannot act as written is legal but likely a mistake: 0 fails every open (an
// `error` says so more plainly), and one at or above the fd limit is never reached because the
// kernel fails first. Warned, not refused: the target may run with another RLIMIT_NOFILE.
void warn_implausible_limit(const FaultSpec& spec, const FaultSource& src,
                            const Warnings& warnings) {
  if (!(spec.actions & kActLimit)) return;
  if (spec.fd_limit == 0) {
    warnings.add(src.value_at("limit"),
                 "'limit' = 0 fails every matching call; error = \"EMFILE\" says the same");
    return;
  }
  struct rlimit fds;
  if (getrlimit(RLIMIT_NOFILE, &fds) == 0 && fds.rlim_cur != RLIM_INFINITY &&
      spec.fd_limit >= fds.rlim_cur)
    warnings.add(src.value_at("limit"),
                 "'limit' = " + std::to_string(spec.fd_limit) +
                     " is not below this process's fd limit (RLIMIT_NOFILE " +
                     std::to_string(fds.rlim_cur) +
                     "): the kernel's EMFILE comes first, so the fault may never fire");
}

// docs/policy.md: a @write quota is a disk that fills up, and space that ftruncate and the
// fallocate calls reserve on it fills it too. So a quota fault with @write calls also draws
// from those calls (same selectors): a program that preallocates its file meets ENOSPC there,
// as it would on a real full disk, not on a later write into space it already holds.
// The space calls a quota fault with @write calls draws from without naming them (both words
// of a calls mask; zero for any other fault).
void implied_space_calls(const FaultSpec& spec, std::uint64_t (&implied)[2]) {
  implied[0] = implied[1] = 0;
  if (!(spec.actions & kActQuota)) return;
  bool writes = false;
  for (const CallInfo& call : all_calls())
    writes = writes || (call.family == kFamWrite && has_call_bit(spec.calls_mask, call.id));
  if (!writes) return;
  for (const CallInfo& call : all_calls())
    if (call.family == kFamFs && (call.actions & kActQuota)) set_call_bit(implied, call.id);
}

void extend_quota_to_space_calls(FaultSpec& spec) {
  std::uint64_t implied[2];
  implied_space_calls(spec, implied);
  spec.calls_mask[0] |= implied[0];
  spec.calls_mask[1] |= implied[1];
}

void validate_fault(FaultDraft& d, const FaultSource& src, const Warnings& warnings) {
  if (std::optional<SiteProblem> problem = site_validate(d.spec))
    fail(src.key_at(problem->key), problem->message);
  if (!d.spec.record[0]) check_has_action(d.spec, src);  // a `record` fault only looks
  if (std::optional<NetProblem> problem = net_validate(d.spec, d.named_calls))
    fail(src.key_at(problem->key), problem->message);
  restrict_calls_to_actions(d, src);
  extend_quota_to_space_calls(d.spec);
  check_actions_supported(d.spec, src);
  check_dependent_keys(d.spec, src);
  check_selectors_apply(d.spec, src);
  warn_implausible_errno(d.spec, src, warnings);
  warn_implausible_limit(d.spec, src, warnings);
  d.spec.families = net_families(d.spec);  // read/write aimed at sockets arm @net
}

// docs/policy.md: a fault with no action injects its calls' natural error. A spec holds one
// errno, so the calls must agree on it; @net's mix (ECONNREFUSED for connect, ECONNRESET for
// the rest) becomes ECONNRESET for all, and any other mix is refused (docs/limits.md).
void choose_natural_error(FaultDraft& d, const FaultSource& src,
                          std::vector<Policy::NaturalError>* chosen) {
  if (d.spec.actions & (kMainActions | kActDelay) || d.spec.record[0]) return;
  // read/write aimed at sockets (an `addr`, or only @net's share of them) fail as a socket.
  const bool on_socket =
      d.spec.addr_count != 0 || (rw_scope_hits(d.spec, true) && !rw_scope_hits(d.spec, false));
  std::string_view error;
  bool all_net = true;
  std::vector<std::string> seen;  // "EIO (write)", for the message when they differ
  for (const CallInfo& call : all_calls()) {
    if (!has_call_bit(d.spec.calls_mask, call.id)) continue;
    const std::string_view natural = natural_error(call, on_socket);
    all_net = all_net && (call.family == kFamNet || (on_socket && is_rw_call(call.id)));
    if (error.empty()) error = natural;
    if (natural != error || seen.empty())
      seen.push_back(std::string(natural) + " for " + std::string(call.name));
    if (natural != error) error = all_net ? "ECONNRESET" : "";
    if (error.empty()) break;
  }
  if (error.empty())
    fail(src.table_at(), fault_label(d.spec) +
                             " has no action and its calls fail in different ways (" +
                             join(std::vector<std::string_view>(seen.begin(), seen.end()), ", ") +
                             "): give it an 'error' (or another action), or split it by family");
  if (std::optional<int> eai = dns_error_from_name(error)) {
    d.spec.dns_error = *eai;
  } else {
    d.spec.error = *errno_from_name(error);
  }
  d.spec.actions |= kActError;
  if (chosen) chosen->push_back(Policy::NaturalError{d.spec.name, std::string(error)});
}

FaultSpec compile_fault_table(const toml::table& table, const Warnings& warnings,
                              std::vector<Policy::NaturalError>* natural = nullptr) {
  FaultDraft d{default_fault_spec(), {0, 0}};
  for (const Entry& e : entries_in_source_order(table)) compile_file_fault_key(d, e);
  FaultSource src{&table};
  check_required_keys(d.spec, src);
  std::vector<Policy::NaturalError> chosen;
  choose_natural_error(d, src, &chosen);
  validate_fault(d, src, warnings);
  if (natural) natural->insert(natural->end(), chosen.begin(), chosen.end());
  return d.spec;
}

// ---- documents --------------------------------------------------------------------------

enum class DocumentKind { kPolicy, kSnippet };

struct FaultName {
  std::string name;
  Position at;
};

struct Document {
  Policy policy;
  std::vector<FaultName> names;  // for duplicate detection
  std::vector<CompileError> errors;
};

// Runs `compile`; an error it throws is recorded and the caller goes on with the next part.
template <typename F>
void collecting(Document& doc, F&& compile) {
  try {
    compile();
  } catch (const CompileError& err) {
    doc.errors.push_back(err);
  }
}

using DocumentKeyCompiler = void (*)(Document&, const Warnings&, const Entry&);
struct DocumentKey {
  std::string_view name;
  DocumentKeyCompiler compile;
};

void compile_keys_of(Document& doc, const Warnings& w, const Entry& e,
                     std::span<const DocumentKey> keys, std::string_view requirement) {
  const toml::table* table = e.value->as_table();
  if (!table) fail_value(e, requirement);
  for (const Entry& sub : entries_in_source_order(*table))
    collecting(doc, [&] { find_key(keys, sub).compile(doc, w, sub); });
}

void compile_log_path(Document& doc, const Warnings&, const Entry& e) {
  const std::string& path = get_string(e);
  if (path.empty())
    fail(e.value_at(), "'path' must not be empty (leave [log] path out for no log)");
  if (std::optional<std::string> problem = log_path_problem(path, "'path'"))
    fail(e.value_at(), *problem);
  doc.policy.log_path = path;
}

void compile_log_stderr(Document& doc, const Warnings&, const Entry& e) {
  doc.policy.log_stderr = get_bool(e);
}

void compile_log_max_rate(Document& doc, const Warnings&, const Entry& e) {
  doc.policy.log_max_rate = get_integer_at_least(e, 1);
}

void compile_log_max_size(Document& doc, const Warnings&, const Entry& e) {
  const std::uint64_t size = get_size(e);
  if (size < 1) fail_value(e, ">= 1");
  doc.policy.log_max_size = size;
}

void compile_ttl(Document& doc, const Warnings&, const Entry& e) {
  std::int64_t ns = get_duration(e);
  if (ns == 0) fail_value(e, "longer than 0");
  doc.policy.ttl_ns = ns;
}

void compile_max_faults(Document& doc, const Warnings&, const Entry& e) {
  doc.policy.max_faults = get_integer_at_least(e, 1);
}

void compile_target_io_uring(Document& doc, const Warnings&, const Entry& e) {
  const std::string& value = get_string(e);
  if (value != "allow" && value != "deny") fail_value(e, "\"allow\" or \"deny\"");
  doc.policy.deny_io_uring = value == "deny";
}

constexpr DocumentKey kLogKeys[] = {{"path", compile_log_path},
                                    {"stderr", compile_log_stderr},
                                    {"max_rate", compile_log_max_rate},
                                    {"max_size", compile_log_max_size}};
// [durability]: which paths a power cut reverts, and how (policy.md, "Durability").
// Members may chdir, and the undo data is kept by absolute path: a relative glob would track
// different files in each process.
void compile_durability_path(Document& doc, const Warnings&, const Entry& e) {
  for (const SelectorItem& item : selector_items(e)) {
    std::string_view glob = item.text;
    if (glob.starts_with('!')) glob.remove_prefix(1);
    if (!glob.empty() && !glob.starts_with('/'))
      fail(item.at, "[durability] 'path' must be absolute (got " + quoted(item.text) +
                        "; write the full path, e.g. \"/var/lib/db/*\")");
  }
  compile_glob(doc.policy.durability.path, e);
}

void compile_on_fsync_error(Document& doc, const Warnings&, const Entry& e) {
  const std::string& value = get_string(e);
  if (value != "drop" && value != "keep") fail_value(e, "\"drop\" or \"keep\"");
  doc.policy.durability.keep_on_fsync_error = value == "keep";
}

void compile_torn(Document& doc, const Warnings&, const Entry& e) {
  doc.policy.durability.torn = get_bool(e);
}

constexpr DocumentKey kDurabilityKeys[] = {{"path", compile_durability_path},
                                           {"on_fsync_error", compile_on_fsync_error},
                                           {"torn", compile_torn}};

// torn and on_fsync_error say how tracked files lose data: without a path nothing is tracked,
// and a policy that sets them would silently lose nothing.
void compile_durability(Document& doc, const Warnings& w, const Entry& e) {
  compile_keys_of(doc, w, e, kDurabilityKeys, "a table ([durability])");
  const toml::table* table = e.value->as_table();
  if (!table || table->contains("path")) return;
  for (std::string_view key : {std::string_view{"torn"}, std::string_view{"on_fsync_error"}})
    if (table->contains(key))
      fail(e.key_at, "[durability] sets " + quoted(key) +
                         " but no 'path': nothing is tracked, so a power cut would lose "
                         "nothing (add path = \"/your/data/*\")");
}

void compile_target_backend(Document& doc, const Warnings&, const Entry& e) {
  const std::string& name = get_string(e);
  if (name == "auto")
    doc.policy.backend = Backend::kAuto;
  else if (name == "preload")
    doc.policy.backend = Backend::kPreload;
  else if (name == "seccomp")
    doc.policy.backend = Backend::kSeccomp;
  else
    fail_value(e, "\"auto\", \"preload\" or \"seccomp\"");
}

// [target]: one key per line, so that keys added side by side merge cleanly.
constexpr DocumentKey kTargetKeys[] = {
    {"backend", compile_target_backend},
    {"io_uring", compile_target_io_uring},
};
constexpr DocumentKey kSafetyKeys[] = {{"ttl", compile_ttl}, {"max_faults", compile_max_faults}};

void compile_log(Document& doc, const Warnings& w, const Entry& e) {
  compile_keys_of(doc, w, e, kLogKeys, "a table ([log])");
}

void compile_target(Document& doc, const Warnings& w, const Entry& e) {
  compile_keys_of(doc, w, e, kTargetKeys, "a table ([target])");
}

void compile_safety(Document& doc, const Warnings& w, const Entry& e) {
  compile_keys_of(doc, w, e, kSafetyKeys, "a table ([safety])");
}

void compile_version(Document&, const Warnings&, const Entry& e) {
  std::int64_t version = get_integer(e);
  if (version != 1)
    fail(e.value_at(), "unsupported policy version " + std::to_string(version) +
                           " (this faultline reads version 1)");
}

void compile_seed(Document& doc, const Warnings&, const Entry& e) {
  doc.policy.seed = get_integer_at_least(e, 0);
  doc.policy.has_seed = true;
}

void check_unique_name(Document& doc, const toml::table& table, const FaultSpec& spec) {
  Position at = FaultSource{&table}.value_at("name");
  for (const FaultName& seen : doc.names)
    if (seen.name == spec.name)
      fail(at, "duplicate fault name " + quoted(spec.name) + " (first defined at line " +
                   std::to_string(seen.at.line) + ")");
  doc.names.push_back(FaultName{spec.name, at});
}

void compile_faults(Document& doc, const Warnings& w, const Entry& e) {
  const toml::array* list = e.value->as_array();
  if (!list || !list->is_array_of_tables()) fail_value(e, "an array of tables ([[fault]])");
  std::size_t count = 0;
  for (const toml::node& item : *list) {
    const toml::table& table = *item.as_table();
    if (++count > kMaxFaults)
      fail(table.source().begin,
           "too many faults (a session holds at most " + std::to_string(kMaxFaults) + ")");
    // One error per fault: its later keys may only be wrong because of the first.
    collecting(doc, [&] {
      FaultSpec spec = compile_fault_table(table, w, &doc.policy.natural_errors);
      check_unique_name(doc, table, spec);
      doc.policy.faults.push_back(spec);
    });
  }
}

// One entry a line (clang-format would pack them): tables are added here one line each.
// clang-format off
constexpr DocumentKey kTopKeys[] = {{"version", compile_version},
                                    {"seed", compile_seed},
                                    {"log", compile_log},
                                    {"safety", compile_safety},
                                    {"durability", compile_durability},
                                    {"target", compile_target},
                                    {"fault", compile_faults}};
// clang-format on

// The version is checked before anything else: a file written for another version may use
// keys this one does not know, and "unknown key" would hide the real problem.
void check_version(Document& doc, const Warnings& w, const std::vector<Entry>& entries) {
  for (const Entry& e : entries)
    if (e.key == "version") return compile_version(doc, w, e);
  fail(Position{1, 1}, "missing 'version = 1' (the policy format version is required)");
}

void check_snippet_key(const Entry& e) {
  if (e.key != "fault")
    fail(e.key_at, "only [[fault]] tables belong in a fault snippet, not " + quoted(e.key));
}

// Every error goes to `errors`; the policy returned is meaningful only when there is none.
Policy compile_document(const toml::table& root, DocumentKind kind, const std::string& source,
                        std::vector<CompileError>* errors) {
  Document doc;
  Warnings warnings{&source, &doc.policy.warnings};
  std::vector<Entry> entries = entries_in_source_order(root);
  if (kind == DocumentKind::kPolicy) check_version(doc, warnings, entries);
  for (const Entry& e : entries)
    collecting(doc, [&] {
      if (kind == DocumentKind::kSnippet) check_snippet_key(e);
      find_key(std::span<const DocumentKey>(kTopKeys), e).compile(doc, warnings, e);
    });
  if (kind == DocumentKind::kSnippet && doc.policy.faults.empty() && doc.errors.empty())
    fail(Position{1, 1}, "the snippet has no [[fault]] table");
  // [[fault]] tables are one top-level key: an error in a table after them comes later in
  // the list than in the file. Sorted, stably, so each fault's errors keep their order.
  std::stable_sort(
      doc.errors.begin(), doc.errors.end(), [](const CompileError& a, const CompileError& b) {
        return std::pair(a.where.line, a.where.column) < std::pair(b.where.line, b.where.column);
      });
  *errors = std::move(doc.errors);
  return std::move(doc.policy);
}

// The word of a "(did you mean 'path'?)" hint, which every typo message ends with.
std::string suggestion_in(std::string_view message) {
  constexpr std::string_view kOpen = "(did you mean '";
  const std::size_t at = message.rfind(kOpen);
  if (at == std::string_view::npos) return "";
  const std::size_t begin = at + kOpen.size();
  const std::size_t end = message.find("'?)", begin);
  return end == std::string_view::npos ? "" : std::string(message.substr(begin, end - begin));
}

PolicyError make_error(const std::string& source, Position at, std::string message) {
  std::string suggestion = suggestion_in(message);
  return PolicyError{source, static_cast<int>(at.line), static_cast<int>(at.column),
                     std::move(message), std::move(suggestion)};
}

CompileResult compile_text(std::string_view text, const std::string& source, DocumentKind kind) {
  CompileResult result;
  if (auto stray = detail::find_stray_non_ascii(text)) {
    result.errors.push_back(make_error(source,
                                       Position{static_cast<toml::source_index>(stray->line),
                                                static_cast<toml::source_index>(stray->column)},
                                       "non-ASCII character outside a string or comment"));
    result.error = result.errors.front();
    return result;
  }
  try {
    toml::table root = toml::parse(text, std::string_view(source));
    std::vector<CompileError> errors;
    Policy policy = compile_document(root, kind, source, &errors);
    for (const CompileError& err : errors)
      result.errors.push_back(make_error(source, err.where, err.message));
    if (errors.empty()) result.policy = std::move(policy);
  } catch (const toml::parse_error& err) {
    // toml++ stops at the first syntax error: nothing after it can be checked.
    result.errors.push_back(make_error(source, err.source().begin,
                                       "TOML syntax error: " + std::string(err.description())));
  } catch (const CompileError& err) {
    result.errors.push_back(make_error(source, err.where, err.message));
  } catch (const std::exception& err) {
    // The shim compiles inside the target's constructor: nothing may escape and kill it.
    result.errors.push_back(
        make_error(source, Position{}, std::string("internal error: ") + err.what()));
  }
  if (!result.errors.empty()) {
    result.policy.reset();
    result.error = result.errors.front();
  }
  return result;
}

// What a non-regular file is, for the message that refuses it.
const char* file_kind(mode_t mode) {
  if (S_ISDIR(mode)) return "a directory";
  if (S_ISFIFO(mode)) return "a FIFO";
  if (S_ISCHR(mode)) return "a character device";
  if (S_ISBLK(mode)) return "a block device";
  if (S_ISSOCK(mode)) return "a socket";
  return "not a regular file";
}

// `bytes` is 0 when only "more than the limit" is known (standard input, a file that grew).
std::string too_big_message(std::uint64_t bytes) {
  const std::string size = bytes ? std::to_string(bytes) + " bytes, over" : "over";
  return "the policy is " + size + " the limit of 1 MiB (" + std::to_string(kPolicyFileMax) +
         " bytes); a policy holds at most " + std::to_string(kMaxFaults) +
         " faults, which fit in far less: check that this is the policy you meant";
}

// Appends at most kPolicyFileMax + 1 bytes of `fd` to `content` (one more than allowed, so that
// a file that grew since fstat is still caught). Returns errno, or 0.
int read_bounded(int fd, std::string& content) {
  char buffer[8192];
  while (content.size() <= kPolicyFileMax) {
    std::size_t want = std::min(sizeof buffer, kPolicyFileMax + 1 - content.size());
    ssize_t n = ::read(fd, buffer, want);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return errno;
    if (n == 0) break;
    content.append(buffer, static_cast<std::size_t>(n));
  }
  return 0;
}

std::string_view trim(std::string_view text) {
  constexpr std::string_view kSpace = " \t\r\n";
  std::size_t begin = text.find_first_not_of(kSpace);
  if (begin == std::string_view::npos) return {};
  return text.substr(begin, text.find_last_not_of(kSpace) - begin + 1);
}

// VALUE is TOML when it parses as exactly one value for KEY; anything else (a bare `EIO`,
// `/tmp/*.log`) is taken as a string, so that users need not quote twice for their shell.
// Requiring exactly one key stops a VALUE with a newline from smuggling in a second key.
toml::table parse_setting(const std::string& key, std::string_view value) {
  const std::string line = key + " = " + std::string(value);
  // Only text that toml++ can parse safely is offered to it (see toml_safe.h).
  if (!detail::find_stray_non_ascii(line)) {
    try {
      toml::table parsed = toml::parse(line, std::string_view("set"));
      if (parsed.size() == 1 && parsed.contains(key)) return parsed;
    } catch (const toml::parse_error&) {
      // not TOML: a bare word, taken as a string below
    }
  }
  toml::table as_string;
  as_string.insert(key, std::string(value));
  return as_string;
}

}  // namespace

std::string PolicyError::to_string() const {
  if (line <= 0) return file + ": " + message;
  return file + ":" + std::to_string(line) + ":" + std::to_string(column) + ": " + message;
}

FaultSpec default_fault_spec() {
  // Value-initialised, and memset too: {} does not promise to clear padding bits, and the
  // spec is published word by word, so any padding a future field adds must be zeros.
  FaultSpec spec{};
  std::memset(&spec, 0, sizeof spec);
  spec.size_max = kUnlimited;
  spec.enabled_initially = 1;
  spec.probability = 1.0;
  spec.every = 1;
  spec.times = kUnlimited;
  spec.duration_ns = kForever;
  return spec;
}

std::optional<std::string> read_policy_text(const std::string& path, std::string& content,
                                            bool allow_stdin) {
  content.clear();
  if (allow_stdin && path == "-") {
    if (int err = read_bounded(STDIN_FILENO, content)) return std::string(std::strerror(err));
    if (content.size() > kPolicyFileMax) return too_big_message(0);
    return std::nullopt;
  }
  // O_NONBLOCK: opening a FIFO nobody writes to must not hang (the shim does this before the
  // program's main). It has no effect on the read of a regular file, the only kind read.
  int fd = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
  if (fd < 0) return std::string(std::strerror(errno));
  struct stat st;
  std::optional<std::string> problem;
  if (::fstat(fd, &st) != 0) {
    problem = std::strerror(errno);
  } else if (!S_ISREG(st.st_mode)) {
    problem = std::string("not a regular file (it is ") + file_kind(st.st_mode) +
              "); faultline reads a policy only from a regular file (at most 1 MiB): give "
              "the path of a .toml file";
  } else if (static_cast<std::uint64_t>(st.st_size) > kPolicyFileMax) {
    problem = too_big_message(static_cast<std::uint64_t>(st.st_size));
  } else if (int err = read_bounded(fd, content)) {
    problem = std::strerror(err);
  } else if (content.size() > kPolicyFileMax) {
    problem = too_big_message(0);  // it grew while being read
  }
  ::close(fd);
  if (problem) content.clear();
  return problem;
}

std::string absolute_log_path(const std::string& path) {
  if (path.empty() || path[0] == '/') return path;
  char cwd[4096];
  if (!getcwd(cwd, sizeof cwd)) return path;
  return std::string(cwd) + "/" + path;
}

std::optional<std::string> log_path_problem(const std::string& path, std::string_view what) {
  const std::string name(what);
  if (path.empty()) return name + " must not be empty";
  if (path.find('\0') != std::string::npos) return name + " must not contain a NUL character";
  const std::string absolute = absolute_log_path(path);
  if (absolute.size() < kLogPathMax) return std::nullopt;
  std::string message = name + " is too long: " + std::to_string(absolute.size()) + " characters";
  if (absolute.size() != path.size()) message += " once made absolute";
  return message + ", at most " + std::to_string(kLogPathMax - 1) +
         " fit in the session (give a shorter path; it would otherwise be cut and the log "
         "written to a file of another name)";
}

CompileResult compile_policy_file(const std::string& path) {
  std::string content;
  if (std::optional<std::string> err = read_policy_text(path, content)) {
    PolicyError error{path, 0, 0, "cannot read policy: " + *err, ""};
    return CompileResult{std::nullopt, error, {error}};
  }
  return compile_text(content, path, DocumentKind::kPolicy);
}

CompileResult compile_policy_string(std::string_view toml, const std::string& source_name) {
  return compile_text(toml, source_name, DocumentKind::kPolicy);
}

CompileResult compile_fault_snippet(std::string_view toml, const std::string& source_name) {
  return compile_text(toml, source_name, DocumentKind::kSnippet);
}

std::optional<std::string> apply_fault_setting(FaultSpec& spec, std::string_view key,
                                               std::string_view value) {
  return apply_fault_setting(spec, key, value, nullptr);
}

std::optional<std::string> apply_fault_setting(FaultSpec& spec, std::string_view key,
                                               std::string_view value,
                                               std::vector<std::string>* warnings) {
  std::string name(trim(key));
  if (name == "name" || name == "calls")
    return quoted(name) + " cannot be changed on a loaded fault (remove it and add it again)";
  // Live only: an empty value (`path=` or `path=""`) removes a selector, which a policy file
  // does by leaving the key out. The other keys keep refusing an empty value.
  if (const std::string_view v = trim(value); v.empty() || v == "\"\"" || v == "''") {
    if (name == "path" || name == "process" || name == "thread") {
      char* field = name == "path" ? spec.path : name == "process" ? spec.process : spec.thread;
      std::memset(field, 0, name == "path" ? sizeof spec.path : sizeof spec.process);
      return std::nullopt;
    }
    if (name == "stack") {
      std::memset(spec.stack, 0, sizeof spec.stack);
      return std::nullopt;
    }
    if (name == "site") {
      std::memset(spec.site, 0, sizeof spec.site);
      return std::nullopt;
    }
    if (name == "host") {
      std::memset(spec.host, 0, sizeof spec.host);
      return std::nullopt;
    }
    if (name == "addr") {
      clear_addr_selector(spec);
      return std::nullopt;
    }
    if (name == "size") {
      spec.has_size = 0;
      spec.size_min = 0;
      spec.size_max = kUnlimited;
      return std::nullopt;
    }
  }
  try {
    toml::table holder = parse_setting(name, trim(value));
    const Entry e{name, holder.get(name), Position{}};
    // Nothing is half-applied: the draft replaces `spec` only once every check passed.
    // The space calls a quota implied were not named: a new action they do not take drops
    // them (the quota puts them back) instead of refusing the edit.
    std::uint64_t implied[2];
    implied_space_calls(spec, implied);
    FaultDraft d{spec, {spec.calls_mask[0] & ~implied[0], spec.calls_mask[1] & ~implied[1]}};
    compile_fault_key(d, e);
    validate_fault(d, FaultSource{}, Warnings{nullptr, warnings});
    spec = d.spec;
    return std::nullopt;
  } catch (const CompileError& err) {
    return err.message;
  } catch (const std::exception& err) {
    return std::string("internal error: ") + err.what();
  }
}

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

bool valid_fault_name(std::string_view name) {
  if (name.empty() || name.size() >= kNameMax) return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '.' || c == '-';
  });
}

}  // namespace faultline
