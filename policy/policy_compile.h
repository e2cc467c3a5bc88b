// The policy compiler's private interface, shared by its files (the public face is policy.h).
//
// toml++ parses; then every key has exactly one compile function (kFaultKeys), used for policy
// files, fault snippets and `faultline set` alike, so a value means the same thing wherever it
// is typed. Errors are thrown as CompileError and caught per fault table and per top-level
// key (compile_faults, compile_document), which collect them: any error refuses the whole
// policy (the contract), every one is reported, and no function threads error codes through.
// Keys are compiled in source order so "first error" means the first one in the file. Checks
// that need several keys (an action against the calls, jitter without delay) run once all keys
// of a fault are read, and look their position back up in the toml table.
//
// The files, by job: policy_document.cpp walks documents and tables (top-level keys, [log],
// [safety], [durability], [target], [[fault]]) and collects errors; policy_keys.cpp compiles
// one fault key (kFaultKeys); policy_values.cpp reads one typed TOML value and suggests the
// nearest word for a typo; policy_invariants.cpp checks what needs several keys of a fault;
// policy_units.cpp parses sizes, durations and globs; policy.cpp holds the public entry points.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "policy/policy.h"
#include "policy/policy_text.h"
#include "policy/toml_safe.h"

namespace faultline::policy_detail {

using Position = toml::source_position;

// The actions of which a fault has at most one; `delay` may be added to any of them.
inline constexpr std::uint32_t kMainActions = kActError | kActShort | kActCorrupt | kActQuota |
                                              kActLie | kActCrash | kActReset | kActBlackhole |
                                              kActResolve | kActLimit | kActLatency |
                                              kActBandwidth | kActLoss | kActEof | kActPowercut;
// What the engine implements today. The other actions are still parsed, so that the error can
// say "not supported yet" instead of "unknown key" for a documented feature.
inline constexpr std::uint32_t kSupportedActions =
    kActError | kActDelay | kActShort | kActCorrupt | kActQuota | kActLie | kActCrash | kActLimit |
    kActReset | kActBlackhole | kActResolve | kActLatency | kActBandwidth | kActLoss | kActEof |
    kActPowercut;

struct CompileError {
  std::string message;
  Position where{};  // {0, 0} for `faultline set`, which has no source
  // The nearest valid word for a typo ("path" for "pathh"), carried apart from the message's
  // "(did you mean 'path'?)" so that PolicyError::suggestion is never parsed back out of text.
  std::string suggestion;
};

// Throws the CompileError (policy_values.cpp); with the suggestion for a typo.
[[noreturn]] void fail(Position where, std::string message);
[[noreturn]] void fail(Position where, std::string message, std::string suggestion);

// ---- suggestions (policy_values.cpp) ----------------------------------------------------

std::string did_you_mean(std::string_view word, std::span<const std::string_view> choices);
// The word did_you_mean names, or "" when nothing is close enough.
std::string nearest_word(std::string_view word, std::span<const std::string_view> choices);
// "unknown key 'pathh' (did you mean 'path'?)", or the valid keys when nothing is close.
std::string unknown_key_message(std::string_view key, std::span<const std::string_view> valid);

// ---- entries and typed values (policy_values.cpp) ---------------------------------------

// One `key = value` being compiled, with where its key sits (for errors about the key itself;
// errors about the value point at the value).
struct Entry {
  std::string_view key;
  const toml::node* value;
  Position key_at;
  Position value_at() const { return value->source().begin; }
};

// toml++ tables are ordered by key; the user reads the file top to bottom.
std::vector<Entry> entries_in_source_order(const toml::table& table);
[[noreturn]] void fail_value(const Entry& e, std::string_view requirement);
std::int64_t get_integer(const Entry& e);
std::uint64_t get_integer_at_least(const Entry& e, std::int64_t min);
const std::string& get_string(const Entry& e);
bool get_bool(const Entry& e);
double get_number(const Entry& e);
std::uint64_t get_size(const Entry& e);
std::int64_t get_duration(const Entry& e);

// ---- faults being compiled (policy_keys.cpp) --------------------------------------------

// A fault being compiled: its spec, plus the calls named one by one. A named call must take
// the fault's action; a family contributes only those of its calls that can (`@write` with
// `short` means the @write calls that move bytes, not fflush).
struct FaultDraft {
  FaultSpec spec;
  std::uint64_t named_calls[2];
};

inline void set_call_bit(std::uint64_t (&mask)[2], std::uint32_t id) {
  mask[id / 64] |= 1ull << (id % 64);
}
inline void clear_call_bit(std::uint64_t (&mask)[2], std::uint32_t id) {
  mask[id / 64] &= ~(1ull << (id % 64));
}
inline bool has_call_bit(const std::uint64_t (&mask)[2], std::uint32_t id) {
  return (mask[id / 64] >> (id % 64)) & 1;
}

std::string fault_label(const FaultSpec& spec);

// A glob or address selector's value: one string or a list of them (policy.md, "Selectors"),
// each with where it sits, so that an error points at the entry at fault.
struct SelectorItem {
  std::string_view text;
  Position at;
};
std::vector<SelectorItem> selector_items(const Entry& e);
// The shim matches selector globs in place from the FaultSpec, so they must fit its fields:
// a list is packed as consecutive NUL-terminated entries (faultline/glob.h), a leading '!'
// kept (it excludes), and must fit the field whole.
void compile_glob(std::span<char> field, const Entry& e);

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
  const std::vector<std::string_view> names = key_names(keys);
  fail(e.key_at, unknown_key_message(e.key, names), nearest_word(e.key, names));
}

// The one compile function per key, shared by files, snippets and `faultline set`.
void compile_fault_key(FaultDraft& d, const Entry& e);
// In a file, a second main action is a mistake, not a replacement as it is for `set`.
void compile_file_fault_key(FaultDraft& d, const Entry& e);

// ---- checks across the keys of one fault (policy_invariants.cpp) ------------------------

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

void check_required_keys(const FaultSpec& spec, const FaultSource& src);
// The space calls a quota fault with @write calls draws from without naming them (both words
// of a calls mask; zero for any other fault).
void implied_space_calls(const FaultSpec& spec, std::uint64_t (&implied)[2]);
// Every check of a fault once all its keys are read; the @write quota gains its space calls.
void validate_fault(FaultDraft& d, const FaultSource& src, const Warnings& warnings);
// docs/policy.md: a fault with no action injects its calls' natural error. A spec holds one
// errno, so the calls must agree on it; @net's mix (ECONNREFUSED for connect, ECONNRESET for
// the rest) becomes ECONNRESET for all, and any other mix is refused (docs/limits.md).
void choose_natural_error(FaultDraft& d, const FaultSource& src,
                          std::vector<Policy::NaturalError>* chosen);

// ---- documents (policy_document.cpp) ----------------------------------------------------

enum class DocumentKind { kPolicy, kSnippet };

// Compiles a whole policy or snippet: every error found, in file order.
CompileResult compile_text(std::string_view text, const std::string& source, DocumentKind kind);

}  // namespace faultline::policy_detail
