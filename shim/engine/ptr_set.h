// The set of allocations a memory quota counted: on free/realloc the shim must know whether a
// pointer was counted (and by which fault) before it gives the bytes back. Pointers allocated
// before the quota was armed, below its size selector or by the shim itself are not in it,
// and their frees change nothing.
//
// Lock-free open addressing in mmap'd memory (never the program's allocator): one 64-bit word
// per entry, 0 = empty, 1 = tombstone, else pointer | slot << 56. Inserts take the first empty
// or tombstone slot within kMaxProbe of the pointer's hash; removes turn the entry into a
// tombstone, which later inserts reuse, so churn alone never grows the set. When the newest
// table is half full (or a probe window is full) a table four times larger is added; older
// tables are no longer inserted into and are searched only while they still hold entries.
// Tables are never unmapped while the process runs (a thread may still be probing one),
// except in a fork child, which starts with an empty set (its parent's counted blocks are
// the parent's to give back).
#pragma once

#include <atomic>
#include <cstdint>

namespace faultline::shim {

struct PtrEntry {
  bool found;
  int slot;  // the fault slot that counted it
};

// Records `p` as counted by fault `slot` (0..63). False when it cannot (pointer outside the
// 56-bit user address range, or the set is at its maximum size and memory for more tables
// cannot be mapped): the caller must then not count the block.
bool ptrset_insert(const void* p, int slot) noexcept;

// Removes `p` if it is in the set and says which fault counted it.
PtrEntry ptrset_remove(const void* p) noexcept;

// Live entries. free() reads it on every call (inline: one load and a compare).
extern std::atomic<std::uint64_t> g_ptrset_live;

// Whether any counted pointer is live: free() and realloc() look pointers up only then.
inline bool ptrset_active() noexcept { return g_ptrset_live.load(std::memory_order_relaxed) != 0; }

// Live entries (for tests).
std::uint64_t ptrset_size() noexcept;

// Forgets everything and unmaps the tables. Only when no other thread can be inside the set:
// in a fork child, or in a single-threaded unit test.
void ptrset_reset() noexcept;

}  // namespace faultline::shim
