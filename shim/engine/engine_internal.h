// The engine's parts, as its files share them (engine.h is the engine's face to the
// wrappers; this header is for shim/engine*.cpp only): the compiled rules and the hazard
// pointers that keep a copy alive while a thread reads it (engine_rules.cpp), the process
// identity the `process` selector matches (engine_identity.cpp), the selectors and triggers
// that decide (engine.cpp), and what an injecting decision does (engine_actions.cpp). The
// armed path's pieces are inline here or live beside decide() in engine.cpp, so splitting the
// files costs decide() no call; globals are declared hidden, so they are reached PC-relative,
// as they were when static.
#pragma once

#include <atomic>
#include <cstdint>

#include "session/session.h"
#include "shim/engine/engine.h"

// TSan cannot see the ordering membarrier(2) gives: under it the readers fence themselves.
#if defined(__SANITIZE_THREAD__)
#define FL_ENGINE_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define FL_ENGINE_TSAN 1
#endif
#endif
#ifndef FL_ENGINE_TSAN
#define FL_ENGINE_TSAN 0
#endif

// Hidden even where only declared (-fvisibility=hidden covers definitions alone): the globals
// below are then reached PC-relative, not through the GOT, on the armed path.
#pragma GCC visibility push(hidden)
namespace faultline::shim::engine_detail {

struct Rule {
  int slot;
  std::uint64_t key;  // hash of the fault name: the stream id in mix()
  std::uint64_t threshold;
  bool always;      // probability 1
  bool process_ok;  // process selector result for this process (true if none)
  bool needs_clock;
  FaultSpec spec;
};

struct Rules {
  std::size_t bytes;  // of this mapping
  std::uint64_t generation;
  std::uint32_t epoch;  // process-local rebuild counter, tags the fd table's match bits
  int count;
  std::uint64_t calls_any[2];
  bool any_path;
  bool any_after_bytes;  // some rule has `after_bytes`: calls may need their bytes counted
  Rule rule[1];          // `count` entries (allocated to size)
};

// The current copy (an all-zero one before the first build), the rebuilder's flag, and
// process identity changes that make `process` selectors stale (engine_rules.cpp).
extern std::atomic<Rules*> g_rules;
extern std::atomic_flag g_rebuilding;
extern std::atomic<std::uint64_t> g_rules_built;
extern std::atomic<bool> g_identity_changed;

inline std::uint64_t splitmix64(std::uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

inline std::uint64_t mix(std::uint64_t seed, std::uint64_t key, std::uint64_t n) {
  return splitmix64(seed ^ splitmix64(key ^ splitmix64(n)));
}

// The `process` selector for this process (engine_identity.cpp).
bool process_matches(const FaultSpec& spec);

// engine.cpp: the triggers' clock and budget, and one rule's selectors for one call (the
// waits re-check a held call with it).
bool session_expired(ControlBlock& block);
bool in_window(const Rule& r, const FaultSlot& slot);
bool claim_injection(ControlBlock& block, FaultSlot& slot, std::uint64_t times);
bool rule_selects(const Rule& r, const Rules& rules, const CallArgs& args);
// The slot of fault `slot_index` (and its block, in `block`) while the fault may still act on
// a call already taken: a valid index, a session neither panicked, past its TTL nor over its
// budget, and the slot enabled; nullptr otherwise. The common first half of the re-checks of
// a held call (fault_still_applies, fault_latency_holds); the rule is the caller's to match.
FaultSlot* live_fault_slot(int slot_index, ControlBlock*& block);

// The rule of fault slot `slot` in a copy, or nullptr.
const Rule* rule_for_slot(const Rules& rules, int slot);

// ---- Readers of a copy (engine_rules.cpp explains the scheme) ---------------------------
constexpr int kReaderSlots = 1024;
struct alignas(64) ReaderSlot {
  std::atomic<const Rules*> hazard{nullptr};
  std::atomic<std::uint32_t> owned{0};
};
extern ReaderSlot g_readers[kReaderSlots];
extern std::atomic<int> g_unslotted_readers;
// index + 1 of this thread's slot; 0: none claimed yet; -1: none available (counts instead)
extern constinit thread_local int t_reader_slot __attribute__((tls_model("initial-exec")));
int claim_reader_slot();
const Rules* rebuild_rules(const ControlBlock& block, const Rules* rules, ReaderSlot* slot);

// The rules of the session as of now, for one reader whose slot protects `rules`.
[[gnu::always_inline]] inline const Rules* up_to_date(const ControlBlock& block, const Rules* rules,
                                                      ReaderSlot* slot) {
  if (FL_LIKELY(rules->generation == block.header.generation.load(std::memory_order_acquire) &&
                !g_identity_changed.load(std::memory_order_relaxed)))
    return rules;
  return rebuild_rules(block, rules, slot);
}

// Publishes the current copy in the reader's slot and checks it is still current: the loop
// turns again only when a rebuild swapped g_rules in between.
[[gnu::always_inline]] inline const Rules* protect(ReaderSlot& slot) {
  const Rules* rules = g_rules.load(std::memory_order_acquire);
  for (;;) {
#if FL_ENGINE_TSAN
    slot.hazard.store(rules, std::memory_order_seq_cst);
    const Rules* again = g_rules.load(std::memory_order_seq_cst);
#else
    // Ordered against the re-check by the rebuilder's membarrier, not by a fence here.
    slot.hazard.store(rules, std::memory_order_relaxed);
    std::atomic_signal_fence(std::memory_order_seq_cst);
    const Rules* again = g_rules.load(std::memory_order_acquire);
#endif
    if (FL_LIKELY(again == rules)) return rules;
    rules = again;
  }
}

// One reader's hold on the current rules, from construction to destruction.
class RulesRef {
 public:
  [[gnu::always_inline]] explicit RulesRef(const ControlBlock& block) noexcept {
    const int index = t_reader_slot;
    if (FL_LIKELY(index > 0)) {
      slot_ = &g_readers[index - 1];
      rules_ = up_to_date(block, protect(*slot_), slot_);
    } else {
      enter_slow(block);
    }
  }
  [[gnu::always_inline]] ~RulesRef() {
    if (FL_LIKELY(slot_ != nullptr))
      slot_->hazard.store(nullptr, std::memory_order_release);
    else
      g_unslotted_readers.fetch_sub(1, std::memory_order_release);
  }
  RulesRef(const RulesRef&) = delete;
  RulesRef& operator=(const RulesRef&) = delete;
  const Rules* get() const noexcept { return rules_; }

 private:
  // The thread's first armed call (claims a slot), or a thread without one.
  FL_COLD void enter_slow(const ControlBlock& block) noexcept {
    const int index = t_reader_slot == 0 ? claim_reader_slot() : -1;
    if (index > 0) {
      slot_ = &g_readers[index - 1];
      rules_ = up_to_date(block, protect(*slot_), slot_);
      return;
    }
    g_unslotted_readers.fetch_add(1, std::memory_order_seq_cst);
    rules_ = up_to_date(block, g_rules.load(std::memory_order_seq_cst), nullptr);
  }

  ReaderSlot* slot_ = nullptr;
  const Rules* rules_;
};

}  // namespace faultline::shim::engine_detail
#pragma GCC visibility pop
