// The fault keys of a policy (policy.md, "Fault keys"): one compile function per key, in one
// table (kFaultKeys), used for policy files, fault snippets and `faultline set` alike, so a
// value means the same thing wherever it is typed.
#include <algorithm>
#include <bit>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "calls/calls.h"
#include "policy/net_policy.h"
#include "policy/policy_compile.h"
#include "policy/site_policy.h"

namespace faultline {
namespace policy_detail {
namespace {

// Linux errno values are all below this; used only to list names for a suggestion.
constexpr int kErrnoScanLimit = 256;

}  // namespace

std::string fault_label(const FaultSpec& spec) {
  return spec.name[0] ? "fault " + quoted(spec.name) : std::string("fault");
}

namespace {

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
       "unknown call " + quoted(name) + did_you_mean(name, known) + "; valid: " + join(valid, " "),
       nearest_word(name, known));
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

}  // namespace

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

namespace {

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
    fail(e.value_at(), "unknown errno name " + quoted(name) + hint, nearest_word(name, names));
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

}  // namespace

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

}  // namespace policy_detail

bool valid_fault_name(std::string_view name) {
  if (name.empty() || name.size() >= kNameMax) return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '.' || c == '-';
  });
}

}  // namespace faultline
