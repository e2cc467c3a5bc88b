// What the policy compiler and the controller know about the interposed calls: the rows of
// shim/calls.def without their C signatures. Call ids are the row order of that file, the
// same ids the shim uses for FaultSpec::calls_mask.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string_view>

#include "faultline/control_block.h"

namespace faultline {

enum class Failure : std::uint8_t {
  kMinusOneErrno,  // -1 and errno
  kNullErrno,      // NULL and errno
  kErrnoReturn,    // returns the error number (posix_memalign)
  kEofErrno,       // stdio: EOF, errno and the stream's error flag
  kShortCount,     // fwrite: a short item count, errno and the error flag
  kVoid,           // cannot report an error (sync)
  kEaiReturn,      // @dns: returns an EAI_* code (getaddrinfo, getnameinfo)
  kNullHerrno,     // @dns: NULL and h_errno (gethostbyname, gethostbyname2, gethostbyaddr)
  kHerrnoResult,   // @dns *_r: *result = NULL, *h_errnop set, an error number returned
};

// Actions each kind of call accepts. `kActIo` calls move bytes (short/corrupt/quota apply).
inline constexpr std::uint32_t kActBasic = kActError | kActDelay | kActCrash | kActPowercut;
// `bandwidth` on a file holds the thread as long as its bytes need at that rate.
inline constexpr std::uint32_t kActIo =
    kActBasic | kActShort | kActCorrupt | kActQuota | kActBandwidth;
inline constexpr std::uint32_t kActCopy = kActBasic | kActShort | kActQuota | kActBandwidth;
inline constexpr std::uint32_t kActIoRead = kActBasic | kActShort | kActCorrupt | kActBandwidth;
inline constexpr std::uint32_t kActSync = kActBasic | kActLie;
inline constexpr std::uint32_t kActSyncVoid = kActDelay | kActCrash | kActLie | kActPowercut;
// Calls that make fds (@open; socket/accept in @net): `limit` caps the open fds.
inline constexpr std::uint32_t kActFdNew = kActBasic | kActLimit;
// Allocations: error (NULL/ENOMEM), delay, crash, and quota as a per-process memory limit.
inline constexpr std::uint32_t kActMemory = kActBasic | kActQuota;
// @net: connect can be refused, reset or partitioned; accepted connections can be reset;
// the data calls move bytes (short/corrupt, no quota). sendmmsg/recvmmsg take no short/corrupt.
// Latency holds connects, accepts and receives (sends are never held: latency is inbound);
// bandwidth meters both directions; loss delays TCP receives and connects and drops UDP
// datagrams both ways; eof ends a receive.
inline constexpr std::uint32_t kActNetConnect =
    kActBasic | kActReset | kActBlackhole | kActLatency | kActLoss;
inline constexpr std::uint32_t kActNetAccept = kActFdNew | kActReset | kActLatency;
inline constexpr std::uint32_t kActNetSend =
    kActBasic | kActShort | kActCorrupt | kActReset | kActBlackhole | kActBandwidth | kActLoss;
inline constexpr std::uint32_t kActNetRecv = kActBasic | kActShort | kActCorrupt | kActReset |
                                             kActBlackhole | kActLatency | kActBandwidth |
                                             kActLoss | kActEof;
inline constexpr std::uint32_t kActNetMsgs = kActBasic | kActReset | kActBlackhole;
inline constexpr std::uint32_t kActNetRecvMsgs = kActNetMsgs | kActLatency | kActLoss | kActEof;
// @dns: forward lookups can be answered with other addresses; reverse lookups only fail.
inline constexpr std::uint32_t kActDnsForward = kActBasic | kActResolve;
inline constexpr std::uint32_t kActDnsReverse = kActBasic;
// @fs: the directory and size calls fail, stall or crash; the calls that reserve space
// (fallocate, posix_fallocate, ftruncate) also draw from a `quota` (a full disk).
inline constexpr std::uint32_t kActFs = kActBasic;
inline constexpr std::uint32_t kActFsSpace = kActBasic | kActQuota;

struct CallInfo {
  std::uint32_t id;
  std::string_view name;
  Family family;
  Failure failure;
  std::uint32_t actions;
};

// calls.def names families in capitals.
inline constexpr Family kFamilyWRITE = kFamWrite, kFamilyFSYNC = kFamFsync, kFamilyREAD = kFamRead,
                        kFamilyOPEN = kFamOpen, kFamilyNET = kFamNet, kFamilyDNS = kFamDns,
                        kFamilyMEMORY = kFamMemory, kFamilyFS = kFamFs;

enum CallId : std::uint32_t {
#define FL_CALL(fam, name, ret, params, args, failure, actions) kCall_##name,
#include "calls.def"
#undef FL_CALL
  kCallCount
};
static_assert(kCallCount <= 128, "FaultSpec::calls_mask holds 128 calls");

// What two builds must agree on to share a block: every call id's row (name, family,
// accepted actions, in table order) and the size and key offsets of the block's structures.
// A process built from other sources (a reordered or added row, a grown FaultSpec) gets
// another fingerprint and refuses the block, even where kAbiVersion was not bumped.
inline constexpr std::uint64_t kAbiFingerprint = [] {
  std::uint64_t h = 0xcbf29ce484222325ull;  // FNV-1a, byte by byte
  auto mix_byte = [&h](unsigned char b) {
    h ^= b;
    h *= 0x100000001b3ull;
  };
  auto mix_number = [&](std::uint64_t v) {
    for (int i = 0; i < 8; ++i) mix_byte(static_cast<unsigned char>(v >> (8 * i)));
  };
  auto mix_name = [&](std::string_view name) {
    for (char c : name) mix_byte(static_cast<unsigned char>(c));
    mix_byte(0);
  };
#define FL_CALL(fam, name, ret, params, args, failure, actions) \
  mix_name(#name);                                              \
  mix_number(kFamily##fam);                                     \
  mix_number(actions);
#include "calls.def"
#undef FL_CALL
  for (std::uint64_t v :
       {sizeof(ControlHeader), sizeof(FaultSpec), sizeof(FaultSlot), sizeof(EventSlot),
        sizeof(MemberStats), sizeof(ControlBlock), offsetof(ControlHeader, armed_mask),
        offsetof(ControlHeader, pids), offsetof(FaultSlot, spec_words), offsetof(FaultSlot, seen),
        offsetof(FaultSpec, calls_mask), offsetof(FaultSpec, actions)})
    mix_number(v);
  return h;
}();

// A call's family without a bounds-checked table walk: the shim asks on its armed path.
inline constexpr Family kCallFamily[] = {
#define FL_CALL(fam, name, ret, params, args, failure, actions) kFamily##fam,
#include "calls.def"
#undef FL_CALL
};
inline Family call_family(std::uint32_t id) { return kCallFamily[id]; }

std::span<const CallInfo> all_calls();
std::optional<CallInfo> find_call(std::string_view name);
const CallInfo& call_info(std::uint32_t id);

// "@write" -> kFamWrite; nullopt for an unknown family name.
std::optional<Family> find_family(std::string_view name);
std::string_view family_name(Family family);  // "@write"
// Families whose calls faultline interposes today; others are refused as "not supported yet".
inline constexpr std::uint32_t kSupportedFamilies =
    kFamWrite | kFamFsync | kFamRead | kFamOpen | kFamMemory | kFamNet | kFamDns | kFamFs;
std::uint64_t family_calls_mask(Family family, int word);

// errno names: "EIO" <-> 5. Every name the C library knows (strerrorname_np) is accepted,
// aliases too (EWOULDBLOCK, ENOTSUP, EDEADLOCK); so is a number ("71") from 1 to 4095.
std::optional<int> errno_from_name(std::string_view name);
std::string_view errno_name(int err);  // "" if unknown
// How the call fails when the resource behind it does (docs/policy.md: the error of a fault
// given no action; `explore`'s default): EIO for the disk, ENOMEM, EMFILE, ECONNREFUSED for
// connect, ECONNRESET for the other @net calls (and for read/write `on_socket`), EAI_AGAIN.
std::string_view natural_error(const CallInfo& call, bool on_socket);
// Errnos the call's man page says it can return (for the load-time warning).
bool errno_plausible(const CallInfo& call, int err);

std::string_view action_name(std::uint32_t action_bit);  // "error", "delay", ...

}  // namespace faultline
