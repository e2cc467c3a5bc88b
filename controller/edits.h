// Editing a live session by fault name: the checks and messages `faultline enable/disable/
// remove/set/add` and the C++ API share. Each edit is one writer-locked step of the ControlSession
// (session.h); a bad name or setting is refused before anything changes, so an edit is never
// half-applied. Failures are ControlErrors with the CLI's statuses (1: no such fault, 2: bad
// input).
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "controller/control_error.h"
#include "session/session.h"

namespace faultline {

// "faults: a, b" or "it has no faults", for messages that name a session's faults.
std::string fault_list_note(const ControlSession& session);

// The slot of the fault with this name (status 1 "no fault 'x' in session s (faults: ...)").
int require_fault(const ControlSession& session, std::string_view name);

enum class FaultEdit { kEnable, kDisable, kRemove };
// Checks every name first, then applies the edit to each fault once (a name given twice is
// edited once). Returns the names edited, in order.
std::vector<std::string> edit_faults(ControlSession& session, FaultEdit edit,
                                     const std::vector<std::string>& names);

struct SetOutcome {
  FaultSpec spec{};                   // the fault's spec as published
  std::vector<std::string> warnings;  // sorted, without repeats (e.g. an implausible errno)
};
// Applies "KEY=VALUE" settings (the policy compiler's key table, as in a file) to one fault
// under the writer lock: a concurrent edit is never lost and a bad setting publishes nothing.
// `enabled=...` also flips the fault live.
SetOutcome set_fault(ControlSession& session, std::string_view fault,
                     const std::vector<std::string>& settings);

// Adds compiled [[fault]] specs: refused whole when a name is taken or the session is full.
// Returns the names added.
std::vector<std::string> add_faults(ControlSession& session, const std::vector<FaultSpec>& specs);

}  // namespace faultline
