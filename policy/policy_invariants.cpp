// Checks across the keys of one fault, made once all of them are read: an action against the
// calls, keys that need another key (jitter without delay), unsupported actions; load-time
// warnings (an implausible errno or limit); and the natural error of a fault with no action.
#include <sys/resource.h>

#include <bit>
#include <optional>
#include <string>
#include <vector>

#include "calls/calls.h"
#include "policy/net_policy.h"
#include "policy/policy_compile.h"
#include "policy/site_policy.h"

namespace faultline::policy_detail {

void check_required_keys(const FaultSpec& spec, const FaultSource& src) {
  if (!spec.name[0]) fail(src.table_at(), "fault has no 'name'");
  if (!spec.calls_mask[0] && !spec.calls_mask[1])
    fail(src.table_at(), fault_label(spec) + " has no 'calls'");
}

namespace {

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
    CompileError problem{not_valid_for_call(refused, call), src.key_at(action_name(refused)), {}};
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

}  // namespace

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

namespace {

void extend_quota_to_space_calls(FaultSpec& spec) {
  std::uint64_t implied[2];
  implied_space_calls(spec, implied);
  spec.calls_mask[0] |= implied[0];
  spec.calls_mask[1] |= implied[1];
}

}  // namespace

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

}  // namespace faultline::policy_detail
