// The decision engine (see engine.h).
//
// Determinism: whether the n-th matching call of a fault is injected is a pure function of
// (seed, fault name, n): mix(seed, key, n) < p. n comes from the fault's shared `matched`
// counter, so a single-threaded program is injected identically on every run with the same
// seed, and a multi-threaded one gets the same set of injected indices.
#include "engine.h"

#include <errno.h>
#include <linux/membarrier.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <climits>
#include <cstdio>
#include <cstring>
#include <limits>
#include <new>

#include "draw.h"
#include "faultline/glob.h"
#include "faultline/seqlock.h"
#include "fd_count.h"
#include "fd_table.h"
#include "net_select.h"
#include "safe_copy.h"
#include "scratch.h"
#include "session.h"
#include "site.h"
#include "sock_bytes.h"
#include "sock_table.h"
#include "stack.h"
#include "text_buf.h"
#include "wait.h"

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

namespace faultline::shim {
namespace {

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

constinit Rules g_empty_rules{};
std::atomic<Rules*> g_rules{&g_empty_rules};
std::atomic_flag g_rebuilding = ATOMIC_FLAG_INIT;
std::atomic<std::uint64_t> g_rules_built{0};
// Set after fork/exec-time identity changes: process selectors must be re-evaluated.
std::atomic<bool> g_identity_changed{false};
std::uint32_t g_epoch = 0;

// Process identity, for the `process` selector and event lines; re-read after fork and exec,
// and when the program renames itself (identity.cpp). comm is kept as atomic words: a rename
// on one thread races event lines on others, and a torn name is better than a data race.
// The executable's name changes only with exec, so g_exe is written before threads exist.
std::atomic<std::uint64_t> g_comm_words[2];
constinit thread_local char t_comm[17] __attribute__((tls_model("initial-exec"))) = {};
char g_exe[256];

void load_comm(char (&out)[17]) {
  for (int i = 0; i < 2; ++i) {
    const std::uint64_t w = g_comm_words[i].load(std::memory_order_relaxed);
    std::memcpy(out + 8 * i, &w, 8);
  }
  out[16] = '\0';
}

// false when unchanged.
bool store_comm(const char* name) {
  char buf[16] = {};
  std::memcpy(buf, name, std::min<std::size_t>(std::strlen(name), 15));
  bool changed = false;
  for (int i = 0; i < 2; ++i) {
    std::uint64_t w;
    std::memcpy(&w, buf + 8 * i, 8);
    changed |= g_comm_words[i].exchange(w, std::memory_order_relaxed) != w;
  }
  return changed;
}

// The process's comm (its main thread's name), from any thread: /proc/self/comm, or the
// calling thread's own name where /proc is not mounted (at start and after fork, the calling
// thread is the main one).
void read_comm(char (&out)[17]) {
  CancelOff no_cancel;  // shim.h: open, read and close are cancellation points
  out[0] = '\0';
  const int fd = FL_REAL(open)("/proc/self/comm", O_RDONLY | O_CLOEXEC);
  if (fd >= 0) {
    const ssize_t n = FL_REAL(read)(fd, out, 16);
    FL_REAL(close)(fd);
    if (n > 0) {
      out[n] = '\0';
      if (out[n - 1] == '\n') out[n - 1] = '\0';
      return;
    }
  }
  prctl(PR_GET_NAME, out, 0, 0, 0);
  out[16] = '\0';
}

std::uint64_t splitmix64(std::uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

std::uint64_t mix(std::uint64_t seed, std::uint64_t key, std::uint64_t n) {
  return splitmix64(seed ^ splitmix64(key ^ splitmix64(n)));
}

std::uint64_t fnv1a(const char* s) {
  std::uint64_t h = 0xcbf29ce484222325ull;
  for (; *s; ++s) h = (h ^ static_cast<unsigned char>(*s)) * 0x100000001b3ull;
  return h;
}

bool process_matches(const FaultSpec& spec) {
  if (!spec.process[0]) return true;
  char comm[17];
  load_comm(comm);
  return glob_list_hits(spec.process, sizeof spec.process,
                        [&comm](const char* glob) {
                          return glob_match(glob, comm) || glob_match(glob, g_exe);
                        })
      .matches();
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

const Rule* rule_for_slot(const Rules& rules, int slot);

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
constexpr int kReaderSlots = 1024;
struct alignas(64) ReaderSlot {
  std::atomic<const Rules*> hazard{nullptr};
  std::atomic<std::uint32_t> owned{0};
};
ReaderSlot g_readers[kReaderSlots];  // .bss: a page is resident only once a thread claims it
std::atomic<int> g_readers_high{0};  // slots ever claimed: the rebuilder scans [0, high)
std::atomic<int> g_unslotted_readers{0};
// index + 1 of this thread's slot; 0: none claimed yet; -1: none available (counts instead)
constinit thread_local int t_reader_slot __attribute__((tls_model("initial-exec"))) = 0;
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
}

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
      retire(current);  // not `rules`: another rebuild may have replaced that one already
      rules = fresh;
    }
  }
  if (slot) slot->hazard.store(rules, std::memory_order_seq_cst);
  if (rules != current) reclaim_retired();
  g_rebuilding.clear(std::memory_order_release);
  return rules;
}

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

std::uint64_t path_match_bits(const char* path, void* ctx) {
  const auto* rules = static_cast<const Rules*>(ctx);
  std::uint64_t bits = 0;
  for (int i = 0; i < rules->count; ++i) {
    const Rule& r = rules->rule[i];
    if (r.spec.path[0] && glob_list_match(r.spec.path, sizeof r.spec.path, path))
      bits |= 1ull << r.slot;
  }
  return bits;
}

// The fault slots whose stack list one frame hits, positively or through a '!' entry (the
// stack cache keeps the answer per frame address and rules epoch). A list of '!' entries alone
// counts every frame as a positive hit: such a stack matches unless a frame is excluded.
FrameBits stack_frame_bits(const FrameInfo& frame, const void* ctx) {
  const auto* rules = static_cast<const Rules*>(ctx);
  FrameBits bits;
  for (int i = 0; i < rules->count; ++i) {
    const Rule& r = rules->rule[i];
    if (!r.spec.stack[0]) continue;
    const GlobListHits hits =
        glob_list_hits(r.spec.stack, sizeof r.spec.stack,
                       [&frame](const char* glob) { return frame_matches(glob, frame); });
    if (hits.negative_hit)
      bits.negative |= 1ull << r.slot;
    else if (hits.positive_hit || !hits.positives)
      bits.positive |= 1ull << r.slot;
  }
  return bits;
}

// The absolute form of a path argument (open's, or either of an @fs call's), so globs like
// "*/a.log" match a file the program opened as "a.log"; a relative path resolves against its
// dirfd (AT_FDCWD: the working directory). Not normalised ("..", symlinks): that is the path it
// asked for. `out` is kPathBytes from a scratch buffer (never the caller's stack); the
// directory is read into it first, so no second buffer is needed.
constexpr std::size_t kPathBytes = 4096;
static_assert(2 * kPathBytes <= Scratch::kBytes);
bool absolute_path(const char* path, int dirfd, char* out) {
  if (!path) return false;
  std::size_t len = 0;
  if (path[0] != '/') {
    if (dirfd == AT_FDCWD) {
      if (!getcwd(out, kPathBytes)) return false;
    } else if (fd_path(dirfd, out, kPathBytes) < 0) {
      return false;
    }
    len = std::strlen(out);
    if (len + 1 >= kPathBytes) return false;
    out[len++] = '/';
  }
  TextBuf text(out + len, kPathBytes - len);
  text.put(path);
  return !text.truncated();
}

bool is_fd_data_call(std::uint32_t call) {
  Family f = call_family(call);
  return f == kFamWrite || f == kFamRead;
}

bool thread_matches(const FaultSpec& spec) {
  char name[17] = {};
  prctl(PR_GET_NAME, name, 0, 0, 0);
  return glob_list_match(spec.thread, sizeof spec.thread, name);
}

// Time sums saturate: the compiler refuses durations past 100 years, but a sum must not wrap
// even for a block written by something else (a start_after near 2^63 would wrap negative and
// open the window at once instead of never).
std::int64_t add_saturating(std::int64_t a, std::int64_t b) {
  std::int64_t sum;
  if (!__builtin_add_overflow(a, b, &sum)) return sum;
  return b > 0 ? std::numeric_limits<std::int64_t>::max()
               : std::numeric_limits<std::int64_t>::min();
}

bool in_window(const Rule& r, const FaultSlot& slot) {
  std::int64_t now = monotonic_ns();
  std::int64_t open =
      add_saturating(slot.enabled_since_ns.load(std::memory_order_relaxed), r.spec.start_after_ns);
  if (now < open) return false;
  return r.spec.duration_ns == kForever || now < add_saturating(open, r.spec.duration_ns);
}

void disarm(ControlBlock& block, std::uint32_t flag) {
  block.header.flags.fetch_or(flag, std::memory_order_relaxed);
  block.header.armed_mask.store(0, std::memory_order_release);
}

bool session_expired(ControlBlock& block) {
  std::int64_t ttl = block.header.ttl_ns.load(std::memory_order_relaxed);
  if (ttl == kForever) return false;
  if (monotonic_ns() <
      add_saturating(block.header.start_mono_ns.load(std::memory_order_relaxed), ttl))
    return false;
  disarm(block, kFlagTtlExpired);
  return true;
}

// times and the session budget: claims one injection, or says the fault is spent.
bool claim_injection(ControlBlock& block, FaultSlot& slot, std::uint64_t times) {
  std::uint64_t done = slot.injected.load(std::memory_order_relaxed);
  do {
    if (done >= times) return false;
  } while (!slot.injected.compare_exchange_weak(done, done + 1, std::memory_order_relaxed));
  std::uint64_t budget = block.header.max_faults_total.load(std::memory_order_relaxed);
  std::uint64_t total = block.header.injected_total.fetch_add(1, std::memory_order_relaxed);
  if (budget != kUnlimited && total >= budget) {
    slot.injected.fetch_sub(1, std::memory_order_relaxed);
    block.header.injected_total.fetch_sub(1, std::memory_order_relaxed);
    disarm(block, kFlagBudgetSpent);
    return false;
  }
  std::int64_t now = realtime_ns();
  std::int64_t zero = 0;
  slot.first_injection_ns.compare_exchange_strong(zero, now, std::memory_order_relaxed);
  slot.last_injection_ns.store(now, std::memory_order_relaxed);
  if (MemberStats* me = member_stats(block)) {
    me->injected.fetch_add(1, std::memory_order_relaxed);
    me->last_injection_ns.store(now, std::memory_order_relaxed);
  }
  return true;
}

// The delay or latency of one injection: the fault's value, spread uniformly by `jitter` or
// drawn log-normal for `p99`.
std::int64_t varied_ns(const FaultSpec& spec, std::uint64_t draw) {
  const std::int64_t base = spec.actions & kActLatency ? spec.latency_ns : spec.delay_ns;
  if (spec.p99_ns > 0) return lognormal_ns(base, spec.p99_ns, splitmix64(draw ^ 0x70393939ull));
  if (spec.jitter_ns <= 0) return base;
  std::uint64_t span = 2 * static_cast<std::uint64_t>(spec.jitter_ns) + 1;
  std::int64_t ns =
      add_saturating(base, static_cast<std::int64_t>(splitmix64(draw) % span) - spec.jitter_ns);
  return ns < 0 ? 0 : ns;
}

// Fills the caller's Decision in place: returning one by value to `out = ...` would put a
// ~120-byte temporary in decide()'s frame per call site (the stack budget: reliability.md).
void make_decision(Decision& d, const Rule& r, std::uint64_t n, std::uint64_t seed) {
  d = Decision{};
  d.inject = true;
  d.fault = r.slot;
  d.index = n;
  d.action = r.spec.actions & ~std::uint32_t{kActDelay};
  d.error = r.spec.error;
  d.draw = mix(seed, r.key ^ 0x5bd1e995ull, n);
  // jitter or p99 varies the latency when the fault has one, else the delay (the compiler
  // refuses a fault with both and a variation).
  if (r.spec.actions & (kActDelay | kActLatency))
    (r.spec.actions & kActLatency ? d.latency_ns : d.delay_ns) = varied_ns(r.spec, d.draw);
  d.corrupt_bits = r.spec.corrupt_bits;
  d.crash_signal = r.spec.crash_signal;
  d.crash_when = r.spec.crash_when;
  if (r.spec.actions & kActPowercut) {
    // Every wrapper already knows how to crash before or after its call: a power cut is that
    // crash, with the whole session going down with it (crash_now).
    d.action = kActCrash;
    d.crash_signal = SIGKILL;
    d.powercut = true;
  }
  d.quota_bytes = r.spec.quota_bytes;
  d.short_bytes = r.spec.short_bytes;
  d.short_percent = r.spec.short_percent;
  d.times = r.spec.times;
  d.dns_error = r.spec.dns_error;
  d.timeout_ns = r.spec.timeout_ns;
  d.bandwidth_bps = r.spec.bandwidth_bps;
  d.loss = r.spec.loss;
}

}  // namespace

namespace {

// What the selectors of one call need, computed lazily and at most once per call however
// many rules ask for it.
bool site_size_ready(const CallSite& site);

// The calls whose path argument is the program's pointer (a NULL one is the kernel's EFAULT):
// @open's path calls, and every @fs call but those on an fd.
bool takes_path(std::uint32_t call) {
  if (call_family(call) == kFamFs)
    return call != kCall_ftruncate && call != kCall_ftruncate64 && call != kCall_fallocate &&
           call != kCall_fallocate64 && call != kCall_posix_fallocate &&
           call != kCall_posix_fallocate64 && call != kCall_close;
  return call == kCall_open || call == kCall_open64 || call == kCall_openat ||
         call == kCall_openat64 || call == kCall_creat || call == kCall___open_2 ||
         call == kCall___open64_2;
}

// The @fs calls that name two paths (CallSite::path2; symlink's second is its target string).
bool takes_path2(std::uint32_t call) {
  return call == kCall_rename || call == kCall_renameat || call == kCall_renameat2 ||
         call == kCall_link || call == kCall_linkat || call == kCall_symlink ||
         call == kCall_symlinkat;
}

struct SelectorContext {
  SelectorContext(const CallSite& s, const Rules& r) : site(s), rules(r) {}
  const CallSite& site;
  const Rules& rules;
  FdInfo fd_info;
  bool fd_known = false;
  // The absolute path argument, the socket address `addr` matches and explore's frames, each
  // computed once per call, live in a scratch buffer claimed only when a rule needs one: on
  // the stack they would cost 8.5 KiB, where a signal handler's sigaltstack may have 8 in all.
  Scratch scratch;
  NetSiteAddr* net_ = nullptr;
  SiteFrames* frames_ = nullptr;
  static constexpr std::size_t kNetOffset = 2 * kPathBytes;
  static constexpr std::size_t kFramesOffset = kNetOffset + 256;

  // nullptr only when no memory at all could be had: the selector then does not match.
  NetSiteAddr* net() {
    if (!net_)
      if (char* mem = scratch.get()) net_ = new (mem + kNetOffset) NetSiteAddr;
    return net_;
  }
  SiteFrames* site_frames() {
    if (!frames_)
      if (char* mem = scratch.get()) frames_ = new (mem + kFramesOffset) SiteFrames;
    return frames_;
  }
  int open_path_state = 0;    // 0 not computed, 1 ok, -1 unavailable
  int second_path_state = 0;  // the same for CallSite::path2

  const FdInfo& fd() {
    if (!fd_known) {
      fd_info = fd_lookup(site.fd, rules.epoch, path_match_bits, const_cast<Rules*>(&rules));
      fd_known = true;
    }
    return fd_info;
  }
  // Before acting on facts about the fd that came from the table: is the fd still the open
  // file they were learned from? A raw syscall (close, openat, dup3) or a libc-internal one
  // may have made the number another file without passing any wrapper. One statx, only on
  // the way to an injection (the rare path), at most once per call. False when it changed:
  // the entry has been learned afresh and the caller must decide the call again.
  bool fd_facts_stale() {
    if (!fd_known || !fd_info.cached || fd_checked) return false;
    fd_checked = true;
    if (fd_identity(site.fd) == fd_info.identity) return false;
    fd_info = fd_relearn(site.fd, rules.epoch, path_match_bits, const_cast<Rules*>(&rules));
    return true;
  }
  bool fd_checked = false;
  // The absolute path argument, at the start of the scratch buffer.
  const char* path_argument() {
    if (open_path_state == 0 && !site_size_ready(site)) open_path_state = -1;
    if (open_path_state == 0) {
      char* mem = scratch.get();
      open_path_state = mem && absolute_path(site.path, site.dirfd, mem) ? 1 : -1;
    }
    return open_path_state > 0 ? scratch.get() : nullptr;
  }
  // The second path of an @fs call (rename's new path), absolute, in the next kPathBytes;
  // nullptr for a call with one path.
  const char* second_path_argument() {
    if (second_path_state == 0 && (!takes_path2(site.call) || !site_size_ready(site)))
      second_path_state = -1;
    if (second_path_state == 0) {
      char* mem = scratch.get();
      second_path_state = mem && absolute_path(site.path2(), site.fd2, mem + kPathBytes) ? 1 : -1;
    }
    return second_path_state > 0 ? scratch.get() + kPathBytes : nullptr;
  }
  // One unwind per call, whichever rules ask; the frames' bits are cached per rules epoch.
  std::uint64_t stack_bits = 0;
  bool stack_known = false;
  std::uint64_t stack() {
    if (!stack_known) {
      stack_bits = stack_match_bits(rules.epoch, stack_frame_bits, &rules);
      stack_known = true;
    }
    return stack_bits;
  }
};
static_assert(sizeof(NetSiteAddr) <= 256 &&
              SelectorContext::kFramesOffset + sizeof(SiteFrames) <= Scratch::kBytes);

// The call's arguments that live in caller memory, checked once, fault-safely: the path
// (a NUL within PATH_MAX) and the size (CallSite::size_from). False when the kernel would
// refuse them: nothing may be read or decided for the call.
bool site_size_ready(const CallSite& site) {
  // Without process_vm_readv (a seccomp profile) a path is trusted, as it always was: @open
  // faults keep working there (docs/limits.md).
  if (site.path_state == 0 && (site.path || takes_path(site.call))) {
    site.path_state =
        site.path && safe_string_readable(site.path, PATH_MAX) != SafeCopy::kFault ? 1 : -1;
    // Both paths of rename and link (and symlink's target): the kernel refuses either.
    if (site.path_state > 0 && takes_path2(site.call) &&
        (!site.path2() || safe_string_readable(site.path2(), PATH_MAX) == SafeCopy::kFault))
      site.path_state = -1;
  }
  if (site.path_state < 0) return false;
  if (!site.size_from || site.size_state > 0) return true;
  if (site.size_state < 0) return false;
  std::uint64_t n = 0;
  if (!site.size_from(site, n)) {
    site.size_state = -1;
    return false;
  }
  site.size = n;
  site.has_size = true;
  site.size_state = 1;
  return true;
}

// All the selectors of one rule, cheapest first; the stack (unwinding) always last.
bool selectors_match(const Rule& r, SelectorContext& ctx) {
  const CallSite& site = ctx.site;
  if (!r.process_ok) return false;
  if (r.spec.has_size && (!site_size_ready(site) || !site.has_size || site.size < r.spec.size_min ||
                          site.size > r.spec.size_max))
    return false;
  if (site.fd >= 0 && (r.spec.path[0] || is_fd_data_call(site.call))) {
    const FdInfo& fd = ctx.fd();
    // read/write on a socket belong to @net, not to @read/@write; the four calls that serve
    // both hit the fds the fault aims them at (rw_scope).
    if (is_fd_data_call(site.call) &&
        !fd_kind_in_scope(r.spec, site.call, fd.kind == FdKind::kSocket))
      return false;
    if (r.spec.path[0] && !(fd.path_match & (1ull << r.slot))) return false;
  } else if (r.spec.path[0]) {
    // An @fs call matches when any path it names does (rename's old or new path).
    const char* path = ctx.path_argument();
    if (!path || !glob_list_match(r.spec.path, sizeof r.spec.path, path)) {
      const char* second = path ? ctx.second_path_argument() : nullptr;
      if (!second || !glob_list_match(r.spec.path, sizeof r.spec.path, second)) return false;
    }
  }
  // (selectors of further families are added here, before thread and stack)
  if (r.spec.addr_count || r.spec.host[0]) {
    NetSiteAddr* net = ctx.net();
    if (!net || !net_selectors_match(r.spec, site, *net)) return false;
  }
  if (r.spec.thread[0] && !thread_matches(r.spec)) return false;
  // Last: the selectors that unwind (`stack`, then explore's `site`). A stack that cannot be
  // unwound matches neither. Naming a frame may open the object's debug file, a cancellation
  // point (shim.h, CancelOff): only these selectors pay for turning cancellation off.
  if (r.spec.stack[0] || r.spec.site[0]) {
    CancelOff no_cancel;
    if (r.spec.stack[0] && !(ctx.stack() & (1ull << r.slot))) return false;
    if (r.spec.site[0]) {
      SiteFrames* frames = ctx.site_frames();
      if (!frames || !site_matches(r.spec.site, *frames)) return false;
    }
  }
  return true;
}

// True when rule r misses the call for a reason that holds for every later call of the same
// id on the same fd while the fd is the same open file and the rules the same generation: the
// fd's path does not match r's path glob, or the fd's kind is out of r's scope. Never for
// sockets (their `addr` can change with a connect) or a fd of unknown kind, and never for a
// rule with a `process` selector (a rename changes it without a generation).
bool fd_static_miss(const Rule& r, SelectorContext& ctx) {
  const CallSite& site = ctx.site;
  if (site.fd < 0 || r.spec.process[0]) return false;
  const FdInfo& fd = ctx.fd();
  if (fd.kind == FdKind::kUnknown || fd.kind == FdKind::kSocket) return false;
  if (is_fd_data_call(site.call) && !fd_kind_in_scope(r.spec, site.call, false)) return true;
  return r.spec.path[0] && !(fd.path_match & (1ull << r.slot));
}

// decide() found that no fault can match this call on this fd (fd_static_miss for each):
// the verdict word (fd_table.h) for fd_call_quiet, crediting the `seen` of up to two slots.
void store_verdict(const Rules& rules, SelectorContext& ctx, std::uint64_t seen_slots) {
  if (__builtin_popcountll(seen_slots) > 2) return;
  std::uint64_t verdict =
      1 | (std::uint64_t{ctx.site.call} << 1) | (rules.generation << kVerdictGenShift);
  unsigned shift = 8;
  for (std::uint64_t bits = seen_slots; bits; bits &= bits - 1, shift += 7)
    verdict |= static_cast<std::uint64_t>(__builtin_ctzll(bits) + 1) << shift;
  fd_set_verdict(ctx.site.fd, ctx.fd(), verdict);
}

// The after_bytes trigger of one rule whose selectors matched: true once `after_bytes` bytes
// have passed on the call's socket in its direction. Before that, marks the call to be cut
// at the boundary and counted. A call that moves no bytes (connect, accept, the batch calls)
// never reaches a boundary: the fault acts on data calls only. A connection the fault has
// partitioned is its own in both directions (a send before the send boundary must not heal
// a stalled download).
bool past_after_bytes(std::uint64_t after_bytes, int slot, const CallSite& site) {
  const int dir = call_byte_dir(site.call);
  if (dir < 0 || site.fd < 0) return false;
  const SockState state = sock_load(site.fd);
  if ((state.flags() & kSockPartitioned) && state.fault() == slot) return true;
  ByteCount count = sock_bytes_load(site.fd, dir);
  // At the boundary (the rare moment a count decides): the count must be this socket's.
  if (count.bytes() >= after_bytes) {
    if (sock_bytes_verify(site.fd)) return true;
    count = sock_bytes_load(site.fd, dir);
  }
  site.byte_dir = static_cast<std::int8_t>(dir);
  site.byte_seen = count.word;
  site.byte_room = std::min(site.byte_room, after_bytes - count.bytes());
  return false;
}

// An earlier fault took the call: the later faults with after_bytes whose selectors match it
// mark it for counting all the same (no trigger is consulted, nothing counted as matched).
void note_later_byte_rules(const Rules& rules, int from, std::uint32_t word, std::uint64_t bit,
                           SelectorContext& ctx) {
  for (int i = from; i < rules.count; ++i) {
    const Rule& r = rules.rule[i];
    if (r.spec.after_bytes == 0 || !(r.spec.calls_mask[word] & bit)) continue;
    if (selectors_match(r, ctx)) past_after_bytes(r.spec.after_bytes, r.slot, ctx.site);
  }
}

}  // namespace

// Nothing on decide()'s common path is a cancellation point (the fd table learns with statx
// and readlink, the selectors ask getpeername and prctl), so cancellation stays as the program
// set it there: the few steps that call open/close/write turn it off themselves (CancelOff in
// rebuild_rules, the unwinding selectors, `record`, over_fd_limit, diag, emit_event), and a
// decision costs no pthread_setcancelstate pair (45 instructions).
bool decide(const Guard& guard, const CallSite& site, Decision& out) noexcept {
  (void)guard;
  ControlBlock* block = g_block.load(std::memory_order_acquire);
  if (!block || session_expired(*block)) return false;
  // A call that passed the fast path just before `panic` (or the TTL, or the budget) zeroed
  // the armed mask must not inject after the command returned.
  if (block->header.flags.load(std::memory_order_acquire) &
      (kFlagPanicked | kFlagTtlExpired | kFlagBudgetSpent))
    return false;
  const RulesRef ref(*block);
  const Rules* const rules = ref.get();
  const std::uint32_t word = site.call / 64;
  const std::uint64_t bit = 1ull << (site.call % 64);
  if (!(rules->calls_any[word] & bit)) return false;
  if (MemberStats* me = member_stats(*block)) me->seen.fetch_add(1, std::memory_order_relaxed);

  SelectorContext ctx(site, *rules);
  const std::uint64_t seed = block->header.seed.load(std::memory_order_relaxed);
  // A second pass runs only when the identity check found the fd's cached facts stale: the
  // `matched` counts the first pass took on stale facts are given back, and `seen` is not
  // counted twice, so the counters (and the determinism indices) stay those of the true file.
  int seen_upto = -1;
  std::uint64_t counted = 0;  // slots whose `matched` this call has counted
  // The verdict cache: every fault naming the call missed it for a reason fixed per fd and
  // generation (fd_static_miss), and which slots' `seen` the call counted.
  bool quiet = site.fd >= 0 && site.call < 128;
  std::uint64_t seen_slots = 0;
  auto count_match = [&](FaultSlot& slot, int slot_index) {
    counted |= 1ull << slot_index;
    return slot.matched.fetch_add(1, std::memory_order_relaxed);
  };
  for (int pass = 0; pass < 2; ++pass) {
    bool stale = false;
    for (int i = 0; i < rules->count && !stale; ++i) {
      const Rule& r = rules->rule[i];
      if (!(r.spec.calls_mask[word] & bit)) continue;
      FaultSlot& slot = block->faults[r.slot];
      if (slot.enabled.load(std::memory_order_relaxed) != 1) continue;  // 0, or corrupt
      if (i > seen_upto) {
        slot.seen.fetch_add(1, std::memory_order_relaxed);
        seen_slots |= 1ull << r.slot;
        seen_upto = i;
      }
      if (!selectors_match(r, ctx)) {
        quiet = quiet && fd_static_miss(r, ctx);
        continue;
      }
      quiet = false;
      // Arguments the kernel refuses (an unreadable iovec): no decision, nothing counted.
      if (!site_size_ready(site)) return false;
      // after_bytes: a call before the boundary is not matched yet (and not counted as
      // matched); it is cut at the boundary and its bytes are counted (io.h).
      if (FL_UNLIKELY(rules->any_after_bytes) && r.spec.after_bytes != 0 &&
          !past_after_bytes(r.spec.after_bytes, r.slot, site))
        continue;

      // explore: a `record` fault notes where the call comes from and never injects; the
      // faults after it still see the call.
      if (r.spec.record[0]) {
        count_match(slot, r.slot);
        if (!r.needs_clock || in_window(r, slot))
          if (SiteFrames* frames = ctx.site_frames()) {
            CancelOff no_cancel;  // the record file's open and write are cancellation points
            site_record(r.spec, site.call, *frames);
          }
        continue;
      }

      // A limit is a condition, not a per-call trigger: the call fails when it would leave
      // more fds open than the limit (EMFILE unless the fault names another errno).
      if (r.spec.actions & kActLimit) {
        std::uint64_t n = count_match(slot, r.slot);
        if (r.needs_clock && !in_window(r, slot)) continue;
        if (!over_fd_limit(site, r.spec.fd_limit)) continue;
        if ((stale = ctx.fd_facts_stale())) continue;
        if (!claim_injection(*block, slot, r.spec.times)) continue;
        make_decision(out, r, n, seed);
        out.action = kActError;
        out.error = r.spec.error ? r.spec.error : EMFILE;
        return true;
      }
      // A quota is not a per-call trigger: every matching call draws its bytes from the
      // shared budget (in the wrapper), and only a call that finds it spent is injected.
      if (r.spec.actions & kActQuota) {
        std::uint64_t n = count_match(slot, r.slot);
        if (r.needs_clock && !in_window(r, slot)) continue;
        // Every matching call draws from the quota; only one that may find it spent can be
        // injected, and only that one pays for the identity check.
        if (slot.quota_used.load(std::memory_order_relaxed) + site.size >= r.spec.quota_bytes &&
            (stale = ctx.fd_facts_stale()))
          continue;
        make_decision(out, r, n, seed);
        out.inject = false;
        out.quota = true;
        return true;
      }
      std::uint64_t n = count_match(slot, r.slot);
      if (n < r.spec.after) continue;
      if ((n - r.spec.after) % r.spec.every != 0) continue;
      if (r.needs_clock && !in_window(r, slot)) continue;
      if (!r.always && mix(seed, r.key, n) >= r.threshold) continue;
      // About to inject: the facts about the fd this decision used must still be true.
      if ((stale = ctx.fd_facts_stale())) continue;
      if (!claim_injection(*block, slot, r.spec.times)) continue;
      make_decision(out, r, n, seed);
      // A later fault with after_bytes on the same socket still counts this call's bytes.
      if (FL_UNLIKELY(rules->any_after_bytes)) note_later_byte_rules(*rules, i + 1, word, bit, ctx);
      return true;
    }
    if (!stale) {
      if (quiet) store_verdict(*rules, ctx, seen_slots);
      return false;
    }
    quiet = false;
    for (std::uint64_t bits = counted; bits; bits &= bits - 1)
      block->faults[__builtin_ctzll(bits)].matched.fetch_sub(1, std::memory_order_relaxed);
    counted = 0;
  }
  return false;
}

bool fd_call_quiet(std::uint32_t call, int fd) noexcept {
  if (t_in_shim) return false;  // the shim's own calls are not counted (decide never sees them)
  ControlBlock* const block = g_block.load(std::memory_order_acquire);
  if (!block) return false;
  const std::uint64_t verdict = fd_verdict(fd);
  const std::uint64_t generation = block->header.generation.load(std::memory_order_acquire);
  constexpr std::uint64_t kKey = 0xffull | (~0ull << kVerdictGenShift);  // valid, call, gen
  if ((verdict ^ (1 | (std::uint64_t{call} << 1) | (generation << kVerdictGenShift))) & kKey)
    return false;
  if (MemberStats* me = member_stats(*block)) me->seen.fetch_add(1, std::memory_order_relaxed);
  if (const unsigned a = (verdict >> 8) & 0x7f)
    block->faults[a - 1].seen.fetch_add(1, std::memory_order_relaxed);
  if (const unsigned b = (verdict >> 15) & 0x7f)
    block->faults[b - 1].seen.fetch_add(1, std::memory_order_relaxed);
  return true;
}

bool fault_still_applies(const Guard& guard, int slot_index, const CallSite& site) noexcept {
  (void)guard;
  CancelOff no_cancel;
  ControlBlock* block = g_block.load(std::memory_order_acquire);
  if (!block || slot_index < 0 || slot_index >= static_cast<int>(kMaxFaults)) return false;
  if (session_expired(*block) || (block->header.flags.load(std::memory_order_acquire) &
                                  (kFlagPanicked | kFlagTtlExpired | kFlagBudgetSpent)))
    return false;
  const RulesRef ref(*block);
  const Rules* const rules = ref.get();
  FaultSlot& slot = block->faults[slot_index];
  if (slot.enabled.load(std::memory_order_relaxed) != 1) return false;
  for (int i = 0; i < rules->count; ++i) {
    const Rule& r = rules->rule[i];
    if (r.slot != slot_index) continue;
    if (r.needs_clock && !in_window(r, slot)) return false;
    SelectorContext ctx(site, *rules);
    return selectors_match(r, ctx);
  }
  return false;  // removed (or replaced, which a rebuild shows as another rule)
}

bool only_net_and_not_socket(const Guard& guard, std::uint32_t file_family, int fd) noexcept {
  (void)guard;
  if (armed(file_family)) return false;
  ControlBlock* block = g_block.load(std::memory_order_acquire);
  if (!block) return false;
  const RulesRef ref(*block);
  const Rules* const rules = ref.get();
  return fd_lookup(fd, rules->epoch, path_match_bits, const_cast<Rules*>(rules)).kind !=
         FdKind::kSocket;
}

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

const Rule* rule_for_slot(const Rules& rules, int slot) {
  for (int i = 0; i < rules.count; ++i)
    if (rules.rule[i].slot == slot) return &rules.rule[i];
  return nullptr;
}

// A delay in progress, as delay_holds() re-checks it between slices.
struct DelayHold {
  const CallSite* site;
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
    SelectorContext ctx(*hold.site, *rules);
    if (!selectors_match(*r, ctx)) return false;
    // jitter_ns carries what the wait adds to the fault's own delay (jitter, p99, a file's
    // bandwidth time): an edit changes the delay, not that.
    const std::int64_t now_ns = std::max<std::int64_t>(
        0, ((r->spec.actions & kActDelay) ? r->spec.delay_ns : 0) + hold.jitter_ns);
    deadline_ns = std::min(deadline_ns, hold.start_ns + now_ns);
  }
  return true;
}

}  // namespace

bool fault_latency_holds(const Guard& guard, int slot_index, const CallSite& site,
                         std::uint64_t& key, std::uint64_t& generation, HoldSpecNow& now) noexcept {
  (void)guard;
  CancelOff no_cancel;
  ControlBlock* block = g_block.load(std::memory_order_acquire);
  if (!block || slot_index < 0 || slot_index >= static_cast<int>(kMaxFaults)) return false;
  if (session_expired(*block) || (block->header.flags.load(std::memory_order_acquire) &
                                  (kFlagPanicked | kFlagTtlExpired | kFlagBudgetSpent)))
    return false;
  FaultSlot& slot = block->faults[slot_index];
  if (slot.enabled.load(std::memory_order_relaxed) != 1) return false;
  const RulesRef ref(*block);
  const Rules* rules = ref.get();
  const Rule* r = rule_for_slot(*rules, slot_index);
  if (!r || (key != 0 && r->key != key)) return false;  // removed, or another fault there now
  const std::uint32_t actions = r->spec.actions;
  if (!(actions & (kActLatency | kActLoss | kActBandwidth))) return false;  // edited away
  if (r->needs_clock && !in_window(*r, slot)) return false;
  if (key == 0 || rules->generation != generation) {
    SelectorContext ctx(site, *rules);
    if (!selectors_match(*r, ctx)) return false;
    key = r->key;
    generation = rules->generation;
  }
  now.latency_ns = (actions & kActLatency) ? r->spec.latency_ns : 0;
  now.loss = (actions & kActLoss) ? r->spec.loss : 0.0;
  now.bandwidth_bps = (actions & kActBandwidth) ? r->spec.bandwidth_bps : 0;
  return true;
}

bool apply_delay(const Guard& guard, Decision& d, const CallSite& site) {
  // Every injected call of a cancellation point is one, delayed or not: the real call would
  // have acted on a pending cancel at its entry, and an injected failure never reaches it.
  if (call_is_cancellation_point(site.call)) pthread_testcancel();
  if (d.delay_ns <= 0 || d.fault < 0 || d.fault >= static_cast<int>(kMaxFaults)) return true;
  DelayHold hold{&site, d.fault, 0, 0, monotonic_ns(), 0};
  if (ControlBlock* block = g_block.load(std::memory_order_acquire)) {
    const RulesRef ref(*block);
    const Rules* rules = ref.get();
    if (const Rule* r = rule_for_slot(*rules, d.fault)) {
      hold.key = r->key;
      hold.generation = rules->generation;
      hold.jitter_ns = d.delay_ns - ((r->spec.actions & kActDelay) ? r->spec.delay_ns : 0);
    }
  }
  if (shim_wait(guard, site.call, hold.start_ns + d.delay_ns, OnSignal::kRestart, delay_holds,
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

void engine_reset_process_identity() noexcept {
  char comm[17];
  read_comm(comm);
  store_comm(comm);
  char exe[4096];
  ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
  g_exe[0] = '\0';
  if (n > 0) {
    exe[n] = '\0';
    const char* base = std::strrchr(exe, '/');
    const char* name = base ? base + 1 : exe;
    std::size_t len = std::min(std::strlen(name), sizeof g_exe - 1);
    std::memcpy(g_exe, name, len);
    g_exe[len] = '\0';
  }
  g_identity_changed.store(true, std::memory_order_relaxed);
}

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
  engine_reset_process_identity();
}

void engine_process_renamed() noexcept {
  char comm[17];
  read_comm(comm);
  // Thread pools name every worker: only a change of the process's own name rebuilds rules.
  if (store_comm(comm)) g_identity_changed.store(true, std::memory_order_release);
}

void engine_set_process_identity(const char* comm, const char* exe) noexcept {
  bool changed = store_comm(comm);
  if (std::strncmp(g_exe, exe, sizeof g_exe - 1) != 0) {
    const std::size_t n = std::min(std::strlen(exe), sizeof g_exe - 1);
    std::memcpy(g_exe, exe, n);
    g_exe[n] = '\0';
    changed = true;
  }
  if (changed) g_identity_changed.store(true, std::memory_order_release);
}

const char* engine_process_name() noexcept {
  load_comm(t_comm);
  return t_comm;
}

// The cut is recorded before anyone dies, so that whoever reverts the tracked files (the
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
