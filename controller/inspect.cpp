// Reading a live session: see inspect.h. Moved here from the CLI's output code so that the C++
// API reads counters and events with the very same code as `faultline status` and `events`.
#include "controller/inspect.h"

#include <signal.h>

#include <algorithm>
#include <cerrno>
#include <fstream>

namespace faultline {
namespace {

// Text stored NUL-padded in a slot's words (never trusted to hold a terminator).
template <std::size_t N>
std::string load_text_words(const std::atomic<std::uint64_t> (&words)[N]) {
  char text[N * 8];
  for (std::size_t w = 0; w < N; ++w) {
    const std::uint64_t word = words[w].load(std::memory_order_acquire);
    std::memcpy(text + w * 8, &word, 8);
  }
  return std::string(fixed_text(text));
}

}  // namespace

std::vector<FaultView> read_faults(const ControlSession& session) {
  std::vector<FaultView> faults;
  for (int index : session.used_slots()) {
    const FaultSlot& slot = session.block().faults[index];
    // A corrupt slot is not a fault: ControlSession::corrupt_slots() reports it instead.
    SlotInspection inspected = inspect_fault_slot(slot);
    if (!inspected.used) continue;
    FaultView view;
    view.index = index;
    view.spec = inspected.spec;
    view.enabled = slot.enabled.load(std::memory_order_relaxed) != 0;
    view.seen = slot.seen.load(std::memory_order_relaxed);
    view.matched = slot.matched.load(std::memory_order_relaxed);
    view.injected = slot.injected.load(std::memory_order_relaxed);
    view.quota_used = slot.quota_used.load(std::memory_order_relaxed);
    view.first_injection_ns = slot.first_injection_ns.load(std::memory_order_relaxed);
    view.last_injection_ns = slot.last_injection_ns.load(std::memory_order_relaxed);
    faults.push_back(view);
  }
  return faults;
}

std::string fault_names(const std::vector<FaultView>& faults) {
  std::string names;
  for (const auto& f : faults) {
    if (!names.empty()) names += ", ";
    names += fixed_text(f.spec.name);
  }
  return names;
}

std::vector<MemberView> read_members(const ControlSession& session) {
  std::vector<MemberView> members;
  const ControlBlock& block = session.block();
  for (std::uint32_t i = 0; i < kMaxPids; ++i) {
    const pid_t pid = block.header.pids[i].load(std::memory_order_relaxed);
    if (pid <= 0) continue;
    MemberView view;
    view.index = static_cast<int>(i);
    view.pid = pid;
    view.alive = kill(pid, 0) == 0 || errno == EPERM;
    view.process = "-";
    if (view.alive) {
      std::ifstream comm("/proc/" + std::to_string(pid) + "/comm");
      std::getline(comm, view.process);
    }
    const MemberStats& stats = block.members[i];
    view.seen = stats.seen.load(std::memory_order_relaxed);
    view.injected = stats.injected.load(std::memory_order_relaxed);
    view.last_injection_ns = stats.last_injection_ns.load(std::memory_order_relaxed);
    members.push_back(std::move(view));
  }
  return members;
}

SessionState read_state(const ControlBlock& block) {
  const ControlHeader& h = block.header;
  SessionState state;
  state.seed = h.seed.load(std::memory_order_relaxed);
  state.flags = h.flags.load(std::memory_order_acquire);
  state.armed_mask = h.armed_mask.load(std::memory_order_relaxed);
  state.injected_total = h.injected_total.load(std::memory_order_relaxed);
  state.max_faults_total = h.max_faults_total.load(std::memory_order_relaxed);
  const std::int64_t ttl = h.ttl_ns.load(std::memory_order_relaxed);
  if (ttl != kForever) {
    const std::int64_t end = h.start_mono_ns.load(std::memory_order_relaxed) + ttl;
    state.ttl_left_ns = std::max<std::int64_t>(0, end - monotonic_ns());
    if (state.ttl_left_ns == 0) state.flags |= kFlagTtlExpired;
  }
  if (state.max_faults_total != kUnlimited && state.injected_total >= state.max_faults_total)
    state.flags |= kFlagBudgetSpent;
  return state;
}

std::string_view state_name(std::uint32_t flags, std::uint64_t armed_mask) {
  if (flags & kFlagPanicked) return "panicked";
  if (flags & kFlagTtlExpired) return "expired";
  if (flags & kFlagBudgetSpent) return "over budget";
  if (flags & kFlagPowercut) return "power cut";
  // kFamDurable (tracking) is no fault: a session with only it armed is idle.
  return (armed_mask & ~std::uint64_t{kFamDurable}) != 0 ? "armed" : "idle";
}

// ---- the event ring ----------------------------------------------------------------------

const char* event_text_key(const RingEvent& event) {
  if (event.present & kEventHasAddr) return "addr";
  if (event.present & kEventHasHost) return "host";
  return "path";
}

SlotRead read_event(const ControlBlock& block, std::uint64_t index, RingEvent& event) {
  const EventSlot& slot = block.events[index % kEventSlots];
  const std::uint64_t complete = 2 * index + 2;
  const std::uint64_t seq = slot.seq.load(std::memory_order_acquire);
  if (seq < complete) return SlotRead::kPending;
  if (seq > complete) return SlotRead::kOverwritten;
  // Acquire loads, not relaxed loads and a fence: the re-check of `seq` below cannot move
  // before them, and ThreadSanitizer (which rejects standalone fences) understands it.
  constexpr auto r = std::memory_order_acquire;
  event.index = index;
  event.ts_ns = slot.ts_ns.load(r);
  event.pid = slot.pid.load(r);
  event.tid = slot.tid.load(r);
  event.fault = slot.fault.load(r);
  event.call = slot.call.load(r);
  event.fd = slot.fd.load(r);
  event.error = slot.error.load(r);
  event.action = slot.action.load(r);
  event.size = slot.size.load(r);
  event.bytes = slot.bytes.load(r);
  event.delay_ns = slot.delay_ns.load(r);
  event.present = slot.present.load(r);
  event.path = load_text_words(slot.path_words);
  event.process = load_text_words(slot.process_words);
  event.fault_name = load_text_words(slot.fault_words);
  return slot.seq.load(std::memory_order_relaxed) == complete ? SlotRead::kReady
                                                              : SlotRead::kOverwritten;
}

void read_new_events(const ControlBlock& block, EventCursor& cursor, bool final_pass,
                     std::vector<RingEvent>& out, int max_stalls) {
  const std::uint64_t head = block.header.event_head.load(std::memory_order_acquire);
  if (head > cursor.next + kEventSlots) {
    cursor.lost += head - kEventSlots - cursor.next;
    cursor.next = head - kEventSlots;
  }
  while (cursor.next < head) {
    RingEvent event;
    const SlotRead read = read_event(block, cursor.next, event);
    if (read == SlotRead::kPending && !final_pass && ++cursor.stalls <= max_stalls) return;
    if (read == SlotRead::kReady) out.push_back(std::move(event));
    if (read == SlotRead::kOverwritten) ++cursor.lost;
    ++cursor.next;
    cursor.stalls = 0;
  }
}

}  // namespace faultline
