// The decision engine (see engine.h): decide() and what it walks for one armed call, the
// selectors (cheap first, the unwinding ones last) and the triggers (after, every, the
// window, probability, times and the session budget). The rules it reads are built and
// reclaimed in engine_rules.cpp, the process identity is engine_identity.cpp's, and what an
// injecting decision does (delay, quota, corrupt, short, crash) is engine_actions.cpp's. The
// selectors and triggers stay in this file with decide() so that they inline into it: the
// armed path pays no call for the split.
//
// Determinism: whether the n-th matching call of a fault is injected is a pure function of
// (seed, fault name, n): mix(seed, key, n) < p. n comes from the fault's shared `matched`
// counter, so a single-threaded program is injected identically on every run with the same
// seed, and a multi-threaded one gets the same set of injected indices.
#include "shim/engine/engine.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <algorithm>
#include <climits>
#include <cstring>
#include <limits>
#include <new>

#include "faultline/glob.h"
#include "session/session.h"
#include "shim/engine/draw.h"
#include "shim/engine/engine_internal.h"
#include "shim/engine/fd_count.h"
#include "shim/engine/fd_table.h"
#include "shim/engine/net_select.h"
#include "shim/engine/safe_copy.h"
#include "shim/engine/scratch.h"
#include "shim/engine/site.h"
#include "shim/engine/sock_bytes.h"
#include "shim/engine/sock_table.h"
#include "shim/engine/stack.h"
#include "shim/engine/text_buf.h"

namespace faultline::shim {
namespace engine_detail {
namespace {

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

}  // namespace

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

namespace {

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
void make_decision(Decision& d, const Rule& r, std::uint64_t n, std::uint64_t seed,
                   std::uint32_t epoch) {
  d = Decision{};
  d.inject = true;
  d.fault = r.slot;
  d.epoch = epoch;  // the event's name for the fault: fault_facts.h
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

// What the selectors of one call need, computed lazily and at most once per call however
// many rules ask for it.
bool args_size_ready(const CallArgs& args);

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

// The @fs calls that name two paths (CallArgs::path2; symlink's second is its target string).
bool takes_path2(std::uint32_t call) {
  return call == kCall_rename || call == kCall_renameat || call == kCall_renameat2 ||
         call == kCall_link || call == kCall_linkat || call == kCall_symlink ||
         call == kCall_symlinkat;
}

struct SelectorContext {
  SelectorContext(const CallArgs& s, const Rules& r) : args(s), rules(r) {}
  const CallArgs& args;
  const Rules& rules;
  FdInfo fd_info;
  bool fd_known = false;
  // The absolute path argument, the socket address `addr` matches and explore's frames, each
  // computed once per call, live in a scratch buffer claimed only when a rule needs one: on
  // the stack they would cost 8.5 KiB, where a signal handler's sigaltstack may have 8 in all.
  Scratch scratch;
  NetArgsAddr* net_ = nullptr;
  SiteFrames* frames_ = nullptr;
  static constexpr std::size_t kNetOffset = 2 * kPathBytes;
  static constexpr std::size_t kFramesOffset = kNetOffset + 256;

  // nullptr only when no memory at all could be had: the selector then does not match.
  NetArgsAddr* net() {
    if (!net_)
      if (char* mem = scratch.get()) net_ = new (mem + kNetOffset) NetArgsAddr;
    return net_;
  }
  SiteFrames* site_frames() {
    if (!frames_)
      if (char* mem = scratch.get()) frames_ = new (mem + kFramesOffset) SiteFrames;
    return frames_;
  }
  // A path argument made absolute on first use: not yet computed, in the scratch, or unavailable.
  enum class PathState : std::int8_t { kNotYet, kReady, kUnavailable };
  PathState open_path_state = PathState::kNotYet;
  PathState second_path_state = PathState::kNotYet;  // the same for CallArgs::path2

  const FdInfo& fd() {
    if (!fd_known) {
      fd_info = fd_lookup(args.fd, rules.epoch, path_match_bits, const_cast<Rules*>(&rules));
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
    if (fd_identity(args.fd) == fd_info.identity) return false;
    fd_info = fd_relearn(args.fd, rules.epoch, path_match_bits, const_cast<Rules*>(&rules));
    return true;
  }
  bool fd_checked = false;
  // The absolute path argument, at the start of the scratch buffer.
  const char* path_argument() {
    if (open_path_state == PathState::kNotYet && !args_size_ready(args))
      open_path_state = PathState::kUnavailable;
    if (open_path_state == PathState::kNotYet) {
      char* mem = scratch.get();
      open_path_state = mem && absolute_path(args.path, args.dirfd, mem) ? PathState::kReady
                                                                         : PathState::kUnavailable;
    }
    return open_path_state == PathState::kReady ? scratch.get() : nullptr;
  }
  // The second path of an @fs call (rename's new path), absolute, in the next kPathBytes;
  // nullptr for a call with one path.
  const char* second_path_argument() {
    if (second_path_state == PathState::kNotYet &&
        (!takes_path2(args.call) || !args_size_ready(args)))
      second_path_state = PathState::kUnavailable;
    if (second_path_state == PathState::kNotYet) {
      char* mem = scratch.get();
      second_path_state = mem && absolute_path(args.path2(), args.fd2, mem + kPathBytes)
                              ? PathState::kReady
                              : PathState::kUnavailable;
    }
    return second_path_state == PathState::kReady ? scratch.get() + kPathBytes : nullptr;
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
static_assert(sizeof(NetArgsAddr) <= 256 &&
              SelectorContext::kFramesOffset + sizeof(SiteFrames) <= Scratch::kBytes);

// The call's arguments that live in caller memory, checked once, fault-safely: the path
// (a NUL within PATH_MAX) and the size (CallArgs::size_from). False when the kernel would
// refuse them: nothing may be read or decided for the call.
bool args_size_ready(const CallArgs& args) {
  // Without process_vm_readv (a seccomp profile) a path is trusted, as it always was: @open
  // faults keep working there (docs/limits.md).
  if (args.path_state == 0 && (args.path || takes_path(args.call))) {
    args.path_state =
        args.path && safe_string_readable(args.path, PATH_MAX) != SafeCopy::kFault ? 1 : -1;
    // Both paths of rename and link (and symlink's target): the kernel refuses either.
    if (args.path_state > 0 && takes_path2(args.call) &&
        (!args.path2() || safe_string_readable(args.path2(), PATH_MAX) == SafeCopy::kFault))
      args.path_state = -1;
  }
  if (args.path_state < 0) return false;
  if (!args.size_from || args.size_state > 0) return true;
  if (args.size_state < 0) return false;
  std::uint64_t n = 0;
  if (!args.size_from(args, n)) {
    args.size_state = -1;
    return false;
  }
  args.size = n;
  args.has_size = true;
  args.size_state = 1;
  return true;
}

// All the selectors of one rule, cheapest first; the stack (unwinding) always last.
bool selectors_match(const Rule& r, SelectorContext& ctx) {
  const CallArgs& args = ctx.args;
  if (!r.process_ok) return false;
  if (r.spec.has_size && (!args_size_ready(args) || !args.has_size || args.size < r.spec.size_min ||
                          args.size > r.spec.size_max))
    return false;
  if (args.fd >= 0 && (r.spec.path[0] || is_fd_data_call(args.call))) {
    const FdInfo& fd = ctx.fd();
    // read/write on a socket belong to @net, not to @read/@write; the four calls that serve
    // both hit the fds the fault aims them at (rw_scope).
    if (is_fd_data_call(args.call) &&
        !fd_kind_in_scope(r.spec, args.call, fd.kind == FdKind::kSocket))
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
    // A connected stream socket's answer is kept per peer and rules copy (sock_table.h): the
    // peer's address is neither copied nor matched again.
    const int known = net_selectors_known(r.spec, r.slot, ctx.rules.epoch, args);
    if (known == 0) return false;
    if (known < 0) {
      NetArgsAddr* net = ctx.net();
      if (!net || !net_selectors_match(r.spec, r.slot, ctx.rules.epoch, args, *net)) return false;
    }
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
  const CallArgs& args = ctx.args;
  if (args.fd < 0 || r.spec.process[0]) return false;
  const FdInfo& fd = ctx.fd();
  if (fd.kind == FdKind::kUnknown || fd.kind == FdKind::kSocket) return false;
  if (is_fd_data_call(args.call) && !fd_kind_in_scope(r.spec, args.call, false)) return true;
  return r.spec.path[0] && !(fd.path_match & (1ull << r.slot));
}

// decide() found that no fault can match this call on this fd (fd_static_miss for each):
// the verdict word (fd_table.h) for fd_call_quiet, crediting the `seen` of up to two slots.
void store_verdict(const Rules& rules, SelectorContext& ctx, std::uint64_t seen_slots) {
  if (__builtin_popcountll(seen_slots) > 2) return;
  std::uint64_t verdict = 1 | (std::uint64_t{ctx.args.call} << 1) | kVerdictBatchMark |
                          (rules.generation << kVerdictGenShift);
  unsigned shift = 8;
  for (std::uint64_t bits = seen_slots; bits; bits &= bits - 1, shift += 7)
    verdict |= static_cast<std::uint64_t>(__builtin_ctzll(bits) + 1) << shift;
  fd_set_verdict(ctx.args.fd, ctx.fd(), verdict);
}

// The after_bytes trigger of one rule whose selectors matched: true once `after_bytes` bytes
// have passed on the call's socket in its direction. Before that, marks the call to be cut
// at the boundary and counted. A call that moves no bytes (connect, accept, the batch calls)
// never reaches a boundary: the fault acts on data calls only. A connection the fault has
// partitioned is its own in both directions (a send before the send boundary must not heal
// a stalled download).
bool past_after_bytes(std::uint64_t after_bytes, int slot, const CallArgs& args) {
  const int dir = call_byte_dir(args.call);
  if (dir < 0 || args.fd < 0) return false;
  const SockState state = sock_load(args.fd);
  if ((state.flags() & kSockPartitioned) && state.fault() == slot) return true;
  ByteCount count = sock_bytes_load(args.fd, dir);
  // At the boundary (the rare moment a count decides): the count must be this socket's.
  if (count.bytes() >= after_bytes) {
    if (sock_bytes_verify(args.fd)) return true;
    count = sock_bytes_load(args.fd, dir);
  }
  args.byte_dir = static_cast<std::int8_t>(dir);
  args.byte_seen = count.word;
  args.byte_room = std::min(args.byte_room, after_bytes - count.bytes());
  return false;
}

// An earlier fault took the call: the later faults with after_bytes whose selectors match it
// mark it for counting all the same (no trigger is consulted, nothing counted as matched).
void note_later_byte_rules(const Rules& rules, int from, std::uint32_t word, std::uint64_t bit,
                           SelectorContext& ctx) {
  for (int i = from; i < rules.count; ++i) {
    const Rule& r = rules.rule[i];
    if (r.spec.after_bytes == 0 || !(r.spec.calls_mask[word] & bit)) continue;
    if (selectors_match(r, ctx)) past_after_bytes(r.spec.after_bytes, r.slot, ctx.args);
  }
}

}  // namespace

bool rule_selects(const Rule& r, const Rules& rules, const CallArgs& args) {
  SelectorContext ctx(args, rules);
  return selectors_match(r, ctx);
}

FaultSlot* live_fault_slot(int slot_index, ControlBlock*& block) {
  block = g_block.load(std::memory_order_acquire);
  if (!block || slot_index < 0 || slot_index >= static_cast<int>(kMaxFaults)) return nullptr;
  if (session_expired(*block) || (block->header.flags.load(std::memory_order_acquire) &
                                  (kFlagPanicked | kFlagTtlExpired | kFlagBudgetSpent)))
    return nullptr;
  FaultSlot& slot = block->faults[slot_index];
  return slot.enabled.load(std::memory_order_relaxed) == 1 ? &slot : nullptr;
}

}  // namespace engine_detail

using namespace engine_detail;

// Nothing on decide()'s common path is a cancellation point (the fd table learns with statx
// and readlink, the selectors ask getpeername and prctl), so cancellation stays as the program
// set it there: the few steps that call open/close/write turn it off themselves (CancelOff in
// rebuild_rules, the unwinding selectors, `record`, over_fd_limit, diag, emit_event), and a
// decision costs no pthread_setcancelstate pair (45 instructions).
bool decide(const Guard& guard, const CallArgs& args, Decision& out) noexcept {
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
  const std::uint32_t word = args.call / 64;
  const std::uint64_t bit = 1ull << (args.call % 64);
  if (!(rules->calls_any[word] & bit)) return false;
  if (MemberStats* me = member_stats(*block)) me->seen.fetch_add(1, std::memory_order_relaxed);

  SelectorContext ctx(args, *rules);
  const std::uint64_t seed = block->header.seed.load(std::memory_order_relaxed);
  // A second pass runs only when the identity check found the fd's cached facts stale: the
  // `matched` counts the first pass took on stale facts are given back, and `seen` is not
  // counted twice, so the counters (and the determinism indices) stay those of the true file.
  int seen_upto = -1;
  std::uint64_t counted = 0;  // slots whose `matched` this call has counted
  // The verdict cache: every fault naming the call missed it for a reason fixed per fd and
  // generation (fd_static_miss), and which slots' `seen` the call counted.
  bool quiet = args.fd >= 0 && args.call < 128;
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
      if (!args_size_ready(args)) return false;
      // after_bytes: a call before the boundary is not matched yet (and not counted as
      // matched); it is cut at the boundary and its bytes are counted (io.h).
      if (FL_UNLIKELY(rules->any_after_bytes) && r.spec.after_bytes != 0 &&
          !past_after_bytes(r.spec.after_bytes, r.slot, args))
        continue;

      // explore: a `record` fault notes where the call comes from and never injects; the
      // faults after it still see the call.
      if (r.spec.record[0]) {
        count_match(slot, r.slot);
        if (!r.needs_clock || in_window(r, slot))
          if (SiteFrames* frames = ctx.site_frames()) {
            CancelOff no_cancel;  // the record file's open and write are cancellation points
            site_record(r.spec, args.call, *frames);
          }
        continue;
      }

      // A limit is a condition, not a per-call trigger: the call fails when it would leave
      // more fds open than the limit (EMFILE unless the fault names another errno).
      if (r.spec.actions & kActLimit) {
        std::uint64_t n = count_match(slot, r.slot);
        if (r.needs_clock && !in_window(r, slot)) continue;
        if (!over_fd_limit(args, r.spec.fd_limit)) continue;
        if ((stale = ctx.fd_facts_stale())) continue;
        if (!claim_injection(*block, slot, r.spec.times)) continue;
        make_decision(out, r, n, seed, rules->epoch);
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
        if (slot.quota_used.load(std::memory_order_relaxed) + args.size >= r.spec.quota_bytes &&
            (stale = ctx.fd_facts_stale()))
          continue;
        make_decision(out, r, n, seed, rules->epoch);
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
      make_decision(out, r, n, seed, rules->epoch);
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

// ---- `seen` in batches (engine.h, fd_call_quiet) ------------------------------------------
// A signal handler may interrupt a quiet call anywhere: between the batch test and the add it
// can only add or turn the batch itself (exchange, below), so no count is lost or credited
// twice; at worst the interrupted call's one count goes to the faults the handler's call
// started a batch for. A forked child starts with none (seen_batch_after_fork_child), the fork
// wrapper flushes first, and the thread-exit key and the shim's destructor flush the rest.
constinit thread_local std::uint64_t t_seen_batch __attribute__((tls_model("initial-exec"))) = 0;

namespace {

// The count a thread's batch holds once the process is exiting: never below the bound, so every
// later quiet call goes to seen_batch_turn, which credits it at once.
constexpr std::uint64_t kSeenDirect = kSeenCountMask;

constinit thread_local bool t_seen_registered __attribute__((tls_model("initial-exec"))) = false;
pthread_key_t g_seen_key;
std::atomic<int> g_seen_key_state{0};  // 0 not made, 1 making, 2 ready, -1 refused

void credit_seen(std::uint64_t pending) noexcept {
  const std::uint64_t count = pending & kSeenCountMask;
  if (count == 0 || count == kSeenDirect) return;
  ControlBlock* const block = g_block.load(std::memory_order_acquire);
  if (!block) return;
  if (MemberStats* me = member_stats(*block)) me->seen.fetch_add(count, std::memory_order_relaxed);
  if (const unsigned a = (pending >> 8) & 0x7f)
    block->faults[a - 1].seen.fetch_add(count, std::memory_order_relaxed);
  if (const unsigned b = (pending >> 15) & 0x7f)
    block->faults[b - 1].seen.fetch_add(count, std::memory_order_relaxed);
}

// Thread exit (pthread key destructor): the thread's batch goes to the shared counters. A
// later destructor's quiet calls register the thread again (glibc runs the round again).
void seen_thread_exit(void*) {
  t_seen_registered = false;
  seen_batch_flush();
}

// Once per thread, at its first batch: its exit will flush it. Keys below 32 (the first ones
// a process makes) are created and set without allocating or locking (glibc).
void register_seen_thread() noexcept {
  int state = g_seen_key_state.load(std::memory_order_acquire);
  if (state == 0 && g_seen_key_state.compare_exchange_strong(state, 1, std::memory_order_acquire)) {
    state = pthread_key_create(&g_seen_key, seen_thread_exit) == 0 ? 2 : -1;
    g_seen_key_state.store(state, std::memory_order_release);
  }
  // Another thread is making the key: this thread tries again at its next batch.
  if (state == 2) t_seen_registered = pthread_setspecific(g_seen_key, &g_seen_key_state) == 0;
}

}  // namespace

FL_COLD void seen_batch_turn(std::uint64_t key) noexcept {
  if ((t_seen_batch & kSeenCountMask) == kSeenDirect) {
    credit_seen(key | 1);
    return;
  }
  if (!t_seen_registered) register_seen_thread();
  credit_seen(__atomic_exchange_n(&t_seen_batch, key | 1, __ATOMIC_RELAXED));
}

void seen_batch_flush(bool last) noexcept {
  credit_seen(__atomic_exchange_n(&t_seen_batch, last ? kSeenDirect : 0, __ATOMIC_RELAXED));
}

bool fault_still_applies(const Guard& guard, int slot_index, const CallArgs& args) noexcept {
  (void)guard;
  CancelOff no_cancel;
  ControlBlock* block = nullptr;
  FaultSlot* const slot = live_fault_slot(slot_index, block);
  if (!slot) return false;
  const RulesRef ref(*block);
  const Rules* const rules = ref.get();
  const Rule* const r = rule_for_slot(*rules, slot_index);
  if (!r) return false;  // removed (or replaced, which a rebuild shows as another rule)
  if (r->needs_clock && !in_window(*r, *slot)) return false;
  return rule_selects(*r, *rules, args);
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

}  // namespace faultline::shim
