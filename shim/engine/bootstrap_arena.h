// The bootstrap arena: a small static buffer that serves the allocations made while the shim
// looks up the real allocator. dlsym() may call calloc/malloc itself (glibc's dlerror state,
// other allocators' start-up); at that moment our malloc has no real malloc to forward to, so
// those few blocks come from here. free() and realloc() recognise arena pointers by address
// and never pass them to the real allocator, which did not make them.
//
// A bump allocator: blocks are never reused (the arena only serves start-up, a handful of
// small blocks), every block is zero-filled (static storage, never handed out twice), and a
// 16-byte header before each block records its size for realloc.
#pragma once

#include <cstddef>
#include <cstdint>

namespace faultline::shim {

inline constexpr std::size_t kArenaSize = 64 * 1024;

// Hidden: free() finds it RIP-relative, without a GOT load.
extern unsigned char g_arena[kArenaSize] __attribute__((visibility("hidden")));

// A zero-filled block of `size` bytes aligned to `align` (a power of two, at least 16), or
// nullptr when the arena is full or the request does not fit. Thread-safe, lock-free.
void* arena_alloc(std::size_t size, std::size_t align = 16) noexcept;

// One subtraction and one compare: free() asks this on every call.
inline bool arena_owns(const void* p) noexcept {
  return reinterpret_cast<std::uintptr_t>(p) - reinterpret_cast<std::uintptr_t>(g_arena) <
         kArenaSize;
}

// The size that was asked for when `p` (an arena pointer) was allocated.
std::size_t arena_block_size(const void* p) noexcept;

// Bytes handed out so far (for tests and diagnostics).
std::size_t arena_used() noexcept;

}  // namespace faultline::shim
