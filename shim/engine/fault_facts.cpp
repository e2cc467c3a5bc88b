// The per-slot history of the facts an event names (see fault_facts.h).
#include "shim/engine/fault_facts.h"

#include <sched.h>

#include <atomic>
#include <cstring>

namespace faultline::shim {
namespace {

constexpr int kEntries = 4;
constexpr std::size_t kNameWords = kNameMax / 8;
static_assert(kNameMax % 8 == 0);

// One entry: word 0 holds `epoch_from` (low 32 bits), log_stack (bit 32) and "used" (bit 33);
// the name follows. An entry holds from its epoch until the slot's next entry.
constexpr std::uint64_t kLogStackBit = 1ull << 32;
constexpr std::uint64_t kUsedBit = 1ull << 33;

struct Entry {
  std::atomic<std::uint64_t> head{0};
  std::atomic<std::uint64_t> name[kNameWords];
};

// One seqlock per slot over all its entries: an event's scan sees one state of the history,
// so it never pairs an evicted entry's neighbour with a newer one.
struct SlotFacts {
  std::atomic<std::uint64_t> seq{0};
  std::atomic<std::uint32_t> newest{0};  // index of the newest entry (valid once one is used)
  Entry entry[kEntries];
};

SlotFacts g_facts[kMaxFaults];

std::uint64_t head_of(std::uint32_t epoch, bool log_stack) {
  return kUsedBit | (log_stack ? kLogStackBit : 0) | epoch;
}

bool same_facts(const Entry& e, const std::uint64_t (&name)[kNameWords], bool log_stack) {
  if ((e.head.load(std::memory_order_relaxed) & kLogStackBit) != (log_stack ? kLogStackBit : 0))
    return false;
  for (std::size_t i = 0; i < kNameWords; ++i)
    if (e.name[i].load(std::memory_order_relaxed) != name[i]) return false;
  return true;
}

}  // namespace

void fault_facts_note(int slot, std::uint32_t epoch, const FaultSpec& spec) noexcept {
  if (slot < 0 || slot >= static_cast<int>(kMaxFaults)) return;
  SlotFacts& f = g_facts[slot];
  std::uint64_t name[kNameWords] = {};
  std::memcpy(name, spec.name, sizeof name);
  reinterpret_cast<char*>(name)[kNameMax - 1] = '\0';
  const std::uint32_t newest = f.newest.load(std::memory_order_relaxed) % kEntries;
  const Entry& last = f.entry[newest];
  if ((last.head.load(std::memory_order_relaxed) & kUsedBit) &&
      same_facts(last, name, spec.log_stack))
    return;  // unchanged since the slot's last entry: that entry still holds
  // The oldest entry is replaced: the entries left are always the newest part of the history.
  const std::uint32_t next =
      (last.head.load(std::memory_order_relaxed) & kUsedBit) ? (newest + 1) % kEntries : newest;
  std::uint64_t s = f.seq.load(std::memory_order_relaxed);
  if (s & 1) ++s;
  // No fence (as seqlock.h, and TSan checks it): the entry's release stores below each keep
  // the odd sequence before them.
  f.seq.store(s + 1, std::memory_order_relaxed);
  Entry& e = f.entry[next];
  e.head.store(head_of(epoch, spec.log_stack), std::memory_order_release);
  for (std::size_t i = 0; i < kNameWords; ++i) e.name[i].store(name[i], std::memory_order_release);
  f.newest.store(next, std::memory_order_release);
  f.seq.store(s + 2, std::memory_order_release);
}

bool fault_facts_read(int slot, std::uint32_t epoch, char (&name)[kNameMax],
                      bool& log_stack) noexcept {
  name[0] = '\0';
  log_stack = false;
  if (slot < 0 || slot >= static_cast<int>(kMaxFaults) || epoch == 0) return false;
  const SlotFacts& f = g_facts[slot];
  constexpr int kMaxAttempts = 10000;
  for (int attempt = 0; attempt < kMaxAttempts; ++attempt) {
    const std::uint64_t before = f.seq.load(std::memory_order_acquire);
    if (before & 1) {
      if (attempt > 100) sched_yield();
      continue;
    }
    // The newest entry at or before `epoch`; none when every entry is newer (evicted).
    int best = -1;
    std::uint64_t best_head = 0;
    for (int i = 0; i < kEntries; ++i) {
      const std::uint64_t head = f.entry[i].head.load(std::memory_order_acquire);
      if (!(head & kUsedBit) || static_cast<std::uint32_t>(head) > epoch) continue;
      if (best < 0 || static_cast<std::uint32_t>(head) > static_cast<std::uint32_t>(best_head)) {
        best = i;
        best_head = head;
      }
    }
    // Straight into the caller's buffer (a scratch buffer, not the stack): a torn copy is
    // simply overwritten by the next attempt.
    if (best >= 0)
      for (std::size_t i = 0; i < kNameWords; ++i) {
        const std::uint64_t word = f.entry[best].name[i].load(std::memory_order_acquire);
        std::memcpy(name + 8 * i, &word, 8);
      }
    if (f.seq.load(std::memory_order_relaxed) != before) continue;
    if (best < 0) {
      name[0] = '\0';
      return false;
    }
    name[kNameMax - 1] = '\0';
    log_stack = (best_head & kLogStackBit) != 0;
    return true;
  }
  return false;
}

void fault_facts_after_fork() noexcept {
  for (SlotFacts& f : g_facts) {
    const std::uint64_t s = f.seq.load(std::memory_order_relaxed);
    if (s & 1) f.seq.store(s + 1, std::memory_order_relaxed);
  }
}

}  // namespace faultline::shim
