// What an injecting decision does beyond choosing it: the quota's shared counter, the delay
// (held through shim_wait and re-checked against live edits), corrupt and short, and the
// crash (with a power cut's kill of the whole session). The wrappers reach these through
// the appliers (apply.h, io.h).
#include <pthread.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>

#include "shim/engine/engine_internal.h"
#include "shim/engine/wait.h"

namespace faultline::shim {

using namespace engine_detail;

bool quota_claim(const Decision& d) noexcept {
  ControlBlock* block = g_block.load(std::memory_order_acquire);
  if (!block || d.fault < 0) return false;
  return claim_injection(*block, block->faults[d.fault], d.times);
}

std::uint64_t quota_reserve(const Decision& d, std::uint64_t want) noexcept {
  ControlBlock* block = g_block.load(std::memory_order_acquire);
  if (!block || d.fault < 0) return want;
  auto& used = block->faults[d.fault].quota_used;
  // Never add more than quota + 1 to the shared counter: a copy_file_range of SSIZE_MAX from
  // two threads would wrap it. A request past the quota is shortened at the boundary anyway,
  // so the answer (< want) is the same.
  const std::uint64_t cap = d.quota_bytes < UINT64_MAX / 4 ? d.quota_bytes + 1 : UINT64_MAX / 4;
  const std::uint64_t take = want < cap ? want : cap;
  std::uint64_t before = used.fetch_add(take, std::memory_order_relaxed);
  if (before >= d.quota_bytes) {
    used.fetch_sub(take, std::memory_order_relaxed);
    return 0;
  }
  std::uint64_t room = d.quota_bytes - before;
  if (take > room) {
    used.fetch_sub(take - room, std::memory_order_relaxed);
    return room;
  }
  return take;
}

void quota_release(const Decision& d, std::uint64_t unused) noexcept {
  ControlBlock* block = g_block.load(std::memory_order_acquire);
  if (!block || d.fault < 0 || unused == 0) return;
  block->faults[d.fault].quota_used.fetch_sub(unused, std::memory_order_relaxed);
}

namespace {

// A delay in progress, as delay_holds() re-checks it between slices.
struct DelayHold {
  const CallArgs* args;
  int slot;
  std::uint64_t key;         // the fault in the slot when the delay began
  std::uint64_t generation;  // the rules it was last checked against
  std::int64_t start_ns;
  std::int64_t jitter_ns;  // the drawn delay minus the fault's: kept across an edit
};

// Does the fault still hold the delayed call? Cheap between edits (flags, the TTL, enabled,
// the window); after a live edit (a new generation) the selectors are matched again and the
// delay is shortened if the edit made it shorter than it was. A budget spent elsewhere does
// not end it: this delay was counted within the budget.
bool delay_holds(void* ctx, std::int64_t& deadline_ns) {
  auto& hold = *static_cast<DelayHold*>(ctx);
  CancelOff no_cancel;
  ControlBlock* block = g_block.load(std::memory_order_acquire);
  if (!block || session_expired(*block) ||
      (block->header.flags.load(std::memory_order_acquire) & (kFlagPanicked | kFlagTtlExpired)))
    return false;
  FaultSlot& slot = block->faults[hold.slot];
  if (slot.enabled.load(std::memory_order_relaxed) != 1) return false;
  const RulesRef ref(*block);
  const Rules* rules = ref.get();
  const Rule* r = rule_for_slot(*rules, hold.slot);
  if (!r || r->key != hold.key) return false;  // removed, or the slot holds another fault now
  if (r->needs_clock && !in_window(*r, slot)) return false;
  if (rules->generation != hold.generation) {
    hold.generation = rules->generation;
    if (!rule_selects(*r, *rules, *hold.args)) return false;
    // jitter_ns carries what the wait adds to the fault's own delay (jitter, p99, a file's
    // bandwidth time): an edit changes the delay, not that.
    const std::int64_t now_ns = std::max<std::int64_t>(
        0, ((r->spec.actions & kActDelay) ? r->spec.delay_ns : 0) + hold.jitter_ns);
    deadline_ns = std::min(deadline_ns, hold.start_ns + now_ns);
  }
  return true;
}

}  // namespace

bool fault_latency_holds(const Guard& guard, int slot_index, const CallArgs& args,
                         std::uint64_t& key, std::uint64_t& generation, HoldSpecNow& now) noexcept {
  (void)guard;
  CancelOff no_cancel;
  ControlBlock* block = nullptr;
  FaultSlot* const live = live_fault_slot(slot_index, block);
  if (!live) return false;
  FaultSlot& slot = *live;
  const RulesRef ref(*block);
  const Rules* rules = ref.get();
  const Rule* r = rule_for_slot(*rules, slot_index);
  if (!r || (key != 0 && r->key != key)) return false;  // removed, or another fault there now
  const std::uint32_t actions = r->spec.actions;
  if (!(actions & (kActLatency | kActLoss | kActBandwidth))) return false;  // edited away
  if (r->needs_clock && !in_window(*r, slot)) return false;
  if (key == 0 || rules->generation != generation) {
    if (!rule_selects(*r, *rules, args)) return false;
    key = r->key;
    generation = rules->generation;
  }
  now.latency_ns = (actions & kActLatency) ? r->spec.latency_ns : 0;
  now.loss = (actions & kActLoss) ? r->spec.loss : 0.0;
  now.bandwidth_bps = (actions & kActBandwidth) ? r->spec.bandwidth_bps : 0;
  return true;
}

bool apply_delay(const Guard& guard, Decision& d, const CallArgs& args) {
  // Every injected call of a cancellation point is one, delayed or not: the real call would
  // have acted on a pending cancel at its entry, and an injected failure never reaches it.
  if (call_is_cancellation_point(args.call)) pthread_testcancel();
  if (d.delay_ns <= 0 || d.fault < 0 || d.fault >= static_cast<int>(kMaxFaults)) return true;
  DelayHold hold{&args, d.fault, 0, 0, monotonic_ns(), 0};
  if (ControlBlock* block = g_block.load(std::memory_order_acquire)) {
    const RulesRef ref(*block);
    const Rules* rules = ref.get();
    if (const Rule* r = rule_for_slot(*rules, d.fault)) {
      hold.key = r->key;
      hold.generation = rules->generation;
      hold.jitter_ns = d.delay_ns - ((r->spec.actions & kActDelay) ? r->spec.delay_ns : 0);
    }
  }
  if (shim_wait(guard, args.call, hold.start_ns + d.delay_ns, OnSignal::kRestart, delay_holds,
                &hold) != WaitEnd::kLifted)
    return true;
  d.action = 0;  // what was held was a delay; nothing else of the lifted fault applies
  return false;
}

// Bounded by the data, whatever `corrupt` says: flipping more bits than the data has is
// pointless (4294967295 flips of a 6-byte write cost 16 s of CPU). At least every bit: all
// inverted. More than half: all inverted, then the complement drawn back. So at most 4 draws
// per byte.
void corrupt_buffer(const Decision& d, void* buf, std::size_t len) noexcept {
  if (len == 0 || d.corrupt_bits == 0) return;
  auto* bytes = static_cast<unsigned char*>(buf);
  const std::uint64_t bits =
      len > UINT64_MAX / 8 ? UINT64_MAX : static_cast<std::uint64_t>(len) * 8;
  std::uint64_t draws = d.corrupt_bits;
  if (draws >= bits / 2) {
    for (std::size_t i = 0; i < len; ++i) bytes[i] = static_cast<unsigned char>(~bytes[i]);
    if (draws >= bits) return;
    draws = bits - draws;
  }
  std::uint64_t state = d.draw;
  for (std::uint64_t i = 0; i < draws; ++i) {
    state = splitmix64(state);
    std::uint64_t bit = state % bits;
    bytes[bit / 8] ^= static_cast<unsigned char>(1u << (bit % 8));
  }
}

// count * percent / 100 without the product: cp's copy_file_range count of SSIZE_MAX times 50
// wraps a 64-bit product (the event said 2%).
std::uint64_t short_length(const Decision& d, std::uint64_t count) noexcept {
  if (count <= 1) return count;
  std::uint64_t allowed = d.short_bytes;
  if (d.short_percent) {
    const std::uint64_t pct = d.short_percent < 100 ? d.short_percent : 100;
    allowed = count / 100 * pct + count % 100 * pct / 100;
  }
  if (allowed < 1) allowed = 1;
  return allowed < count ? allowed : count;
}

// launcher, or `faultline powercut`) knows a cut, not a crash, ended the session. Members in
// another pid namespace are left to the launcher: their pids mean nothing here.
static void kill_session_members() noexcept {
  ControlBlock* block = g_block.load(std::memory_order_acquire);
  if (!block) return;
  ControlHeader& h = block->header;
  std::int64_t none = 0;
  h.cut_real_ns.compare_exchange_strong(none, realtime_ns(), std::memory_order_relaxed);
  h.flags.fetch_or(kFlagPowercut, std::memory_order_seq_cst);
  struct stat ns_st;
  const std::uint64_t own_ns =
      stat("/proc/self/ns/pid", &ns_st) == 0 ? static_cast<std::uint64_t>(ns_st.st_ino) : 0;
  const pid_t self = getpid();
  const pid_t owner = h.cut_owner_pid.load(std::memory_order_relaxed);
  for (std::uint32_t i = 0; i < kMaxPids; ++i) {
    const pid_t pid = h.pids[i].load(std::memory_order_relaxed);
    if (pid <= 0 || pid == self || pid == owner) continue;
    const std::uint64_t ns = block->members[i].pid_ns.load(std::memory_order_relaxed);
    if (ns != 0 && own_ns != 0 && ns != own_ns) continue;
    kill(pid, SIGKILL);
  }
}

[[noreturn]] void crash_now(const Decision& d) noexcept {
  if (d.powercut) kill_session_members();
  int sig = d.crash_signal ? d.crash_signal : SIGKILL;
  raise(sig);
  // The program caught or ignored the signal: a real crash at this point would still end it.
  signal(sig, SIG_DFL);
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, sig);
  sigprocmask(SIG_UNBLOCK, &set, nullptr);
  raise(sig);
  kill(getpid(), SIGKILL);
  _exit(128 + sig);
}

}  // namespace faultline::shim
