// The decision engine (see engine.h).
//
// Determinism: whether the n-th matching call of a fault is injected is a pure function of
// (seed, fault name, n): mix(seed, key, n) < p. n comes from the fault's shared `matched`
// counter, so a single-threaded program is injected identically on every run with the same
// seed, and a multi-threaded one gets the same set of injected indices.
#include "engine.h"

#include <errno.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <new>

#include "faultline/glob.h"
#include "faultline/seqlock.h"
#include "fd_count.h"
#include "fd_table.h"
#include "net_select.h"
#include "scratch.h"
#include "session.h"
#include "site.h"
#include "stack.h"
#include "text_buf.h"

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
  Rule rule[1];  // `count` entries (allocated to size)
};

constinit Rules g_empty_rules{};
std::atomic<Rules*> g_rules{&g_empty_rules};
std::atomic_flag g_rebuilding = ATOMIC_FLAG_INIT;
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
  return glob_match(spec.process, comm) || glob_match(spec.process, g_exe);
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
    diag("faultline: %d fault slot(s) of session %.63s are corrupt and ignored (slot %u: %s); "
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

// Builds a private compiled copy of the session's faults. mmap'd and never freed: a thread
// may still be reading the previous copy, and edits are rare human actions, so each costs
// a few KiB for the life of the process rather than a reference count on every call.
Rules* build_rules(const ControlBlock& block, std::uint64_t generation) {
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
  auto* spec_words = reinterpret_cast<std::uint64_t*>(static_cast<char*>(mem) + rules_bytes);
  rules->bytes = bytes;
  rules->generation = generation;
  rules->epoch = ++g_epoch;
  int n = 0;
  CorruptSlots corrupt;
  for (std::uint32_t i = 0; i < kMaxFaults; ++i) {
    const FaultSlot& slot = block.faults[i];
    if (n == used || !read_sound_spec(slot, spec_words, rules->rule[n].spec)) {
      if (slot.state.load(std::memory_order_relaxed) != kSlotFree) {
        // Not sound (or a writer raced the count): the copying inspection, off the common
        // path, says what is wrong. Never trust a slot that fails the compiler's invariants.
        corrupt.inspect(i, slot);
      }
      continue;
    }
    Rule& r = rules->rule[n++];
    r.slot = static_cast<int>(i);
    r.key = fnv1a(r.spec.name);
    r.always = r.spec.probability >= 1.0;
    r.threshold = r.always ? ~0ull
                           : static_cast<std::uint64_t>(r.spec.probability * 18446744073709551616.0);
    r.process_ok = process_matches(r.spec);
    r.needs_clock = r.spec.start_after_ns > 0 || r.spec.duration_ns != kForever;
    rules->calls_any[0] |= r.spec.calls_mask[0];
    rules->calls_any[1] |= r.spec.calls_mask[1];
    rules->any_path |= r.spec.path[0] != '\0';
  }
  rules->count = n;
  corrupt.report(block);
  return rules;
}

// Replaced copies, remembered (not freed: see build_rules) so that a single-threaded test or
// fuzzer can reclaim them between runs.
constexpr int kRetiredMax = 256;
Rules* g_retired[kRetiredMax];
int g_retired_count = 0;

void retire(Rules* old) {
  if (old != &g_empty_rules && g_retired_count < kRetiredMax) g_retired[g_retired_count++] = old;
}

const Rules* current_rules(const ControlBlock& block) {
  Rules* rules = g_rules.load(std::memory_order_acquire);
  std::uint64_t generation = block.header.generation.load(std::memory_order_acquire);
  if (FL_LIKELY(rules->generation == generation &&
                !g_identity_changed.load(std::memory_order_relaxed)))
    return rules;
  // One thread rebuilds; the others keep deciding with the previous copy meanwhile.
  if (g_rebuilding.test_and_set(std::memory_order_acquire)) return rules;
  g_identity_changed.store(false, std::memory_order_relaxed);
  if (Rules* fresh = build_rules(block, generation)) {
    g_rules.store(fresh, std::memory_order_release);
    retire(rules);
    rules = fresh;
  }
  g_rebuilding.clear(std::memory_order_release);
  return rules;
}

std::uint64_t path_match_bits(const char* path, void* ctx) {
  const auto* rules = static_cast<const Rules*>(ctx);
  std::uint64_t bits = 0;
  for (int i = 0; i < rules->count; ++i) {
    const Rule& r = rules->rule[i];
    if (r.spec.path[0] && glob_match(r.spec.path, path)) bits |= 1ull << r.slot;
  }
  return bits;
}

// The fault slots whose stack glob matches one frame (the stack cache keeps the answer per
// frame address and rules epoch).
std::uint64_t stack_frame_bits(const FrameInfo& frame, const void* ctx) {
  const auto* rules = static_cast<const Rules*>(ctx);
  std::uint64_t bits = 0;
  for (int i = 0; i < rules->count; ++i) {
    const Rule& r = rules->rule[i];
    if (r.spec.stack[0] && frame_matches(r.spec.stack, frame)) bits |= 1ull << r.slot;
  }
  return bits;
}

// The absolute form of an open()'s path argument, so globs like "*/a.log" match a file the
// program opened as "a.log". Not normalised ("..", symlinks): that is the path it asked for.
// `out` and `dir` are kPathBytes each, from a scratch buffer (never the caller's stack).
constexpr std::size_t kPathBytes = 4096;
static_assert(2 * kPathBytes <= Scratch::kBytes);
bool absolute_open_path(const CallSite& site, char* out, char* dir) {
  if (!site.path) return false;
  TextBuf text(out, kPathBytes);
  if (site.path[0] != '/') {
    if (site.dirfd == AT_FDCWD) {
      if (!getcwd(dir, kPathBytes)) return false;
    } else if (fd_path(site.dirfd, dir, kPathBytes) < 0) {
      return false;
    }
    text.put(dir).put('/');
  }
  text.put(site.path);
  return !text.truncated();
}

bool is_fd_data_call(std::uint32_t call) {
  Family f = call_family(call);
  return f == kFamWrite || f == kFamRead;
}

bool thread_matches(const char* glob) {
  char name[17] = {};
  prctl(PR_GET_NAME, name, 0, 0, 0);
  return glob_match(glob, name);
}

bool in_window(const Rule& r, const FaultSlot& slot) {
  std::int64_t now = monotonic_ns();
  std::int64_t open = slot.enabled_since_ns.load(std::memory_order_relaxed) + r.spec.start_after_ns;
  if (now < open) return false;
  return r.spec.duration_ns == kForever || now < open + r.spec.duration_ns;
}

void disarm(ControlBlock& block, std::uint32_t flag) {
  block.header.flags.fetch_or(flag, std::memory_order_relaxed);
  block.header.armed_mask.store(0, std::memory_order_release);
}

bool session_expired(ControlBlock& block) {
  std::int64_t ttl = block.header.ttl_ns.load(std::memory_order_relaxed);
  if (ttl == kForever) return false;
  if (monotonic_ns() - block.header.start_mono_ns.load(std::memory_order_relaxed) < ttl)
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

Decision make_decision(const Rule& r, std::uint64_t n, std::uint64_t seed) {
  Decision d{};
  d.inject = true;
  d.fault = r.slot;
  d.index = n;
  d.action = r.spec.actions & ~std::uint32_t{kActDelay};
  d.error = r.spec.error;
  d.draw = mix(seed, r.key ^ 0x5bd1e995ull, n);
  if (r.spec.actions & kActDelay) {
    d.delay_ns = r.spec.delay_ns;
    if (r.spec.jitter_ns > 0) {
      std::uint64_t span = 2 * static_cast<std::uint64_t>(r.spec.jitter_ns) + 1;
      d.delay_ns += static_cast<std::int64_t>(splitmix64(d.draw) % span) - r.spec.jitter_ns;
      if (d.delay_ns < 0) d.delay_ns = 0;
    }
  }
  d.corrupt_bits = r.spec.corrupt_bits;
  d.crash_signal = r.spec.crash_signal;
  d.crash_when = r.spec.crash_when;
  d.quota_bytes = r.spec.quota_bytes;
  d.short_bytes = r.spec.short_bytes;
  d.short_percent = r.spec.short_percent;
  d.times = r.spec.times;
  d.dns_error = r.spec.dns_error;
  d.timeout_ns = r.spec.timeout_ns;
  return d;
}

}  // namespace

namespace {

// What the selectors of one call need, computed lazily and at most once per call however
// many rules ask for it.
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
  int open_path_state = 0;  // 0 not computed, 1 ok, -1 unavailable

  const FdInfo& fd() {
    if (!fd_known) {
      fd_info = fd_lookup(site.fd, rules.epoch, path_match_bits, const_cast<Rules*>(&rules));
      fd_known = true;
    }
    return fd_info;
  }
  const char* path_argument() {
    if (open_path_state == 0) {
      char* mem = scratch.get();
      open_path_state = mem && absolute_open_path(site, mem, mem + kPathBytes) ? 1 : -1;
    }
    return open_path_state > 0 ? scratch.get() : nullptr;
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

// All the selectors of one rule, cheapest first; the stack (unwinding) always last.
bool selectors_match(const Rule& r, SelectorContext& ctx) {
  const CallSite& site = ctx.site;
  if (!r.process_ok) return false;
  if (r.spec.has_size &&
      (!site.has_size || site.size < r.spec.size_min || site.size > r.spec.size_max))
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
    const char* path = ctx.path_argument();
    if (!path || !glob_match(r.spec.path, path)) return false;
  }
  // (selectors of further families are added here, before thread and stack)
  if (r.spec.addr_kind || r.spec.host[0]) {
    NetSiteAddr* net = ctx.net();
    if (!net || !net_selectors_match(r.spec, site, *net)) return false;
  }
  if (r.spec.thread[0] && !thread_matches(r.spec.thread)) return false;
  // Last: the selectors that unwind (`stack`, then explore's `site`). A stack that cannot be
  // unwound matches neither.
  if (r.spec.stack[0] && !(ctx.stack() & (1ull << r.slot))) return false;
  if (r.spec.site[0]) {
    SiteFrames* frames = ctx.site_frames();
    if (!frames || !site_matches(r.spec.site, *frames)) return false;
  }
  return true;
}

}  // namespace

bool decide(const Guard& guard, const CallSite& site, Decision& out) noexcept {
  (void)guard;
  ControlBlock* block = g_block.load(std::memory_order_acquire);
  if (!block || session_expired(*block)) return false;
  // A call that passed the fast path just before `panic` (or the TTL, or the budget) zeroed
  // the armed mask must not inject after the command returned.
  if (block->header.flags.load(std::memory_order_acquire) &
      (kFlagPanicked | kFlagTtlExpired | kFlagBudgetSpent))
    return false;
  const Rules* rules = current_rules(*block);
  const std::uint32_t word = site.call / 64;
  const std::uint64_t bit = 1ull << (site.call % 64);
  if (!(rules->calls_any[word] & bit)) return false;
  if (MemberStats* me = member_stats(*block)) me->seen.fetch_add(1, std::memory_order_relaxed);

  SelectorContext ctx(site, *rules);
  const std::uint64_t seed = block->header.seed.load(std::memory_order_relaxed);
  for (int i = 0; i < rules->count; ++i) {
    const Rule& r = rules->rule[i];
    if (!(r.spec.calls_mask[word] & bit)) continue;
    FaultSlot& slot = block->faults[r.slot];
    if (slot.enabled.load(std::memory_order_relaxed) != 1) continue;  // 0, or corrupt
    slot.seen.fetch_add(1, std::memory_order_relaxed);
    if (!selectors_match(r, ctx)) continue;

    // explore: a `record` fault notes where the call comes from and never injects; the
    // faults after it still see the call.
    if (r.spec.record[0]) {
      slot.matched.fetch_add(1, std::memory_order_relaxed);
      if (!r.needs_clock || in_window(r, slot))
        if (SiteFrames* frames = ctx.site_frames()) site_record(r.spec, site.call, *frames);
      continue;
    }

    // A limit is a condition, not a per-call trigger: the call fails when it would leave
    // more fds open than the limit (EMFILE unless the fault names another errno).
    if (r.spec.actions & kActLimit) {
      std::uint64_t n = slot.matched.fetch_add(1, std::memory_order_relaxed);
      if (r.needs_clock && !in_window(r, slot)) continue;
      if (!over_fd_limit(site, r.spec.fd_limit)) continue;
      if (!claim_injection(*block, slot, r.spec.times)) continue;
      out = make_decision(r, n, seed);
      out.action = kActError;
      out.error = r.spec.error ? r.spec.error : EMFILE;
      return true;
    }
    // A quota is not a per-call trigger: every matching call draws its bytes from the shared
    // budget (in the wrapper), and only a call that finds it spent is injected.
    if (r.spec.actions & kActQuota) {
      std::uint64_t n = slot.matched.fetch_add(1, std::memory_order_relaxed);
      if (r.needs_clock && !in_window(r, slot)) continue;
      out = make_decision(r, n, seed);
      out.inject = false;
      out.quota = true;
      return true;
    }
    std::uint64_t n = slot.matched.fetch_add(1, std::memory_order_relaxed);
    if (n < r.spec.after) continue;
    if ((n - r.spec.after) % r.spec.every != 0) continue;
    if (r.needs_clock && !in_window(r, slot)) continue;
    if (!r.always && mix(seed, r.key, n) >= r.threshold) continue;
    if (!claim_injection(*block, slot, r.spec.times)) continue;
    out = make_decision(r, n, seed);
    return true;
  }
  return false;
}

bool fault_still_applies(const Guard& guard, int slot_index, const CallSite& site) noexcept {
  (void)guard;
  ControlBlock* block = g_block.load(std::memory_order_acquire);
  if (!block || slot_index < 0 || slot_index >= static_cast<int>(kMaxFaults)) return false;
  if (session_expired(*block) || (block->header.flags.load(std::memory_order_acquire) &
                                  (kFlagPanicked | kFlagTtlExpired | kFlagBudgetSpent)))
    return false;
  const Rules* rules = current_rules(*block);
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
  const Rules* rules = current_rules(*block);
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
  std::uint64_t before = used.fetch_add(want, std::memory_order_relaxed);
  if (before >= d.quota_bytes) {
    used.fetch_sub(want, std::memory_order_relaxed);
    return 0;
  }
  std::uint64_t room = d.quota_bytes - before;
  if (want > room) {
    used.fetch_sub(want - room, std::memory_order_relaxed);
    return room;
  }
  return want;
}

void quota_release(const Decision& d, std::uint64_t unused) noexcept {
  ControlBlock* block = g_block.load(std::memory_order_acquire);
  if (!block || d.fault < 0 || unused == 0) return;
  block->faults[d.fault].quota_used.fetch_sub(unused, std::memory_order_relaxed);
}

void apply_delay(const Decision& d) noexcept {
  if (d.delay_ns <= 0) return;
  struct timespec left = {static_cast<time_t>(d.delay_ns / 1000000000),
                          static_cast<long>(d.delay_ns % 1000000000)};
  while (nanosleep(&left, &left) != 0 && errno == EINTR) {
  }
}

void corrupt_buffer(const Decision& d, void* buf, std::size_t len) noexcept {
  if (len == 0) return;
  auto* bytes = static_cast<unsigned char*>(buf);
  std::uint64_t state = d.draw;
  for (std::uint32_t i = 0; i < d.corrupt_bits; ++i) {
    state = splitmix64(state);
    std::uint64_t bit = state % (static_cast<std::uint64_t>(len) * 8);
    bytes[bit / 8] ^= static_cast<unsigned char>(1u << (bit % 8));
  }
}

std::uint64_t short_length(const Decision& d, std::uint64_t count) noexcept {
  if (count <= 1) return count;
  std::uint64_t allowed = d.short_percent ? count * d.short_percent / 100 : d.short_bytes;
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
  while (!g_rebuilding.test_and_set(std::memory_order_acquire)) {
    for (int i = 0; i < g_retired_count; ++i) munmap(g_retired[i], g_retired[i]->bytes);
    g_retired_count = 0;
    g_rebuilding.clear(std::memory_order_release);
    return;
  }
}

void engine_after_fork_child() noexcept {
  g_rebuilding.clear();
  engine_reset_process_identity();
}

void engine_process_renamed() noexcept {
  char comm[17];
  read_comm(comm);
  // Thread pools name every worker: only a change of the process's own name rebuilds rules.
  if (store_comm(comm)) g_identity_changed.store(true, std::memory_order_release);
}

const char* engine_process_name() noexcept {
  load_comm(t_comm);
  return t_comm;
}

[[noreturn]] void crash_now(const Decision& d) noexcept {
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
