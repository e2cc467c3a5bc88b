// The control block: one per session, in POSIX shared memory (/dev/shm/faultline.<name>).
//
// This is an ABI shared by every process of a session and by the `faultline` controller,
// possibly built from different versions: it is pointer-free, fixed-width, standard-layout,
// and versioned (magic + abi_version + block_size, validated on attach; the magic is written
// last with release order so a half-initialised block is never trusted). Only lock-free
// atomics live here: a process killed while holding a mutex would hang the whole session.
//
// Faults are edited by a single writer at a time (writers serialise with flock(2) on the shm
// file); each fault's spec is published through a seqlock (spec_seq odd while writing) and
// the block-wide `generation` is bumped after every edit, so the shim rebuilds its private
// compiled rules only when something changed. Counters are plain shared atomics.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <type_traits>

namespace faultline {

inline constexpr std::uint64_t kBlockMagic = 0x31454e494c544c46ull;  // "FLTLINE1"
// Moves whenever the meaning of a byte of the block or of a call id changes (docs/architecture.md,
// "The ABI"); ControlHeader::abi_fingerprint catches a change whose bump was forgotten.
// 2: [log] max_rate and max_size. 3: abi_fingerprint. 4: selector lists (glob fields hold
// packed lists, faultline/glob.h; `addr` is an array of AddrEntry), network shaping (latency,
// bandwidth, loss, eof, after_bytes) and p99. 5: the @fs family (kFamFs; rename, link, unlink,
// mkdir, truncate, fallocate, close... rows in calls.def; close moved from bookkeeping to a row),
// `powercut`, the [durability] settings and the power-cut state in the header,
// and ControlHeader::seccomp_families (the seccomp backend's trapped families).
inline constexpr std::uint32_t kAbiVersion = 5;
inline constexpr std::uint32_t kMaxFaults = 64;
inline constexpr std::uint32_t kMaxPids = 256;
inline constexpr std::uint32_t kEventSlots = 512;
inline constexpr std::uint32_t kNameMax = 32;   // fault name incl. NUL ([A-Za-z0-9_.-]{1,31})
inline constexpr std::uint32_t kGlobMax = 256;  // path glob incl. NUL
inline constexpr std::uint32_t kShortGlobMax = 64;
inline constexpr std::uint32_t kLogPathMax = 512;
inline constexpr std::uint64_t kDefaultLogMaxRate = 1000;          // [log] max_rate
inline constexpr std::uint64_t kDefaultLogMaxSize = 256ull << 20;  // [log] max_size
inline constexpr std::uint32_t kSessionNameMax = 64;
inline constexpr std::uint32_t kUnixGlobMax = 128;  // @net `addr` unix globs, packed, incl. NULs
inline constexpr std::uint32_t kAddrMax = 8;        // @net `addr` list entries
inline constexpr std::uint32_t kResolveMax = 8;     // @dns `resolve_to` addresses
inline constexpr std::uint32_t kSiteMax = 1024;     // explore `site` incl. NUL
inline constexpr std::uint32_t kMaxSiteDepth = 16;  // explore: frames in a call site
inline constexpr std::uint32_t kDefaultSiteDepth = 8;

// Families: one bit each in ControlHeader::armed_mask, the only word the fast path reads.
enum Family : std::uint32_t {
  kFamWrite = 1u << 0,
  kFamFsync = 1u << 1,
  kFamRead = 1u << 2,
  kFamOpen = 1u << 3,
  kFamNet = 1u << 4,
  kFamDns = 1u << 5,
  kFamMemory = 1u << 6,
  kFamFs = 1u << 7,  // directory entries and file sizes: rename, link, unlink, truncate, close...
  // Not a policy family: set while the session tracks [durability] paths, whatever is armed
  // (panic included), so that the write/sync/open wrappers leave their fast path for it.
  kFamDurable = 1u << 8,
};

// The armed word's upper half is the @memory size floor: the smallest `size` that any enabled
// @memory fault can match (0 when one has no size selector; saturated at kMemoryFloorMax).
// Allocations below it take the fast path after one compare. It lives in the same word as
// the family bits, so every writer that re-arms also re-publishes it: a live edit can never
// leave a stale floor that hides allocations a fault now matches.
inline constexpr unsigned kMemoryFloorShift = 32;
inline constexpr std::uint64_t kMemoryFloorMax = 0xffffffffull;

// Actions, combinable as a bitmask (one main action, plus optional delay).
enum Action : std::uint32_t {
  kActError = 1u << 0,
  kActDelay = 1u << 1,
  kActShort = 1u << 2,
  kActCorrupt = 1u << 3,
  kActQuota = 1u << 4,
  kActLie = 1u << 5,
  kActCrash = 1u << 6,
  kActReset = 1u << 7,
  kActBlackhole = 1u << 8,
  kActResolve = 1u << 9,
  kActLimit = 1u << 10,
  kActLatency = 1u << 11,    // @net: inbound data and connects become ready later
  kActBandwidth = 1u << 12,  // @net per socket and direction, @write/@read per file
  kActLoss = 1u << 13,       // @net: TCP retransmission delays, UDP drops
  kActEof = 1u << 14,        // @net receives: the connection ends cleanly
  kActPowercut = 1u << 15,   // every process of the session dies; unsynced data is lost
};

enum CrashWhen : std::uint8_t { kCrashBefore = 0, kCrashAfter = 1 };

inline constexpr std::uint64_t kUnlimited = ~0ull;
inline constexpr std::int64_t kForever = -1;

// One entry of an `addr` list. Compiled by policy/net_policy.cpp, matched by
// shim/engine/net_select.cpp. A unix entry's glob is the matching entry (in order) of the globs
// packed in FaultSpec::addr_unix.
struct AddrEntry {
  std::uint8_t kind;      // NetAddrKind: inet or unix
  std::uint8_t family;    // 0 = any ("*"), 4 = IPv4, 6 = IPv6
  std::uint8_t prefix;    // CIDR prefix length in bits
  std::uint8_t any_port;  // 1 = port "*" or none given
  std::uint16_t port;     // host byte order
  std::uint8_t negated;   // 1 = a "!" entry: what it matches is excluded
  std::uint8_t reserved;
  std::uint8_t bytes[16];  // network order; IPv4 in the first 4 bytes
};
static_assert(sizeof(AddrEntry) == 24);

// The compiled, validated form of one [[fault]] table. Trivially copyable POD, a multiple
// of 8 bytes so it can be published word by word through the seqlock with atomic loads.
struct FaultSpec {
  char name[kNameMax];
  std::uint64_t calls_mask[2];  // bit i = call id i of calls/calls.def
  std::uint32_t families;       // families of the calls (for the armed mask)
  std::uint32_t actions;        // Action bits

  // selectors (empty string = not given); each glob field holds a packed glob list
  // (faultline/glob.h): one glob, or several NUL-terminated ones ended by an empty one
  char path[kGlobMax];
  char process[kShortGlobMax];
  char thread[kShortGlobMax];
  std::uint64_t size_min;  // inclusive
  std::uint64_t size_max;  // inclusive; kUnlimited when open-ended
  std::uint32_t has_size;

  // action parameters
  std::int32_t error;  // errno value
  std::int64_t delay_ns;
  std::int64_t jitter_ns;
  std::uint32_t short_percent;  // 1..100, or 0 when short_bytes is used
  std::uint32_t corrupt_bits;
  std::uint64_t short_bytes;
  std::uint64_t quota_bytes;
  std::int32_t crash_signal;
  std::uint8_t crash_when;
  std::uint8_t enabled_initially;
  std::uint8_t reserved0[2];

  // triggers
  double probability;  // 0..1
  std::uint64_t after;
  std::uint64_t every;  // >= 1
  std::uint64_t times;  // kUnlimited = unlimited
  std::int64_t start_after_ns;
  std::int64_t duration_ns;  // kForever = forever

  // ---- @memory and exhaustion (limit) ----
  std::uint64_t fd_limit;  // kActLimit: a call that would leave more fds open than this fails

  // ---- @net / @dns (addr, host, reset, blackhole, resolve_to, timeout) ----
  // Compiled by policy/net_policy.cpp, matched by shim/engine/net_select.cpp.
  char host[kGlobMax];           // `host`: glob list on the name being resolved ("" = any)
  char addr_unix[kUnixGlobMax];  // `addr` "unix:GLOB" entries: their globs packed as a glob
                                 // list, in order, a negated one with its leading '!'
  AddrEntry addr[kAddrMax];      // `addr` entries in the policy's order ("" = any)
  std::uint8_t addr_count;       // entries used in addr; 0 = no `addr`
  std::uint8_t rw_scope;         // NetRwScope bits: which fds read/write/readv/writev hit
  std::uint8_t resolve_count;    // resolve_to: addresses used in resolve_addr
  std::uint8_t addr_reserved[5];
  std::int32_t dns_error;  // EAI_* code (< 0) an `error` gives @dns calls; 0 = none
  std::uint32_t net_reserved;
  std::int64_t timeout_ns;  // blackhole: a blocking connect gives up after this; 0 = 20s
  std::uint8_t resolve_family[kResolveMax];    // 4 or 6
  std::uint8_t resolve_addr[kResolveMax][16];  // network order

  // ---- targeting (stack, log_stack) ----
  // Compiled by policy/policy.cpp, matched by shim/engine/stack.cpp (the engine asks it last).
  char stack[kGlobMax];    // `stack`: glob on any frame's function or object ("" = any)
  std::uint8_t log_stack;  // 1: event lines of this fault carry the symbolised stack
  std::uint8_t targeting_reserved[7];

  // ---- explore (site) ----
  // Compiled by policy/site_policy.cpp, matched and recorded by shim/engine/site.cpp; driven by
  // `faultline explore` (controller/explore.cpp). Only faults that set one of these unwind.
  char site[kSiteMax];       // `site`: "obj+0xoff;obj+0xoff" return addresses, innermost
                             // first ("" = any): the call's stack must start with them
  char record[kLogPathMax];  // `record`: append each distinct call site of the matching calls
                             // to this file, one line each; the fault never injects ("" = off)
  std::uint32_t site_depth;  // `site_depth`: frames per recorded site (0 = kDefaultSiteDepth)
  std::uint32_t explore_reserved;

  // ---- network shaping (latency, bandwidth, loss, eof, after_bytes) and p99 ----
  // Compiled by policy/policy.cpp; drawn by the engine (shim/engine/engine.cpp, make_decision) and
  // applied by the @net hold machinery and the byte-moving path.
  std::int64_t latency_ns;      // kActLatency: the median added to inbound readiness
  std::int64_t p99_ns;          // with delay or latency: log-normal, this 99th percentile; 0 = none
  std::uint64_t bandwidth_bps;  // kActBandwidth: bytes per second, >= 1
  double loss;                  // kActLoss: chance per receive (TCP) or datagram (UDP), 0..1
  std::uint64_t after_bytes;    // trigger: bytes passed on the connection in the call's
                                // direction before the fault acts (0 = from the first byte)
};
static_assert(std::is_trivially_copyable_v<FaultSpec>);
static_assert(std::is_standard_layout_v<FaultSpec>);
static_assert(sizeof(FaultSpec) % 8 == 0);

inline constexpr std::size_t kSpecWords = sizeof(FaultSpec) / 8;

enum SlotState : std::uint32_t { kSlotFree = 0, kSlotUsed = 1 };

struct FaultSlot {
  std::atomic<std::uint32_t> state;     // SlotState
  std::atomic<std::uint32_t> enabled;   // 0/1; flipped live by enable/disable
  std::atomic<std::uint64_t> spec_seq;  // seqlock over spec_words: odd while a writer edits
  std::atomic<std::uint64_t> spec_words[kSpecWords];
  // Counters shared by every process of the session.
  std::atomic<std::uint64_t> seen;      // calls in `calls` that reached this fault
  std::atomic<std::uint64_t> matched;   // ... whose selectors matched (the trigger's n)
  std::atomic<std::uint64_t> injected;  // ... that were injected
  std::atomic<std::uint64_t> quota_used;
  std::atomic<std::int64_t> enabled_since_ns;    // CLOCK_MONOTONIC; window origin for live enables
  std::atomic<std::int64_t> first_injection_ns;  // CLOCK_REALTIME, 0 = none yet
  std::atomic<std::int64_t> last_injection_ns;
};

enum SessionFlags : std::uint32_t {
  kFlagPanicked = 1u << 0,     // kill switch thrown (`panic`); `resume` clears it
  kFlagTtlExpired = 1u << 1,   // [safety] ttl passed
  kFlagBudgetSpent = 1u << 2,  // [safety] max_faults reached
  kFlagPowercut = 1u << 3,     // a power cut was pulled: the session is being killed
};

// One injected fault, as shown by `faultline events`. Words are atomics so a reader racing a
// writer sees a torn slot only as a sequence mismatch, never as a data race.
struct EventSlot {
  std::atomic<std::uint64_t> seq;   // 2*index+1 while written, 2*index+2 when complete
  std::atomic<std::int64_t> ts_ns;  // CLOCK_REALTIME
  std::atomic<std::uint32_t> pid;
  std::atomic<std::uint32_t> tid;
  std::atomic<std::uint32_t> fault;  // slot index
  std::atomic<std::uint32_t> call;   // call id
  std::atomic<std::int32_t> fd;
  std::atomic<std::int32_t> error;     // errno for kActError, the signal for kActCrash, else 0
  std::atomic<std::uint32_t> action;   // the Action bit applied
  std::atomic<std::uint32_t> present;  // EventPresent: which of size/bytes apply (0 is a value)
  std::atomic<std::uint64_t> size;
  std::atomic<std::uint64_t> bytes;
  std::atomic<std::int64_t> delay_ns;
  std::atomic<std::uint64_t> path_words[16];  // 128 bytes, NUL-padded, truncated
  // Names as they were at the injection, so that `faultline events --json` prints the same
  // line as the event log even after the process exited or the fault slot was reused.
  std::atomic<std::uint64_t> process_words[2];           // comm, NUL-padded (16 bytes)
  std::atomic<std::uint64_t> fault_words[kNameMax / 8];  // fault name, NUL-padded
};

enum EventPresent : std::uint32_t {
  kEventHasSize = 1u << 0,
  kEventHasBytes = 1u << 1,
  kEventHasAddr = 1u << 2,  // @net: path_words hold the socket's address ("127.0.0.1:6379")
  kEventHasHost = 1u << 3,  // @dns: path_words hold the name looked up
};

enum DurabilityFlags : std::uint32_t {
  kDurabilityKeepOnFsyncError = 1u << 0,  // on_fsync_error = "keep" (default "drop")
  kDurabilityTorn = 1u << 1,              // torn = true
};

struct ControlHeader {
  std::atomic<std::uint64_t> magic;  // kBlockMagic, stored last (release) at creation
  std::uint32_t abi_version;
  std::uint32_t header_size;  // sizeof(ControlHeader)
  std::uint64_t block_size;   // sizeof(ControlBlock)
  std::uint32_t owner_uid;
  std::uint32_t max_faults;
  // kAbiFingerprint (calls/calls.h) of the build that made the block: a hash of the call
  // table's rows and of the block's layout. Checked on attach right after the version.
  std::uint64_t abi_fingerprint;
  char session[kSessionNameMax];

  // The fast path's word: families with at least one enabled fault (low bits), the @memory
  // size floor (bits 32-63, kMemoryFloorShift), 0 when panicked, expired or over budget.
  // Recomputed by every writer after an edit.
  std::atomic<std::uint64_t> armed_mask;
  std::atomic<std::uint32_t> flags;  // SessionFlags
  std::atomic<std::uint32_t> log_stderr;
  std::atomic<std::uint64_t> generation;  // bumped after every edit to any fault
  std::atomic<std::uint64_t> seed;
  std::atomic<std::int64_t> start_mono_ns;      // session start, CLOCK_MONOTONIC
  std::atomic<std::int64_t> start_real_ns;      // session start, CLOCK_REALTIME
  std::atomic<std::int64_t> ttl_ns;             // kForever = none
  std::atomic<std::uint64_t> max_faults_total;  // kUnlimited = none
  std::atomic<std::uint64_t> injected_total;
  std::atomic<std::uint64_t> log_path_seq;  // seqlock over log_path_words
  std::atomic<std::uint64_t> log_path_words[kLogPathMax / 8];
  // [log] max_rate and max_size (policy.md): policy-level like the path, so every member of
  // the session bounds its own log lines the same way (shim/engine/log_limit.cpp).
  std::atomic<std::uint64_t> log_max_rate;  // event lines per second per process, >= 1
  std::atomic<std::uint64_t> log_max_size;  // bytes; the log stops growing here
  // Identity (hash of device and inode) of the log file a member already wrote the "cut"
  // line to, so that one full file gets one cut line, whichever process hit the limit.
  std::atomic<std::uint64_t> log_cut_file;
  // [durability] (policy.md, "Durability"): written once at creation, read by every member.
  char durability_path[kGlobMax];  // packed glob list of tracked paths; "" = nothing tracked
  std::uint32_t durability_flags;  // DurabilityFlags
  std::uint32_t durability_reserved;
  char undo_dir[kLogPathMax];  // where members keep undo data ("" = nothing tracked)
  // The process that reverts tracked files after a cut (`faultline run`); 0 = none, and then
  // `faultline powercut` reverts them itself once every member is dead.
  std::atomic<std::int32_t> cut_owner_pid;
  std::atomic<std::uint32_t> cut_reserved;
  std::atomic<std::int64_t> cut_real_ns;     // CLOCK_REALTIME of the cut, 0 = none yet
  std::atomic<std::int32_t> pids[kMaxPids];  // members (0 = free slot)
  std::atomic<std::uint64_t> event_head;     // next event index
  std::atomic<std::uint64_t> events_dropped;
  // The seccomp backend (controller/seccomp/): the families whose system calls the program's
  // filter traps, with kSeccompBackend set; 0 under the preload backend. A filter cannot
  // change after exec, so `faultline add` refuses a fault of a family not in it.
  std::atomic<std::uint32_t> seccomp_families;
  std::uint32_t seccomp_reserved;
};
inline constexpr std::uint32_t kSeccompBackend = 1u << 31;

// Per-member counters, parallel to ControlHeader::pids: members[i] counts for the process in
// pids[i], and is zeroed when a process claims that pid slot. For `faultline watch`.
struct MemberStats {
  std::atomic<std::uint64_t> seen;              // armed calls this process brought to the engine
  std::atomic<std::uint64_t> injected;          // injections in this process
  std::atomic<std::int64_t> last_injection_ns;  // CLOCK_REALTIME, 0 = none yet
  // The member's pid namespace (inode of /proc/self/ns/pid), 0 = unknown: its pid means
  // something only there, so only a process of the same namespace judges it dead (this was
  // a reserved word: same layout, same fingerprint).
  std::atomic<std::uint64_t> pid_ns;
};

struct ControlBlock {
  ControlHeader header;
  FaultSlot faults[kMaxFaults];
  EventSlot events[kEventSlots];
  MemberStats members[kMaxPids];
};

static_assert(std::is_standard_layout_v<ControlBlock>);
static_assert(std::atomic<std::uint64_t>::is_always_lock_free);
static_assert(std::atomic<std::int64_t>::is_always_lock_free);
static_assert(std::atomic<std::uint32_t>::is_always_lock_free);

}  // namespace faultline
