// What each fd is, for selectors: its kind (file, socket, pipe...) and, per compiled rule,
// whether its path matches the rule's path glob. Filled lazily from /proc/self/fd on the
// first armed call that needs it, invalidated by close/dup2/dup3/fclose/close_range and by
// every call that returns a new fd (so an fd number reused behind our back is re-learned).
//
// Lock-free: two atomic words per fd in chunks mapped on demand. A close racing a fill is
// detected by the slot's close generation, and the racing fill is used once, not cached.
#pragma once

#include <cstdint>

namespace faultline::shim {

enum class FdKind : std::uint8_t { kUnknown = 0, kFile, kSocket, kPipe, kOther };

struct FdInfo {
  FdKind kind = FdKind::kUnknown;
  std::uint64_t path_match = 0;  // bit i: the path matches rule slot i's path glob
};

// Info for fd under the rules of `rules_epoch`; `match_paths` computes the match bits for a
// path when the slot has to be (re)filled.
using PathMatcher = std::uint64_t (*)(const char* path, void* ctx);
FdInfo fd_lookup(int fd, std::uint32_t rules_epoch, PathMatcher match_paths, void* ctx) noexcept;
void fd_invalidate(int fd) noexcept;
void fd_invalidate_range(unsigned first, unsigned last) noexcept;

// The path behind fd (readlink of /proc/self/fd/N), for event lines. Returns length or -1.
long fd_path(int fd, char* buf, unsigned long size) noexcept;

}  // namespace faultline::shim
