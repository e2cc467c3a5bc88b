// Reading a live session for people and programs: a consistent snapshot of each fault (spec
// through its seqlock, counters), the member processes, the session-wide state, and the
// event ring. `faultline status/watch/events`, the run summary and the C++ API
// (faultline::Session::counters/events) all read through these, so they agree on every number.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "faultline/control_block.h"
#include "session/session.h"

namespace faultline {

// A NUL-padded char array of the block as text. Bounded by the array: the block is shared with
// other processes and is never trusted to hold a terminator.
template <std::size_t N>
std::string_view fixed_text(const char (&chars)[N]) {
  return {chars, strnlen(chars, N)};
}

// One fault as read from the block: the spec through its seqlock, counters with relaxed loads
// (each counter is exact; the set of them is a moment's snapshot, not an atomic one).
struct FaultView {
  int index = 0;
  FaultSpec spec{};
  bool enabled = false;
  std::uint64_t seen = 0;
  std::uint64_t matched = 0;
  std::uint64_t injected = 0;
  std::uint64_t quota_used = 0;
  std::int64_t first_injection_ns = 0;  // CLOCK_REALTIME, 0 = none yet
  std::int64_t last_injection_ns = 0;
};
// The sound faults of the session; corrupt slots are left out (ControlSession::corrupt_slots()).
std::vector<FaultView> read_faults(const ControlSession& session);
std::string fault_names(const std::vector<FaultView>& faults);  // "a, b, c"

// One member process of the session, with its counters (ControlBlock::members).
struct MemberView {
  int index = 0;  // slot in the pid table
  pid_t pid = 0;
  bool alive = false;
  std::string process;  // /proc/PID/comm while alive, "-" after
  std::uint64_t seen = 0;
  std::uint64_t injected = 0;
  std::int64_t last_injection_ns = 0;  // CLOCK_REALTIME, 0 = none yet
};
// Every process that joined (its pid slot is kept after it exits, until reused).
std::vector<MemberView> read_members(const ControlSession& session);

// Session-wide state. The TTL and budget flags are also derived from the clock and the counters:
// the shim sets them only on its next armed call, which may never come.
struct SessionState {
  std::uint64_t seed = 0;
  std::uint32_t flags = 0;  // SessionFlags, as set or as due
  std::uint64_t armed_mask = 0;
  std::int64_t ttl_left_ns = kForever;  // kForever: no TTL
  std::uint64_t injected_total = 0;
  std::uint64_t max_faults_total = kUnlimited;
};
SessionState read_state(const ControlBlock& block);
// "panicked", "expired", "over budget", "armed" or "idle".
std::string_view state_name(std::uint32_t flags, std::uint64_t armed_mask);

// ---- the event ring ----------------------------------------------------------------------

// One injected fault as the ring holds it: ids and numbers, plus the texts as they were at
// the injection (the path, socket address or looked-up name; the process; the fault's name).
// Named for where it is read from, the block's event ring, and apart from the public API's
// faultline::Event (include/faultline/faultline.hpp), which api.cpp builds from it.
struct RingEvent {
  std::uint64_t index = 0;  // the event's sequence number in the session
  std::int64_t ts_ns = 0;   // CLOCK_REALTIME
  std::uint32_t pid = 0, tid = 0, fault = 0, call = 0, action = 0, present = 0;
  std::int32_t fd = -1, error = 0;
  std::uint64_t size = 0, bytes = 0;
  std::int64_t delay_ns = 0;
  std::string path;
  std::string process;     // comm at the injection
  std::string fault_name;  // the fault's name at the injection
};
// The key the ring's text goes under in an event line: "addr" (@net), "host" (@dns), "path".
const char* event_text_key(const RingEvent& event);

enum class SlotRead { kReady, kPending, kOverwritten };
// Event `index` lives in slot index % kEventSlots; its seq is 2*index+1 while being written and
// 2*index+2 when complete. Reading the seq again after the fields (acquire fence) detects a
// writer that lapped us mid-read.
SlotRead read_event(const ControlBlock& block, std::uint64_t index, RingEvent& event);

// Reads the ring in order, across calls: `next` is the first index not yet read.
struct EventCursor {
  std::uint64_t next = 0;
  std::uint64_t lost = 0;  // overwritten before we read them
  int stalls = 0;
};
// Appends the complete events from the cursor up to the ring's head. A slot still being
// written ends the pass (the next poll retries it) unless `final_pass` or it has stalled for
// `max_stalls` passes (a writer that died mid-event).
void read_new_events(const ControlBlock& block, EventCursor& cursor, bool final_pass,
                     std::vector<RingEvent>& out, int max_stalls = 20);

}  // namespace faultline
