// The @memory quota's books (see mem_ledger.h).
#include "shim/engine/mem_ledger.h"

#include <atomic>

#include "shim/engine/memory.h"
#include "shim/engine/ptr_set.h"
#include "shim/engine/shim.h"

namespace faultline::shim {
namespace {

std::atomic<std::uint64_t> g_live_bytes[kMaxFaults];

bool valid_slot(int slot) { return slot >= 0 && slot < static_cast<int>(kMaxFaults); }

void add(int slot, std::uint64_t bytes) {
  g_live_bytes[slot].fetch_add(bytes, std::memory_order_relaxed);
}

// Never below zero: a fault slot reused by a new fault after a live edit may see frees of
// blocks its predecessor counted.
void sub(int slot, std::uint64_t bytes) {
  auto& live = g_live_bytes[slot];
  std::uint64_t cur = live.load(std::memory_order_relaxed);
  while (
      !live.compare_exchange_weak(cur, cur > bytes ? cur - bytes : 0, std::memory_order_relaxed)) {
  }
}

// The session-wide high-water mark shown by `faultline status` as the quota's `used`.
void publish_peak(int slot) {
  ControlBlock* block = g_block.load(std::memory_order_acquire);
  if (!block) return;
  const std::uint64_t now = g_live_bytes[slot].load(std::memory_order_relaxed);
  auto& peak = block->faults[slot].quota_used;
  std::uint64_t seen = peak.load(std::memory_order_relaxed);
  while (now > seen && !peak.compare_exchange_weak(seen, now, std::memory_order_relaxed)) {
  }
}

std::uint64_t usable(void* p) {
  malloc_usable_size_fn fn = real_malloc_usable_size();
  return fn ? fn(p) : 0;
}

}  // namespace

bool ledger_reserve(int slot, std::uint64_t quota, std::uint64_t bytes) noexcept {
  if (!valid_slot(slot)) return false;
  auto& live = g_live_bytes[slot];
  std::uint64_t cur = live.load(std::memory_order_relaxed);
  do {
    if (bytes > quota || cur > quota - bytes) return false;
  } while (!live.compare_exchange_weak(cur, cur + bytes, std::memory_order_relaxed));
  return true;
}

void ledger_unreserve(int slot, std::uint64_t bytes) noexcept {
  if (valid_slot(slot)) sub(slot, bytes);
}

bool ledger_count(int slot, void* p, std::uint64_t reserved) noexcept {
  if (!valid_slot(slot)) return false;
  if (!p || !ptrset_insert(p, slot)) {
    sub(slot, reserved);
    return false;
  }
  const std::uint64_t bytes = usable(p);
  if (bytes > reserved) add(slot, bytes - reserved);
  if (bytes < reserved) sub(slot, reserved - bytes);
  publish_peak(slot);
  return true;
}

Forgotten ledger_forget(void* p) noexcept {
  Forgotten f;
  if (!p || !ptrset_active()) return f;
  PtrEntry entry = ptrset_remove(p);
  if (!entry.found || !valid_slot(entry.slot)) return f;
  f = Forgotten{true, entry.slot, usable(p)};
  sub(f.slot, f.bytes);
  return f;
}

void ledger_restore(void* p, const Forgotten& f) noexcept {
  if (!f.found || !ptrset_insert(p, f.slot)) return;
  add(f.slot, f.bytes);
}

std::uint64_t ledger_live(int slot) noexcept {
  return valid_slot(slot) ? g_live_bytes[slot].load(std::memory_order_relaxed) : 0;
}

void ledger_reset() noexcept {
  ptrset_reset();
  for (auto& live : g_live_bytes) live.store(0, std::memory_order_relaxed);
}

void memory_after_fork_child() noexcept { ledger_reset(); }

}  // namespace faultline::shim
