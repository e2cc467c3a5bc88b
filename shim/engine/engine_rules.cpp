// The engine's compiled rules: a private copy of the session's fault slots, built when the
// block's generation moves (or the process identity changed), published with one atomic
// store, and freed once no thread can still be reading it (hazard pointers with an
// asymmetric fence, below). Readers take a copy through RulesRef (engine_internal.h).
#include <errno.h>
#include <linux/membarrier.h>
#include <pthread.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstring>
#include <string>

#include "faultline/seqlock.h"
#include "shim/engine/engine_internal.h"
#include "shim/engine/fault_facts.h"

namespace faultline::shim::engine_detail {
namespace {
constinit Rules g_empty_rules{};
}  // namespace

std::atomic<Rules*> g_rules{&g_empty_rules};
std::atomic_flag g_rebuilding = ATOMIC_FLAG_INIT;
std::atomic<std::uint64_t> g_rules_built{0};
// Set after fork/exec-time identity changes: process selectors must be re-evaluated.
std::atomic<bool> g_identity_changed{false};
ReaderSlot g_readers[kReaderSlots];  // .bss: a page is resident only once a thread claims it
std::atomic<int> g_unslotted_readers{0};
constinit thread_local int t_reader_slot __attribute__((tls_model("initial-exec"))) = 0;

namespace {
// Only a rebuilder (holding g_rebuilding) writes: tag 0 first, the masks, then the tag
// (engine.h, call_named_by_none).
void publish_named_calls(const Rules& rules) {
  // Release stores of the masks, not a fence (as seqlock.h): each keeps the tag 0 before it.
  g_named_calls.tag.store(0, std::memory_order_relaxed);
  g_named_calls.mask[0].store(rules.calls_any[0], std::memory_order_release);
  g_named_calls.mask[1].store(rules.calls_any[1], std::memory_order_release);
  g_named_calls.tag.store(rules.generation + 1, std::memory_order_release);
}
}  // namespace

namespace {

std::uint32_t g_epoch = 0;

std::uint64_t fnv1a(const char* s) {
  std::uint64_t h = 0xcbf29ce484222325ull;
  for (; *s; ++s) h = (h ^ static_cast<unsigned char>(*s)) * 0x100000001b3ull;
  return h;
}

// Corrupt slots found by one rebuild, reported in one line: a block full of garbage costs one
// diagnostic, not 64, and diag() drops the same line from later rebuilds.
struct CorruptSlots {
  std::uint64_t slots = 0;
  std::uint32_t first = 0;
  std::string first_problem;

  void note(std::uint32_t slot, const std::string& problem) {
    if (!slots) {
      first = slot;
      first_problem = problem;
    }
    slots |= 1ull << slot;
  }
  // Never inlined: the inspection's 2.9 KiB copy of the spec stays out of build_rules' frame
  // (a rebuild may run in a signal handler on a small sigaltstack).
  [[gnu::noinline]] void inspect(std::uint32_t slot_index, const FaultSlot& slot) {
    SlotInspection inspected = inspect_fault_slot(slot);
    if (inspected.problem) note(slot_index, *inspected.problem);
  }
  void report(const ControlBlock& block) const {
    if (!slots) return;
    diag(
        "faultline: %d fault slot(s) of session %.63s are corrupt and ignored (slot %u: %s); "
        "`faultline status` lists them",
        __builtin_popcountll(slots), block.header.session, first, first_problem.c_str());
  }
};

// A used slot's spec, read through its seqlock into `words` (kSpecWords, in the rules
// mapping) and copied to `out` (the rule itself): true only for a sound spec.
bool read_sound_spec(const FaultSlot& slot, std::uint64_t* words, FaultSpec& out) {
  if (slot.state.load(std::memory_order_acquire) != kSlotUsed ||
      slot.enabled.load(std::memory_order_relaxed) > 1 ||
      !seqlock_read(slot.spec_seq, slot.spec_words, words, kSpecWords))
    return false;
  std::memcpy(&out, words, sizeof out);
  return !check_fault_spec(out);
}

// Builds a private compiled copy of the session's faults, mmap'd: a copy replaced by a live
// edit is freed once no thread can still be reading it (see "Reclaiming replaced copies").
// `previous` is the copy it replaces (nullptr for the first).
Rules* build_rules(const ControlBlock& block, std::uint64_t generation, const Rules* previous) {
  int used = 0;
  for (const FaultSlot& slot : block.faults)
    if (slot.state.load(std::memory_order_acquire) == kSlotUsed) ++used;
  // After the rules, room to read one spec through its seqlock: a rebuild may run in a signal
  // handler on a small sigaltstack, where two 2.9 KiB copies of a spec on the stack do not fit.
  const std::size_t rules_bytes = sizeof(Rules) + sizeof(Rule) * static_cast<std::size_t>(used);
  std::size_t bytes = rules_bytes + sizeof(FaultSpec);
  void* mem = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (mem == MAP_FAILED) return nullptr;
  auto* rules = static_cast<Rules*>(mem);
  g_rules_built.fetch_add(1, std::memory_order_relaxed);
  auto* spec_words = reinterpret_cast<std::uint64_t*>(static_cast<char*>(mem) + rules_bytes);
  rules->bytes = bytes;
  rules->generation = generation;
  rules->epoch = ++g_epoch;
  int n = 0;
  CorruptSlots corrupt;
  for (std::uint32_t i = 0; i < kMaxFaults; ++i) {
    const FaultSlot& slot = block.faults[i];
    if (n == used || !read_sound_spec(slot, spec_words, rules->rule[n].spec)) {
      // An edit in progress whose writer was preempted past the seqlock's bounded wait (or
      // died): keep the checked rule the previous copy had for this slot, so the fault does
      // not silently drop out. The writer's generation bump brings the new spec at the next
      // rebuild; a dead writer's slot keeps its last spec until another writer repairs it.
      const Rule* kept = n < used && previous && (slot.spec_seq.load(std::memory_order_acquire) & 1)
                             ? rule_for_slot(*previous, static_cast<int>(i))
                             : nullptr;
      if (kept == nullptr) {
        if (slot.state.load(std::memory_order_relaxed) != kSlotFree) {
          // Not sound (or a writer raced the count): the copying inspection, off the common
          // path, says what is wrong. Never trust a slot that fails the compiler's invariants.
          corrupt.inspect(i, slot);
        }
        continue;
      }
      rules->rule[n] = *kept;
    }
    Rule& r = rules->rule[n++];
    r.slot = static_cast<int>(i);
    r.key = fnv1a(r.spec.name);
    r.always = r.spec.probability >= 1.0;
    r.threshold =
        r.always ? ~0ull : static_cast<std::uint64_t>(r.spec.probability * 18446744073709551616.0);
    r.process_ok = process_matches(r.spec);
    r.needs_clock = r.spec.start_after_ns > 0 || r.spec.duration_ns != kForever;
    rules->calls_any[0] |= r.spec.calls_mask[0];
    rules->calls_any[1] |= r.spec.calls_mask[1];
    rules->any_path |= r.spec.path[0] != '\0';
    rules->any_after_bytes |= r.spec.after_bytes != 0;
    // What this copy's events will name the fault (a decision carries only the epoch).
    fault_facts_note(r.slot, rules->epoch, r.spec);
  }
  rules->count = n;
  corrupt.report(block);
  return rules;
}

// ---- Reclaiming replaced copies ----------------------------------------------------------
// Hazard pointers with an asymmetric fence. Every thread that decides owns one ReaderSlot (a
// cache line of its own: the armed path writes only there) and publishes in it the copy it is
// reading, then loads g_rules again to check that copy is still current. The thread that
// rebuilds swaps g_rules, issues membarrier(PRIVATE_EXPEDITED) -- a full fence on every
// running thread of the process, so every reader's published pointer is visible or its
// re-check will see the new copy -- and frees each retired copy no slot names. The reader
// pays two loads, a store and a compare, no fence and no shared write.
//
// A slot is never nested: decide() runs only under an entered Guard, and a signal handler on
// a thread inside decide() finds the Guard taken and passes through. A thread stopped inside
// decide() keeps exactly the copy its slot names. Threads beyond kReaderSlots count
// themselves in g_unslotted_readers (a shared write, but only in programs with > 1024
// deciding threads) and nothing is freed while one of them is inside.
std::atomic<int> g_readers_high{0};  // slots ever claimed: the rebuilder scans [0, high)
pthread_key_t g_reader_key;
std::atomic<int> g_reader_key_state{0};  // 0 not made, 1 making, 2 ready, -1 refused

// 0 not registered (yet, or since fork), 1 ready, -1 refused: copies are then never freed.
int g_membarrier = 0;

// Replaced copies not yet freed. Entries are claimed and cleared by single stores (a fork in
// the middle of a rebuild leaves a copy leaked, never one freed twice). Full, a copy is
// leaked, as before reclamation existed: only when 256 copies are each still being read.
constexpr int kRetiredMax = 256;
std::atomic<Rules*> g_retired[kRetiredMax];  // relaxed: only the rebuilder writes
std::atomic<std::uint64_t> g_rules_freed{0};
std::atomic<std::uint64_t> g_rules_leaked{0};

// Thread exit (pthread key destructor): the slot goes back to the pool.
void release_reader_slot(void* value) {
  const auto index = reinterpret_cast<std::intptr_t>(value) - 1;
  if (index < 0 || index >= kReaderSlots) return;
  g_readers[index].hazard.store(nullptr, std::memory_order_release);
  g_readers[index].owned.store(0, std::memory_order_release);
  if (t_reader_slot == index + 1) t_reader_slot = 0;
}

bool reader_key_ready() {
  int state = g_reader_key_state.load(std::memory_order_acquire);
  if (state == 0 &&
      g_reader_key_state.compare_exchange_strong(state, 1, std::memory_order_acquire)) {
    // Lock-free and allocation-free in glibc; made at the first armed call of the process.
    state = pthread_key_create(&g_reader_key, release_reader_slot) == 0 ? 2 : -1;
    g_reader_key_state.store(state, std::memory_order_release);
  }
  for (int spins = 0; state == 1 && spins < 1000; ++spins) {  // another thread is making it
    sched_yield();
    state = g_reader_key_state.load(std::memory_order_acquire);
  }
  return state == 2;
}

}  // namespace

// Once per thread, at its first armed call.
FL_COLD int claim_reader_slot() {
  for (int i = 0; i < kReaderSlots; ++i) {
    std::uint32_t free_slot = 0;
    if (g_readers[i].owned.load(std::memory_order_relaxed) != 0 ||
        !g_readers[i].owned.compare_exchange_strong(free_slot, 1, std::memory_order_acq_rel))
      continue;
    int high = g_readers_high.load(std::memory_order_relaxed);
    while (high < i + 1 && !g_readers_high.compare_exchange_weak(
                               high, i + 1, std::memory_order_release, std::memory_order_relaxed)) {
    }
    // Without the key (never seen) the slot stays owned after the thread exits.
    // Keys below 32 (the first ones a process makes) are set without allocating.
    if (reader_key_ready())
      pthread_setspecific(g_reader_key, reinterpret_cast<void*>(static_cast<std::intptr_t>(i) + 1));
    t_reader_slot = i + 1;
    return i + 1;
  }
  t_reader_slot = -1;
  return -1;
}

namespace {

void retire(Rules* old) {
  if (old == &g_empty_rules) return;
  for (auto& entry : g_retired) {
    if (!entry.load(std::memory_order_relaxed)) {
      entry.store(old, std::memory_order_relaxed);
      return;
    }
  }
  g_rules_leaked.fetch_add(1, std::memory_order_relaxed);
}

// The rebuilder's fence: true when every reader's published hazard is visible to it.
bool fence_readers() {
  if (FL_ENGINE_TSAN) return true;  // the readers fence themselves (seq_cst)
  if (g_membarrier == 0) {
    g_membarrier =
        syscall(SYS_membarrier, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED, 0, 0) == 0 ? 1 : -1;
    if (g_membarrier < 0)
      diag(
          "faultline: membarrier(2) refused (%s): rule copies replaced by live edits are "
          "kept until exit",
          strerror(errno));
  }
  return g_membarrier > 0 && syscall(SYS_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0, 0) == 0;
}

bool held_by_a_reader(const Rules* rules, int high) {
  for (int i = 0; i < high; ++i)
    if (g_readers[i].hazard.load(std::memory_order_seq_cst) == rules) return true;
  return false;
}

// Frees the retired copies no reader holds. Called by the rebuilder (g_rebuilding held),
// after it swapped g_rules and moved its own hazard to the new copy.
void reclaim_retired() {
  if (!fence_readers()) return;
  if (g_unslotted_readers.load(std::memory_order_seq_cst) > 0) return;
  const int high = g_readers_high.load(std::memory_order_acquire);
  for (auto& entry : g_retired) {
    Rules* rules = entry.load(std::memory_order_relaxed);
    if (!rules || held_by_a_reader(rules, high)) continue;
    const std::size_t bytes = rules->bytes;
    entry.store(nullptr, std::memory_order_relaxed);
    munmap(rules, bytes);
    g_rules_freed.fetch_add(1, std::memory_order_relaxed);
  }

}  // namespace

}  // namespace

// The generation moved: one thread rebuilds, the others keep deciding with the previous copy
// meanwhile. `rules` is the copy the caller's slot protects.
FL_COLD const Rules* rebuild_rules(const ControlBlock& block, const Rules* rules,
                                   ReaderSlot* slot) {
  CancelOff no_cancel;  // shim.h: reading comm and reporting corrupt slots open files
  const std::uint64_t generation = block.header.generation.load(std::memory_order_acquire);
  if (g_rebuilding.test_and_set(std::memory_order_acquire)) return rules;
  // Only a rebuilder stores g_rules or retires, and the next one takes g_rebuilding after
  // this one's stores: the copy current now cannot be freed before the hazard below shows.
  Rules* current = g_rules.load(std::memory_order_relaxed);
  if (current != rules && current->generation == generation &&
      !g_identity_changed.load(std::memory_order_relaxed)) {
    rules = current;  // another thread rebuilt since this one looked
  } else {
    g_identity_changed.store(false, std::memory_order_relaxed);
    if (Rules* fresh = build_rules(block, generation, current)) {
      g_rules.store(fresh, std::memory_order_seq_cst);
      publish_named_calls(*fresh);
      retire(current);  // not `rules`: another rebuild may have replaced that one already
      rules = fresh;
    }
  }
  if (slot) slot->hazard.store(rules, std::memory_order_seq_cst);
  if (rules != current) reclaim_retired();
  g_rebuilding.clear(std::memory_order_release);
  return rules;
}

const Rule* rule_for_slot(const Rules& rules, int slot) {
  for (int i = 0; i < rules.count; ++i)
    if (rules.rule[i].slot == slot) return &rules.rule[i];
  return nullptr;
}

}  // namespace faultline::shim::engine_detail

namespace faultline::shim {

using namespace engine_detail;

constinit NamedCalls g_named_calls{};

bool call_named_by_none_call(std::uint32_t call) noexcept { return call_named_by_none(call); }

void engine_reclaim_retired_rules_unsafe() noexcept {
  if (g_rebuilding.test_and_set(std::memory_order_acquire)) return;
  for (auto& entry : g_retired) {
    Rules* rules = entry.load(std::memory_order_relaxed);
    if (!rules) continue;
    entry.store(nullptr, std::memory_order_relaxed);
    munmap(rules, rules->bytes);
    g_rules_freed.fetch_add(1, std::memory_order_relaxed);
  }
  g_rebuilding.clear(std::memory_order_release);
}

RulesMemory engine_rules_memory() noexcept {
  RulesMemory m;
  m.built = g_rules_built.load(std::memory_order_relaxed);
  m.freed = g_rules_freed.load(std::memory_order_relaxed);
  m.leaked = g_rules_leaked.load(std::memory_order_relaxed);
  for (const auto& entry : g_retired) m.retired += entry.load(std::memory_order_relaxed) != nullptr;
  return m;
}

void engine_after_fork_child() noexcept {
  g_rebuilding.clear();
  // One thread is left: the other threads' slots and counts are void. Registration with
  // membarrier is asked again (cheap, idempotent) rather than trusted across fork.
  for (int i = 0; i < kReaderSlots; ++i) {
    if (i + 1 == t_reader_slot) continue;
    g_readers[i].hazard.store(nullptr, std::memory_order_relaxed);
    g_readers[i].owned.store(0, std::memory_order_relaxed);
  }
  g_unslotted_readers.store(0, std::memory_order_relaxed);
  g_membarrier = 0;
  fault_facts_after_fork();
  engine_reset_process_identity();
}

}  // namespace faultline::shim
