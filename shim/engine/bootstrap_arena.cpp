// The bootstrap arena (see bootstrap_arena.h).
#include "shim/engine/bootstrap_arena.h"

#include <atomic>
#include <cstring>

namespace faultline::shim {

alignas(64) unsigned char g_arena[kArenaSize];

namespace {

constexpr std::size_t kHeader = 16;  // keeps blocks 16-aligned, like malloc's
std::atomic<std::size_t> g_arena_next{0};

std::size_t align_up(std::size_t n, std::size_t align) { return (n + align - 1) & ~(align - 1); }

}  // namespace

void* arena_alloc(std::size_t size, std::size_t align) noexcept {
  if (align < kHeader) align = kHeader;
  if ((align & (align - 1)) != 0 || size > kArenaSize || align > kArenaSize) return nullptr;
  std::size_t start = g_arena_next.load(std::memory_order_relaxed);
  std::size_t block;
  std::size_t end;
  do {
    block = align_up(start + kHeader, align);
    end = block + align_up(size ? size : 1, kHeader);
    if (end > kArenaSize) return nullptr;
  } while (!g_arena_next.compare_exchange_weak(start, end, std::memory_order_relaxed));
  const std::uint64_t recorded = size;
  std::memcpy(g_arena + block - sizeof recorded, &recorded, sizeof recorded);
  return g_arena + block;
}

std::size_t arena_block_size(const void* p) noexcept {
  std::uint64_t recorded = 0;
  std::memcpy(&recorded, static_cast<const unsigned char*>(p) - sizeof recorded, sizeof recorded);
  return static_cast<std::size_t>(recorded);
}

std::size_t arena_used() noexcept { return g_arena_next.load(std::memory_order_relaxed); }

}  // namespace faultline::shim
