// Call sites, for `faultline explore`: the `site` selector (fail the calls made from exactly
// this place in the program) and `record` faults (collect every distinct place a call is made
// from). A call site is the innermost return addresses of the calling stack, each named by the
// loaded object that holds it and the offset into that object, so it is the same in every run
// of the same binaries whatever address-space randomisation did.
//
// Only calls that reach a fault with `site` or `record` unwind (the engine asks last, like the
// `stack` selector), once per call however many such faults there are.
#pragma once

#include <cstdint>

#include "faultline/control_block.h"

namespace faultline::shim {

// The calling stack's innermost return addresses, captured on first use within one call.
// Only `captured` is initialised per call: the engine builds one of these for every armed call.
struct SiteFrames {
  bool captured = false;
  int count;
  std::uintptr_t ip[kMaxSiteDepth];
};

// Does the call's stack start with the frames of `site` (a compiled FaultSpec::site)? A stack
// that cannot be unwound, or is shallower than the site, matches nothing.
bool site_matches(const char* site, SiteFrames& frames) noexcept;

// A `record` fault matched: appends the call's site to the fault's file, one line, unless this
// process has already written the same site for the same fault. The line is
//   FAULT \t CALL \t SITE \t FRAME \t FRAME ...\n
// with SITE as the `site` selector takes it and each FRAME as event stacks print it
// ("sqlite3VdbeExec (libsqlite3.so.0)"). One O_APPEND write per line, so processes and threads
// of a session can share the file.
void site_record(const FaultSpec& spec, std::uint32_t call, SiteFrames& frames) noexcept;

// How many sites this process wrote (tests), and forgetting them (tests: one process, many
// sessions).
std::uint64_t site_recorded_count() noexcept;
void site_reset_for_tests() noexcept;

}  // namespace faultline::shim
