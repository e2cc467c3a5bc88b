// The decision engine: for one armed call, walk the compiled rules of the session in order
// (selectors cheap first -> trigger -> action) and say whether and how to inject.
//
// Rules are a private, compiled copy of the session's fault slots, rebuilt when the block's
// generation changes. Counters (seen/matched/injected/quota) live in the shared block so that
// every process of the session counts together and triggers are exact across a tree.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "shim/engine/fd_table.h"
#include "shim/engine/shim.h"

namespace faultline::shim {

// One intercepted call's arguments as decide() sees them (fd, path, address, size...). Not
// "site": in faultline a site is only explore's stack location (shim/engine/site.h).
struct CallArgs {
  // Eight-byte members first, then the narrow ones: the struct lives in every armed wrapper's
  // frame, which a signal handler on a small sigaltstack may be running (reliability.md).
  std::uint32_t call;              // CallId
  int fd = -1;                     // -1 when the call has no fd
  const char* path = nullptr;      // path argument (open, creat, @fs), as the program passed it
  mutable std::uint64_t size = 0;  // bytes asked for
  // A size that lives in caller memory (an iovec array): the wrapper sets `size_from`, and
  // decide() calls it only once a rule's selectors match (or a `size` selector asks), before
  // anything is counted. It reads the array fault-safely (shim/engine/safe_copy.h); false means the
  // kernel would refuse the call's arguments, and then nothing is decided: the call goes to
  // the kernel as it is. So an armed fault that matches nothing costs no read at all.
  const void* vec = nullptr;
  long vec_count = 0;
  bool (*size_from)(const CallArgs& args, std::uint64_t& size) noexcept = nullptr;
  // @net/@dns (shim/engine/net_select.h): the address argument of connect/bind/sendto/sendmsg (the
  // `addr` selector falls back to getpeername/getsockname without one), and the name looked up.
  const struct sockaddr* addr = nullptr;
  // @dns: the name looked up. @fs: the second path (rename/link's new path, symlink's
  // target; its dirfd is fd2), read through path2(). The two never meet in one call, so they
  // share the word: a second path costs the armed frames nothing (reliability.md's budget).
  const char* host = nullptr;
  // after_bytes (shim/engine/sock_bytes.h): set by decide() when a rule with `after_bytes` matched
  // the call before its boundary. The call then moves at most `byte_room` bytes (a call that
  // crosses the boundary is cut exactly at it) and its bytes are counted in `byte_dir` against
  // the counter word decide() loaded (`byte_seen`). byte_dir -1: nothing to count.
  mutable std::uint64_t byte_room = UINT64_MAX;
  mutable std::uint64_t byte_seen = 0;
  int dirfd = AT_FDCWD;  // openat's directory
  int fd2 = -1;          // dup2/dup3's target (`limit` counts it only if it is not open);
                         // @fs: path2's directory fd
  unsigned addr_len = 0;
  int msg_flags = 0;  // send/recv flags (MSG_DONTWAIT makes a blackholed receive EAGAIN at once)
  mutable bool has_size = false;
  mutable std::int8_t size_state = 0;  // 0 not read, 1 read (size is set), -1 refused
  // `path` is the program's pointer: checked (fault-safely, for a NUL within PATH_MAX) the
  // same way, before anything reads it or decides. 0 not checked, 1 readable, -1 refused.
  mutable std::int8_t path_state = 0;
  mutable std::int8_t byte_dir = -1;

  const char* path2() const { return call_family(call) == kFamFs ? host : nullptr; }
  void set_path2(int dirfd2, const char* second) {
    fd2 = dirfd2;
    host = second;
  }
};

// Trivially constructible on purpose: a Decision is only filled when decide() returns true,
// so the common "nothing matched" path writes nothing (no zeroing of ~90 bytes per call).
struct Decision {
  bool inject;
  bool quota;  // a quota fault matched: the wrapper draws the call's bytes from it
  std::uint8_t crash_when;
  // `powercut`: applied as a SIGKILL crash (action kActCrash) that first kills every other
  // process of the session (crash_now); events name it powercut.
  bool powercut;
  std::uint32_t action;  // the main Action bit (0 = delay only)
  int fault;             // slot index
  int error;
  std::int32_t crash_signal;
  std::uint32_t corrupt_bits;
  std::uint16_t short_percent;  // 1..100
  std::int16_t dns_error;       // @dns: the EAI_* code of `error` (0: EAI_SYSTEM with `error`)
  // The compiled rules copy that decided (its process-local epoch): the event names the fault
  // as that copy had it (fault_facts.h), whatever the slot holds by the time it is written.
  std::uint32_t epoch;
  std::int64_t delay_ns;      // delay + jitter, already drawn
  std::uint64_t short_bytes;  // for kActShort: bytes allowed (>= 1)
  std::uint64_t draw;         // per-injection random stream (corrupt positions)
  std::uint64_t quota_bytes;
  std::uint64_t times;
  std::uint64_t index;      // n: which matching call of this fault this is
  std::int64_t timeout_ns;  // blackhole: how long a blocking connect waits (0 = default)
  std::int64_t latency_ns;  // kActLatency: latency + jitter or p99, already drawn
  std::uint64_t bandwidth_bps;
  double loss;
};
// In every armed wrapper's frame: grow it only against the handler-stack budget
// (docs/reliability.md, "Signal handlers and stack").
static_assert(sizeof(Decision) <= 120);

// Decides for one call. `guard` proves the caller holds the reentrancy guard. Returns true
// and fills `out` when a fault injects or a quota fault matched (out.quota); false, leaving
// `out` untouched, when the call should simply run.
bool decide(const Guard& guard, const CallArgs& args, Decision& out) noexcept;

// Does fault `slot` still hold this call? Its session is live (not panicked, expired or over
// budget), it is enabled, its window is open and its selectors match. Triggers (after, every,
// times, probability) are not consulted and nothing is counted: @net asks it to know when a
// partition was lifted (the fault disabled, removed, out of its window, the session
// panicked), so that a blackholed socket heals.
bool fault_still_applies(const Guard& guard, int slot, const CallArgs& args) noexcept;

// A socket a `latency` fault holds: does fault `slot` still hold it, and with which latency
// now (`latency_ns`: the fault's median, without jitter)? Cheap between edits (flags, the TTL,
// enabled, the window); after a live edit (the rules' generation moved since `generation`)
// the slot is checked to hold the same fault (`key`; 0 = not known yet, taken now) and the
// selectors are matched again. Triggers are not consulted and nothing is counted.
// (`loss` and `bandwidth` too: a fault with any of these holds the sockets it took; `now`
// gets its values as they are now.)
struct HoldSpecNow {
  std::int64_t latency_ns;      // 0 without `latency`
  double loss;                  // 0 without `loss`
  std::uint64_t bandwidth_bps;  // 0 without `bandwidth`
};
bool fault_latency_holds(const Guard& guard, int slot, const CallArgs& args, std::uint64_t& key,
                         std::uint64_t& generation, HoldSpecNow& now) noexcept;

// read/write/readv/writev serve @read/@write and @net. When only @net armed the call (not
// `file_family`), a fd that is not a socket concerns no fault: the wrapper runs the real call
// without deciding. The fd's kind comes from the fd table (cached).
bool only_net_and_not_socket(const Guard& guard, std::uint32_t file_family, int fd) noexcept;

// The armed path's shortcut for a call on an fd (the fd wrappers test it before anything
// else, inline): true when the fd's cached verdict (fd_table.h) says that under the session's
// current generation no fault can match this call on this fd; the call's `seen` counts are
// credited as decide() would have, and the caller runs the real call. decide() stores a
// verdict only when every fault naming the call missed for a reason that stays true while the
// fd stays the same open file and the rules the same generation: its path glob, or the fd
// kind (a file for a @net fault). Faults with a `process` selector and sockets are never
// cached (a thread renames the process, a UDP socket reconnects), nor calls that more than two
// enabled faults name (the word credits `seen` to two slots at most).
//
// `seen` is credited in batches (the per-thread word below): a quiet call adds one to this
// thread's pending count, a single instruction on thread-local memory; the count goes to the
// shared counters (the member's and the verdict's faults') when it reaches kSeenBatch, when
// the thread's next quiet call credits other faults (or another generation), when the thread
// ends, at the process's exit (the shim's destructor) and before fork. So `seen` is exact once
// the process has exited (or its threads have ended), and at most kSeenBatch - 1 calls per
// live thread behind while it runs. `matched` and `injected` never pass here.
inline constexpr std::uint64_t kSeenBatch = 64;
// This thread's pending `seen` credits: the verdict's word without its low byte (the slot
// bits 8-21 and the generation bits 32-63 name the faults credited; bit 22 is always set) and
// the count in bits 0-7. 0: none.
inline constexpr std::uint64_t kSeenCountMask = 0xff;
extern constinit thread_local std::uint64_t t_seen_batch __attribute__((tls_model("initial-exec")));
// The batch is full or names other faults: credits it and starts one for `key` with this call.
void seen_batch_turn(std::uint64_t key) noexcept;
// Credits this thread's pending `seen` now (thread exit, process exit, before fork). `last`:
// the thread's calls after this one are credited one by one (the process is exiting).
void seen_batch_flush(bool last = false) noexcept;
// A forked child's copy of the forking thread's batch is the parent's to credit.
inline void seen_batch_after_fork_child() noexcept { t_seen_batch = 0; }

// The session's armed families and the word they were read from, one load: a wrapper that
// tests several (its own, and [durability] before its quiet test) reads them once, and its
// quiet test finds the block's header through the word (a non-zero mask can only have been
// read from an attached block's header: g_armed_word points at an all-zero sentinel before).
struct ArmedNow {
  const std::atomic<std::uint64_t>* word;
  std::uint64_t families;
  const ControlHeader* header() const noexcept {
    return reinterpret_cast<const ControlHeader*>(reinterpret_cast<const char*>(word) -
                                                  offsetof(ControlHeader, armed_mask));
  }
};
[[gnu::always_inline]] inline ArmedNow armed_now() noexcept {
  const std::atomic<std::uint64_t>* word = g_armed_word.load(std::memory_order_relaxed);
  return {word, word->load(std::memory_order_relaxed)};
}

// fd_call_quiet's test: 0 not quiet (the call decides), 1 quiet and counted, 2 quiet but the
// thread's batch must turn first (`key`: the faults to credit).
[[gnu::always_inline]] inline int fd_quiet_test(std::uint32_t call, int fd,
                                                const ControlHeader& header,
                                                std::uint64_t& key) noexcept {
  if (t_in_shim) return 0;    // the shim's own calls are not counted (decide never sees them)
  if (call >= 128) return 0;  // no verdict names it (7 bits); a constant in every wrapper
  const std::uint64_t verdict = fd_verdict(fd);
  // The verdict's low byte is valid + call, its high half the generation's low 32 bits.
  if (static_cast<std::uint8_t>(verdict) != static_cast<std::uint8_t>(1 | (call << 1)) ||
      static_cast<std::uint32_t>(verdict >> kVerdictGenShift) !=
          static_cast<std::uint32_t>(header.generation.load(std::memory_order_acquire)))
    return 0;
  key = verdict & ~kSeenCountMask;  // the slots, the mark and the generation
  // Same faults and generation, count below the bound: one more, in one instruction (a signal
  // handler on this thread runs before or after it, never inside; engine.cpp).
  if (FL_UNLIKELY((t_seen_batch ^ key) >= kSeenBatch)) return 2;
#if defined(__x86_64__)
  asm volatile("incq %0" : "+m"(t_seen_batch));
#else
  __atomic_fetch_add(&t_seen_batch, 1, __ATOMIC_RELAXED);
#endif
  return 1;
}

[[gnu::always_inline]] inline bool fd_call_quiet(std::uint32_t call, int fd) noexcept {
  const ControlBlock* const block = g_block.load(std::memory_order_acquire);
  if (!block) return false;
  std::uint64_t key = 0;
  const int quiet = fd_quiet_test(call, fd, block->header, key);
  if (FL_UNLIKELY(quiet == 2)) seen_batch_turn(key);
  return quiet != 0;
}

// The wrappers' form, which makes no call (so the wrapper builds no frame): false also when
// the batch must turn, once in kSeenBatch calls; the slow path then asks fd_call_quiet.
// `armed`: the wrapper's armed_now(), which found the call's family armed.
[[gnu::always_inline]] inline bool fd_call_quiet_counted(std::uint32_t call, int fd,
                                                         const ArmedNow& armed) noexcept {
  std::uint64_t key;
  return fd_quiet_test(call, fd, *armed.header(), key) == 1;
}

// The calls some fault names, as of one generation: a process-local copy of the compiled
// rules' `calls_any` (engine_internal.h), which the rules rebuild publishes (engine_rules.cpp)
// together with the generation it was built for, plus one (`tag`; 0 while a rebuild
// rewrites it, and before the first). decide() returns at once, counting nothing, for a call
// no fault names; call_named_by_none lets a slow path see that without the Guard, the
// arguments and decide()'s hazard pointer: a call of an armed family that no fault names
// (pwrite under a fault naming only `write`). Read seqlock-style, lock- and allocation-free
// (a signal handler may ask); a copy for another generation than the block header's current
// one is never used, so an edit that starts naming the call (add, set, enable: each moves
// the generation) takes effect on the very next call, which decides and rebuilds. A forked
// child inherits the copy, still keyed by the generation.
struct NamedCalls {
  std::atomic<std::uint64_t> tag;
  std::atomic<std::uint64_t> mask[2];
};
extern NamedCalls g_named_calls;

// True when, under the block's current generation, no fault names `call`: the caller runs the
// real call, exactly as when decide() says no (nothing is counted). False when unsure.
[[gnu::always_inline]] inline bool call_named_by_none(std::uint32_t call) noexcept {
  const ControlBlock* const block = g_block.load(std::memory_order_acquire);
  if (!block || call >= 128) return false;
  const std::uint64_t want = block->header.generation.load(std::memory_order_acquire) + 1;
  // Acquire loads, not a fence (as seqlock.h, and TSan checks it): a mask written after the
  // writer's tag 0 makes the second tag load see 0 or later.
  const std::uint64_t tag = g_named_calls.tag.load(std::memory_order_acquire);
  const std::uint64_t mask = g_named_calls.mask[call / 64].load(std::memory_order_acquire);
  return tag == want && g_named_calls.tag.load(std::memory_order_relaxed) == tag &&
         !(mask & (1ull << (call % 64)));
}

// The same, out of line: for slow paths instantiated once per call (fd_space_slow), where an
// inline copy in each would cost the shim's size more than the call costs them.
bool call_named_by_none_call(std::uint32_t call) noexcept;

// Quota: reserves up to `want` bytes of the fault's shared quota; returns how many may be
// written (0 = full). `unused` bytes of a reservation are given back after the real call.
std::uint64_t quota_reserve(const Decision& d, std::uint64_t want) noexcept;
// Counts a quota bite as an injection (times, max_faults); false when the fault is spent.
bool quota_claim(const Decision& d) noexcept;
void quota_release(const Decision& d, std::uint64_t unused) noexcept;

// Holds the thread for the decision's delay (shim_wait: a cancellation point where the call is
// one; a signal handler does not shorten it). Ends early when the fault stops holding the
// call — panic, the TTL, the fault disabled, removed, out of its window, or edited so that
// it no longer matches the call: then `d` becomes a delay-only decision, the call runs
// unfaulted, and it returns false — or when an edit shortened the fault's delay below what
// was already waited: then the rest of the decision stands (true). Every slow path calls it
// first thing after an injecting decision, delay or not, so it is also where an injected call
// is the cancellation point the real call is. Not noexcept, and neither may its callers be
// (wait.h).
bool apply_delay(const Guard& guard, Decision& d, const CallArgs& args);

// Flips d.corrupt_bits bits in buf[0..len), positions drawn from the seeded stream.
void corrupt_buffer(const Decision& d, void* buf, std::size_t len) noexcept;

// Bytes a short transfer lets through for a request of `count` (at least 1).
std::uint64_t short_length(const Decision& d, std::uint64_t count) noexcept;

// Records one injected fault: event ring, log file line, stderr line. `bytes` is what the
// call transferred or was allowed to (short/quota), -1 if not applicable.
void emit_event(const Decision& d, const CallArgs& args, std::int64_t bytes) noexcept;

// Terminates the process with the decision's signal, as a real crash would.
// Ends the process with the decision's signal; for a power cut, first flags the cut in the
// control block and SIGKILLs every other member of the session it can see.
[[noreturn]] void crash_now(const Decision& d) noexcept;

// The Action bit an event reports for `d`.
inline std::uint32_t event_action(const Decision& d) {
  return d.powercut ? std::uint32_t{kActPowercut} : d.action ? d.action : std::uint32_t{kActDelay};
}

// Per-process state rebuilt after fork (pid, process name).
void engine_after_fork_child() noexcept;
// Frees every compiled rule copy replaced by live edits, read or not. Only safe when no other
// thread can be inside decide(): for single-threaded fuzzers, never called by the shim (which
// frees a replaced copy itself once no thread reads it).
void engine_reclaim_retired_rules_unsafe() noexcept;
// Compiled rule copies of this process, for tests: built, freed, leaked (never to be freed),
// and retired (replaced, waiting for their last reader). Live = built - freed - leaked.
struct RulesMemory {
  std::uint64_t built = 0;
  std::uint64_t freed = 0;
  std::uint64_t leaked = 0;
  std::uint64_t retired = 0;
};
RulesMemory engine_rules_memory() noexcept;
void engine_reset_process_identity() noexcept;
// The program renamed a thread (prctl PR_SET_NAME, pthread_setname_np): re-reads the process
// name, and re-evaluates `process` selectors if it changed.
void engine_process_renamed() noexcept;
// The process name (comm) for event lines, in a per-thread buffer valid until the next call.
const char* engine_process_name() noexcept;

// The seccomp backend (controller/seccomp/) decides inside `faultline run` for another process.
// The identity the `process` selector matches and event lines name is then that process's
// (comm and the path of its executable; the rules re-evaluate `process` when it changes), and
// event lines carry its pid, tid and descriptor number instead of this process's (`local_fd`
// is the duplicate the decision looked at, `remote_fd` the program's own number for it).
void engine_set_process_identity(const char* comm, const char* exe) noexcept;
struct EventCaller {
  pid_t pid;
  pid_t tid;
  int local_fd;
  int remote_fd;
};
// For this thread's next events; nullptr: this process.
void engine_set_event_caller(const EventCaller* caller) noexcept;

}  // namespace faultline::shim
