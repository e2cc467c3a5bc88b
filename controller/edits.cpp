// Editing a live session by fault name: see edits.h. Moved here from the CLI's commands so the
// C++ API edits with the very same checks, order and messages.
#include "controller/edits.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>

#include "calls/calls.h"
#include "controller/inspect.h"
#include "policy/policy.h"
#include "policy/seccomp_filter.h"

namespace faultline {
namespace {

// The seccomp backend's filter was fixed at exec (ControlHeader::seccomp_families): a fault it
// cannot reach or deliver, added or edited live, is refused rather than left to never fire.
// One it can is widened as `run` widens it (seccomp::widen_calls).
void check_seccomp_reach(ControlSession& session, FaultSpec& spec) {
  const std::uint32_t seccomp =
      session.block().header.seccomp_families.load(std::memory_order_acquire);
  if (!(seccomp & kSeccompBackend)) return;
  seccomp::widen_calls(spec);
  if (auto why = seccomp::refusal(spec))
    throw_control_error(
        ErrorKind::kUsage, kStatusUsage,
        fmt::format("session {} runs under the seccomp backend: {}", session.name(), *why));
  if (const std::uint32_t missing = spec.families & ~seccomp)
    throw_control_error(
        ErrorKind::kUsage, kStatusUsage,
        fmt::format("session {} runs under the seccomp backend, whose filter does not trap "
                    "the system calls of {} (a filter cannot change after the program "
                    "started): fault '{}' would never fire. Name that family in the policy "
                    "the program starts with (a disabled fault is enough)",
                    session.name(), family_name(static_cast<Family>(missing & -missing)),
                    fixed_text(spec.name)));
}

// Returns the key. Warnings (an errno this call cannot return) are collected, not refused:
// each check covers the whole spec, so the same one may come back for every setting.
std::string apply_setting(FaultSpec& spec, const std::string& setting,
                          std::vector<std::string>& warnings) {
  const auto equals = setting.find('=');
  if (equals == std::string::npos || equals == 0)
    throw_control_error(
        ErrorKind::kUsage, kStatusUsage,
        fmt::format("expected KEY=VALUE, got '{}' (e.g. probability=0.5)", setting));
  const std::string_view text(setting);
  if (auto error =
          apply_fault_setting(spec, text.substr(0, equals), text.substr(equals + 1), &warnings))
    throw_control_error(ErrorKind::kUsage, kStatusUsage, fmt::format("{}: {}", setting, *error));
  const auto key = text.substr(0, equals);
  const auto first = key.find_first_not_of(" \t");
  if (first == std::string_view::npos) return "";
  return std::string(key.substr(first, key.find_last_not_of(" \t") + 1 - first));
}

}  // namespace

std::string fault_list_note(const ControlSession& session) {
  const auto faults = read_faults(session);
  return faults.empty() ? "it has no faults" : fmt::format("faults: {}", fault_names(faults));
}

int require_fault(const ControlSession& session, std::string_view name) {
  const int index = session.find_fault(name);
  if (index < 0)
    throw_control_error(ErrorKind::kNoFault, kStatusNothing,
                        fmt::format("no fault '{}' in session {} ({})", name, session.name(),
                                    fault_list_note(session)));
  return index;
}

std::vector<std::string> edit_faults(ControlSession& session, FaultEdit edit,
                                     const std::vector<std::string>& names) {
  // Every name is checked before anything changes: a typo must not leave a half-applied edit.
  std::vector<std::pair<int, std::string>> targets;
  for (const auto& name : names) {
    const int index = require_fault(session, name);
    const bool repeated = std::any_of(targets.begin(), targets.end(),
                                      [&](const auto& t) { return t.first == index; });
    if (!repeated) targets.emplace_back(index, name);
  }
  std::vector<std::string> done;
  for (const auto& [index, name] : targets) {
    if (edit == FaultEdit::kRemove)
      session.remove_fault(index);
    else
      session.set_enabled(index, edit == FaultEdit::kEnable);
    done.push_back(name);
  }
  return done;
}

SetOutcome set_fault(ControlSession& session, std::string_view fault,
                     const std::vector<std::string>& settings) {
  const int index = require_fault(session, fault);
  bool sets_enabled = false;
  SetOutcome outcome;
  // Applied to the current spec under the writer lock: a concurrent `set` is never lost, and
  // a bad setting (apply_setting throws) publishes nothing.
  const bool present = session.edit_fault(index, [&](FaultSpec& current) {
    for (const auto& setting : settings)
      sets_enabled |= apply_setting(current, setting, outcome.warnings) == "enabled";
    check_seccomp_reach(session, current);  // throws: nothing is published
    outcome.spec = current;
  });
  if (!present)
    throw_control_error(ErrorKind::kNoFault, kStatusNothing,
                        fmt::format("fault '{}' is gone from session {}", fault, session.name()));
  // `enabled` in a spec is only the state a fault is loaded in; live, it is the slot's flag.
  if (sets_enabled) session.set_enabled(index, outcome.spec.enabled_initially != 0);
  auto& warnings = outcome.warnings;
  std::sort(warnings.begin(), warnings.end());
  warnings.erase(std::unique(warnings.begin(), warnings.end()), warnings.end());
  return outcome;
}

std::vector<std::string> add_faults(ControlSession& session, const std::vector<FaultSpec>& specs) {
  for (const FaultSpec& spec : specs)
    if (session.find_fault(fixed_text(spec.name)) >= 0)
      throw_control_error(ErrorKind::kUsage, kStatusUsage,
                          fmt::format("session {} already has a fault named '{}': remove it first "
                                      "(`faultline remove {} {}`) or rename the new one",
                                      session.name(), fixed_text(spec.name), session.name(),
                                      fixed_text(spec.name)));
  if (session.used_slots().size() + specs.size() > kMaxFaults)
    throw_control_error(
        ErrorKind::kUsage, kStatusUsage,
        fmt::format("session {} holds at most {} faults", session.name(), kMaxFaults));
  std::vector<FaultSpec> checked = specs;
  for (FaultSpec& spec : checked) check_seccomp_reach(session, spec);
  std::vector<std::string> added;
  for (const FaultSpec& spec : checked) {
    SessionError error;
    if (!session.add_fault(spec, error))
      throw_control_error(
          ErrorKind::kSession, kStatusUsage,
          fmt::format(
              "cannot add '{}': {}{}", fixed_text(spec.name), error.message,
              added.empty() ? "" : fmt::format(" (already added: {})", fmt::join(added, ", "))));
    added.emplace_back(fixed_text(spec.name));
  }
  return added;
}

}  // namespace faultline
