// What the policy compiler and the controller know about the interposed calls: the rows of
// calls/calls.def without their C signatures. Call ids are the row order of that file, the
// same ids the shim uses for FaultSpec::calls_mask.
#pragma once

#include <array>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string_view>
#include <vector>

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

// The errnos a call's man page lists: the `errnos` column of calls.def names one of these
// sets. An `error` outside its call's set still works but earns a load-time warning.
struct ErrnoSet {
  std::string_view name;     // "kErrWrite", for messages and tests
  bool any;                  // every errno (@dns: an errno becomes EAI_SYSTEM)
  std::array<int, 48> errs;  // the first `count` are the set
  std::size_t count;
  constexpr bool contains(int err) const {
    if (any) return true;
    for (std::size_t i = 0; i < count; ++i)
      if (errs[i] == err) return true;
    return false;
  }
};
template <std::size_t N>
constexpr ErrnoSet errno_set(std::string_view name, const int (&errs)[N]) {
  static_assert(N <= 48, "ErrnoSet holds 48 errnos");
  ErrnoSet set{name, false, {}, N};
  for (std::size_t i = 0; i < N; ++i) set.errs[i] = errs[i];
  return set;
}

// Per kind of call, the errnos the man pages list (write(2), fsync(2), read(2), open(2),
// dup(2), pipe(2), fclose(3), malloc(3), socket(2)..., rename(2), unlink(2), truncate(2),
// fallocate(2), close(2)...).
inline constexpr ErrnoSet kErrWrite =
    errno_set("kErrWrite", {EAGAIN, EBADF, EDESTADDRREQ, EDQUOT, EFAULT, EFBIG, EINTR, EINVAL, EIO,
                            ENOSPC, EPERM, EPIPE, ESPIPE, EOVERFLOW, ENXIO, EOPNOTSUPP});
inline constexpr ErrnoSet kErrFsync = errno_set(
    "kErrFsync", {EBADF, EINTR, EIO, EROFS, EINVAL, ENOSPC, EDQUOT, ESPIPE, ENOMEM, EBUSY});
inline constexpr ErrnoSet kErrRead = errno_set(
    "kErrRead",
    {EAGAIN, EBADF, EFAULT, EINTR, EINVAL, EIO, EISDIR, ESPIPE, EOVERFLOW, ENXIO, EOPNOTSUPP});
inline constexpr ErrnoSet kErrOpen = errno_set(
    "kErrOpen",
    {EACCES, EBUSY,      EDQUOT,       EEXIST, EFAULT, EFBIG,   EINTR,       EINVAL, EISDIR,
     ELOOP,  EMFILE,     ENAMETOOLONG, ENFILE, ENODEV, ENOENT,  ENOMEM,      ENOSPC, ENOTDIR,
     ENXIO,  EOPNOTSUPP, EOVERFLOW,    EPERM,  EROFS,  ETXTBSY, EWOULDBLOCK, EBADF});
// malloc(3): ENOMEM only; the aligned allocators also report a bad alignment (EINVAL).
inline constexpr ErrnoSet kErrMemory = errno_set("kErrMemory", {ENOMEM});
inline constexpr ErrnoSet kErrMemoryAligned = errno_set("kErrMemoryAligned", {ENOMEM, EINVAL});
// Every @net call, and read/write/readv/writev aimed at a socket.
inline constexpr ErrnoSet kErrNet =
    errno_set("kErrNet", {EACCES,      EPERM,        EADDRINUSE,   EADDRNOTAVAIL, EAFNOSUPPORT,
                          EAGAIN,      EALREADY,     EBADF,        ECONNREFUSED,  EFAULT,
                          EINPROGRESS, EINTR,        EISCONN,      ENETUNREACH,   ENOTSOCK,
                          EPROTOTYPE,  ETIMEDOUT,    EHOSTUNREACH, EHOSTDOWN,     ENETDOWN,
                          ENETRESET,   ECONNRESET,   ECONNABORTED, EMFILE,        ENFILE,
                          ENOBUFS,     ENOMEM,       EPROTO,       EINVAL,        EOPNOTSUPP,
                          EPIPE,       EMSGSIZE,     ENOTCONN,     EDESTADDRREQ,  EPROTONOSUPPORT,
                          ELOOP,       ENAMETOOLONG, ENOENT,       ENOTDIR,       EROFS,
                          EIO});
// @dns: resolver errors are checked by name (EAI_*); an errno becomes EAI_SYSTEM.
inline constexpr ErrnoSet kErrDns{"kErrDns", true, {}, 0};
// @fs: the directory and size calls; those that reserve space (ftruncate, fallocate,
// posix_fallocate); close, which reports only what a deferred write-back or an interrupted
// flush can (NFS: EIO, ENOSPC, EDQUOT).
inline constexpr ErrnoSet kErrFs =
    errno_set("kErrFs", {EACCES,  EBUSY,     EDQUOT, EEXIST, EFAULT,       EFBIG,   EINTR,  EINVAL,
                         EIO,     EISDIR,    ELOOP,  EMLINK, ENAMETOOLONG, ENOENT,  ENOMEM, ENOSPC,
                         ENOTDIR, ENOTEMPTY, EPERM,  EROFS,  EXDEV,        ETXTBSY, EBADF});
inline constexpr ErrnoSet kErrFsSpace =
    errno_set("kErrFsSpace", {EBADF, EFBIG, EINTR, EINVAL, EIO, ENODEV, ENOSPC, EDQUOT, EOPNOTSUPP,
                              EPERM, ESPIPE, ETXTBSY, EROFS, EACCES});
inline constexpr ErrnoSet kErrClose = errno_set("kErrClose", {EBADF, EINTR, EIO, ENOSPC, EDQUOT});

// The `natural` column of calls.def: the error a call fails with when the resource behind it
// does, on a file and on a socket (docs/policy.md: the error of a fault given no action).
struct NaturalError {
  std::string_view file;
  std::string_view socket;
};
// The disk failed; on a socket (read/write aimed at one) the connection was reset.
inline constexpr NaturalError kNatural_EIO_OR_ECONNRESET{"EIO", "ECONNRESET"};
// @fs: the disk (or the NFS server) failed, on a socket's close too.
inline constexpr NaturalError kNatural_EIO{"EIO", "EIO"};
inline constexpr NaturalError kNatural_ENOMEM{"ENOMEM", "ENOMEM"};
inline constexpr NaturalError kNatural_EMFILE{"EMFILE", "EMFILE"};
inline constexpr NaturalError kNatural_ECONNREFUSED{"ECONNREFUSED", "ECONNREFUSED"};
inline constexpr NaturalError kNatural_ECONNRESET{"ECONNRESET", "ECONNRESET"};
inline constexpr NaturalError kNatural_EADDRINUSE{"EADDRINUSE", "EADDRINUSE"};
inline constexpr NaturalError kNatural_EAI_AGAIN{"EAI_AGAIN", "EAI_AGAIN"};

struct CallInfo {
  std::uint32_t id;
  std::string_view name;
  Family family;
  Failure failure;
  std::uint32_t actions;
  NaturalError natural;
  const ErrnoSet* errnos;
};

// calls.def names families in capitals.
inline constexpr Family kFamilyWRITE = kFamWrite, kFamilyFSYNC = kFamFsync, kFamilyREAD = kFamRead,
                        kFamilyOPEN = kFamOpen, kFamilyNET = kFamNet, kFamilyDNS = kFamDns,
                        kFamilyMEMORY = kFamMemory, kFamilyFS = kFamFs;

// The faulted rows get ids; TRACKED rows (bookkeeping, never faulted) do not.
enum CallId : std::uint32_t {
#define FL_CALL(fam, name, ret, params, args, failure, natural, errnos, actions, resolver) \
  FL_IF_FAULTED(fam, kCall_##name, )
#include "calls/calls.def"
  kCallCount
};
static_assert(kCallCount <= 128, "FaultSpec::calls_mask holds 128 calls");

// Every faulted row, in id order: everything the controller and the shim know of a call
// besides its C signature.
inline constexpr std::array<CallInfo, kCallCount> kCallTable = {{
#define FL_CALL(fam, name, ret, params, args, failure, natural, errnos, actions, resolver) \
  FL_IF_FAULTED(fam,                                                                       \
                CallInfo{kCall_##name, #name, kFamily##fam, Failure::failure, actions,     \
                         kNatural_##natural, &errnos}, )
#include "calls/calls.def"
}};

// How call `id` reports an error: usable in a constant expression, e.g. by a wrapper that
// picks its failure code at compile time (call_failure(kCall_fwrite) == kShortCount).
constexpr Failure call_failure(std::uint32_t id) { return kCallTable[id].failure; }

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
  for (const CallInfo& call : kCallTable) {
    mix_name(call.name);
    mix_number(call.family);
    mix_number(call.actions);
  }
  for (std::uint64_t v :
       {sizeof(ControlHeader), sizeof(FaultSpec), sizeof(FaultSlot), sizeof(EventSlot),
        sizeof(MemberStats), sizeof(ControlBlock), offsetof(ControlHeader, armed_mask),
        offsetof(ControlHeader, pids), offsetof(FaultSlot, spec_words), offsetof(FaultSlot, seen),
        offsetof(FaultSpec, calls_mask), offsetof(FaultSpec, actions)})
    mix_number(v);
  return h;
}();

// A call's family without a bounds-checked table walk: the shim asks on its armed path.
inline constexpr Family call_family(std::uint32_t id) { return kCallTable[id].family; }

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
// Resolver errors for `error` on @dns calls: "EAI_AGAIN" -> EAI_AGAIN (< 0), and the h_errno
// names gethostbyname* report: HOST_NOT_FOUND -> EAI_NONAME, TRY_AGAIN -> EAI_AGAIN,
// NO_RECOVERY -> EAI_FAIL, NO_DATA/NO_ADDRESS -> EAI_NODATA. Here, beside errno_name, because
// an event's error is either.
std::optional<int> dns_error_from_name(std::string_view name);
std::string_view dns_error_name(int eai);  // "EAI_AGAIN"; "" if unknown
std::vector<std::string_view> dns_error_names();
// How the call fails when the resource behind it does (docs/policy.md: the error of a fault
// given no action; `explore`'s default): EIO for the disk, ENOMEM, EMFILE, ECONNREFUSED for
// connect, ECONNRESET for the other @net calls (and for read/write `on_socket`), EAI_AGAIN.
// The row's `natural` column.
constexpr std::string_view natural_error(const CallInfo& call, bool on_socket) {
  return on_socket ? call.natural.socket : call.natural.file;
}
// Errnos the call's man page says it can return (for the load-time warning): the row's
// `errnos` set.
constexpr bool errno_plausible(const CallInfo& call, int err) { return call.errnos->contains(err); }

std::string_view action_name(std::uint32_t action_bit);  // "error", "delay", ...

}  // namespace faultline
