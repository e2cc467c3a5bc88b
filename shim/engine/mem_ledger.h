// The @memory quota's books: live bytes of counted allocations, per fault, per process.
//
// A memory quota is a per-process limit (like RLIMIT_AS or a container's memory limit seen
// from one process), not a session-wide pool like the @write quota: a process that exits,
// execs or is killed cannot give its live bytes back to a shared counter, so a session-wide
// sum would only ever grow. Each process counts the blocks it allocated itself; a fork child
// starts from zero (its inherited blocks are its parent's). The block's shared `quota_used`
// shows the largest live total any process of the session reached (`faultline status`).
//
// Bytes are malloc_usable_size() of each block, counted when it is allocated and given back
// when it is freed or reallocated; the pointer set (ptr_set.h) says whether a freed pointer
// was counted, and by which fault.
#pragma once

#include <cstdint>

namespace faultline::shim {

// Takes `bytes` from fault `slot`'s quota if they fit under `quota`; all or nothing.
bool ledger_reserve(int slot, std::uint64_t quota, std::uint64_t bytes) noexcept;
// Gives back a reservation whose allocation failed.
void ledger_unreserve(int slot, std::uint64_t bytes) noexcept;

// After a reserved allocation succeeded: records `p` as counted by `slot` and trues the
// reservation up to the block's usable size. False (and the reservation given back) when the
// block cannot be tracked; it is then not counted.
bool ledger_count(int slot, void* p, std::uint64_t reserved) noexcept;

// Before `p` is freed or moved: if it was counted, forgets it and gives its bytes back.
struct Forgotten {
  bool found = false;
  int slot = -1;
  std::uint64_t bytes = 0;
};
Forgotten ledger_forget(void* p) noexcept;
// Undoes ledger_forget when the free did not happen after all (a failed realloc).
void ledger_restore(void* p, const Forgotten& f) noexcept;

// Live counted bytes of fault `slot` in this process (for tests).
std::uint64_t ledger_live(int slot) noexcept;

// A fork child starts with no counted allocations. Only when no other thread can be inside.
void ledger_reset() noexcept;

}  // namespace faultline::shim
