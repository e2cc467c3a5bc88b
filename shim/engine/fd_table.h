// What each fd is, for selectors: its kind (file, socket, pipe...) and, per compiled rule,
// whether its path matches the rule's path glob. Filled lazily from /proc/self/fd on the
// first armed call that needs it, invalidated by close/dup2/dup3/fclose/close_range/closefrom,
// freopen, fdopen, fcntl(F_DUPFD*) and by every call that returns a new fd (so an fd number
// reused behind our back is re-learned).
//
// What no wrapper sees (a raw syscall(SYS_close/openat/dup3), an fd passed in by another
// library's internal call) cannot be invalidated, so each entry also keeps the identity of
// the open file it was learned from (fd_identity), and the engine checks it, one statx, before
// it acts on cached facts: only on the rare path that is about to inject, never per call.
//
// Lock-free: three atomic words per fd in chunks mapped on demand. A close racing a fill is
// detected by the slot's close generation, and the racing fill is used once, not cached.
#pragma once

#include <atomic>
#include <cstdint>

#include "shim/engine/fd_chunks.h"

namespace faultline::shim {

enum class FdKind : std::uint8_t { kUnknown = 0, kFile, kSocket, kPipe, kOther };

struct FdInfo {
  std::uint64_t path_match = 0;  // bit i: the path matches rule slot i's path glob
  std::uint64_t identity = 0;    // fd_identity() when the facts were learned; 0 = unknown
  // The slot's close generation these facts belong to, and whether they are in the table
  // under it (a fill that raced a close is used once, not cached): fd_set_verdict's key.
  std::uint32_t close_gen = 0;
  FdKind kind = FdKind::kUnknown;
  bool cached = false;  // from the table (may be stale), not learned just now
  bool in_table = false;
};

// A 64-bit key of the open file behind fd: device, inode and, where the filesystem records
// it, birth time (so an inode number reused by a new file is a different key); 0 when fd is
// not open. Sockets and pipes have their own inodes: a new socket is a new key.
std::uint64_t fd_identity(int fd) noexcept;

// Info for fd under the rules of `rules_epoch`; `match_paths` computes the match bits for a
// path when the slot has to be (re)filled.
using PathMatcher = std::uint64_t (*)(const char* path, void* ctx);
FdInfo fd_lookup(int fd, std::uint32_t rules_epoch, PathMatcher match_paths, void* ctx) noexcept;
// Forgets fd's entry and learns it afresh (the identity check found it stale).
FdInfo fd_relearn(int fd, std::uint32_t rules_epoch, PathMatcher match_paths, void* ctx) noexcept;
void fd_invalidate(int fd) noexcept;

// The verdict cache (engine.cpp, fd_call_quiet): one word per fd, "call C on this fd matches
// no fault under block generation G, and crediting `seen` means these slots". Layout:
//   bit 0 valid, bits 1-7 call id, bits 8-14 and 15-21 slot + 1 of the faults whose `seen`
//   the call counts (0: none), bit 22 set (so the `seen` batch key taken from the word is
//   never 0, the empty batch: engine.h), bits 23-31 zero, bits 32-63 the block generation
//   (low 32 bits).
// Every invalidation of the fd (close, dup2 onto it, every new fd with its number, freopen...)
// clears the word, and a verdict stored under a close generation that has moved on is taken
// back (fd_set_verdict), so fd_verdict is one load. The words live in an array of their own
// (8 bytes per fd), so that the wrappers' quiet test finds one with a scaled index.
inline constexpr unsigned kVerdictGenShift = 32;
inline constexpr std::uint64_t kVerdictBatchMark = 1ull << 22;
using FdVerdictWord = std::atomic<std::uint64_t>;
extern FdChunks<FdVerdictWord> g_fd_verdicts __attribute__((visibility("hidden")));

[[gnu::always_inline]] inline std::uint64_t fd_verdict(int fd) noexcept {
  // One unsigned compare for both "negative" and "past the last chunk".
  const unsigned number = static_cast<unsigned>(fd);
  if (number >= FdChunks<FdVerdictWord>::kFds * FdChunks<FdVerdictWord>::kMaxChunks) return 0;
  const FdVerdictWord* word = g_fd_verdicts.slot(fd, false);
  return word ? word->load(std::memory_order_acquire) : 0;
}
// Stores `verdict` if info's facts are the table's current ones.
void fd_set_verdict(int fd, const FdInfo& info, std::uint64_t verdict) noexcept;
void fd_invalidate_range(unsigned first, unsigned last) noexcept;

// The path behind fd (readlink of /proc/self/fd/N), for event lines. Returns length or -1.
long fd_path(int fd, char* buf, unsigned long size) noexcept;

}  // namespace faultline::shim
