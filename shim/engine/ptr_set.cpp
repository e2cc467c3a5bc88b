// The counted-allocation set (see ptr_set.h).
#include "shim/engine/ptr_set.h"

#include <sys/mman.h>

#include <atomic>
#include <cstddef>

namespace faultline::shim {
namespace {

constexpr unsigned kFirstBits = 12;  // 4096 entries (32 KiB) in the first table
constexpr unsigned kGrowthBits = 2;  // each table is 4x the previous one
constexpr unsigned kMaxTables = 8;   // the last holds 2^26 entries (512 MiB of address space)
constexpr unsigned kMaxProbe = 32;   // an entry sits at most this far from its hash
constexpr std::uint64_t kEmpty = 0;
constexpr std::uint64_t kTombstone = 1;
constexpr unsigned kSlotShift = 56;
constexpr std::uint64_t kPtrMask = (1ull << kSlotShift) - 1;

// A table header; its 1 << bits entries follow it in the same mapping.
struct Table {
  unsigned bits;
  std::atomic<std::uint64_t> live;
  std::atomic<std::uint64_t>* entries() {
    return reinterpret_cast<std::atomic<std::uint64_t>*>(this + 1);
  }
};
static_assert(sizeof(Table) % alignof(std::atomic<std::uint64_t>) == 0);

std::atomic<Table*> g_tables[kMaxTables];
std::atomic<unsigned> g_current{0};  // index of the table inserts go to

std::size_t table_bytes(unsigned bits) {
  return sizeof(Table) + sizeof(std::atomic<std::uint64_t>) * (std::size_t{1} << bits);
}

// Fibonacci hashing of the pointer without its alignment bits.
std::size_t home(std::uintptr_t p, unsigned bits) {
  return static_cast<std::size_t>(((p >> 4) * 0x9e3779b97f4a7c15ull) >> (64 - bits));
}

Table* table_at(unsigned index) {
  Table* table = g_tables[index].load(std::memory_order_acquire);
  if (table) return table;
  const unsigned bits = kFirstBits + kGrowthBits * index;
  // Anonymous mappings are zero-filled: every entry starts empty, and only the pages that
  // entries land on become resident.
  void* mem = mmap(nullptr, table_bytes(bits), PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (mem == MAP_FAILED) return nullptr;
  Table* fresh = static_cast<Table*>(mem);
  fresh->bits = bits;
  if (g_tables[index].compare_exchange_strong(table, fresh, std::memory_order_acq_rel))
    return fresh;
  munmap(mem, table_bytes(bits));  // another thread installed it first
  return table;
}

bool try_insert(Table& table, std::uint64_t value, std::uintptr_t p) {
  const std::size_t mask = (std::size_t{1} << table.bits) - 1;
  if (table.live.load(std::memory_order_relaxed) >= (mask + 1) / 2) return false;
  std::size_t i = home(p, table.bits);
  for (unsigned probe = 0; probe < kMaxProbe; ++probe, i = (i + 1) & mask) {
    std::uint64_t seen = table.entries()[i].load(std::memory_order_relaxed);
    while (seen == kEmpty || seen == kTombstone) {
      if (table.entries()[i].compare_exchange_weak(seen, value, std::memory_order_release,
                                                   std::memory_order_relaxed)) {
        table.live.fetch_add(1, std::memory_order_relaxed);
        return true;
      }
    }
  }
  return false;
}

}  // namespace

std::atomic<std::uint64_t> g_ptrset_live{0};

bool ptrset_insert(const void* ptr, int slot) noexcept {
  const auto p = reinterpret_cast<std::uintptr_t>(ptr);
  if (p <= kTombstone || (p & ~kPtrMask) != 0 || slot < 0 || slot > 63) return false;
  const std::uint64_t value = p | (static_cast<std::uint64_t>(slot) << kSlotShift);
  // Counted before the entry is visible, so ptrset_active() is never false while one exists.
  g_ptrset_live.fetch_add(1, std::memory_order_relaxed);
  for (unsigned index = g_current.load(std::memory_order_acquire); index < kMaxTables; ++index) {
    Table* table = table_at(index);
    if (!table) break;
    if (try_insert(*table, value, p)) return true;
    // Full (half the slots live, or a probe window taken): move inserts to the next table.
    unsigned expected = index;
    g_current.compare_exchange_strong(expected, index + 1 < kMaxTables ? index + 1 : index,
                                      std::memory_order_acq_rel);
  }
  g_ptrset_live.fetch_sub(1, std::memory_order_relaxed);
  return false;
}

PtrEntry ptrset_remove(const void* ptr) noexcept {
  const auto p = reinterpret_cast<std::uintptr_t>(ptr);
  if (p <= kTombstone || (p & ~kPtrMask) != 0) return {false, -1};
  const unsigned newest = g_current.load(std::memory_order_acquire);
  for (unsigned k = 0; k <= newest && k < kMaxTables; ++k) {
    const unsigned index = newest - k;  // newest first: most live entries are there
    Table* table = g_tables[index].load(std::memory_order_acquire);
    if (!table || table->live.load(std::memory_order_relaxed) == 0) continue;
    const std::size_t mask = (std::size_t{1} << table->bits) - 1;
    std::size_t i = home(p, table->bits);
    for (unsigned probe = 0; probe < kMaxProbe; ++probe, i = (i + 1) & mask) {
      std::uint64_t seen = table->entries()[i].load(std::memory_order_acquire);
      // Entries are placed at the first free slot of their window and slots never go back
      // to empty, so an empty slot ends the search in this table.
      if (seen == kEmpty) break;
      if ((seen & kPtrMask) != p || seen == kTombstone) continue;
      if (table->entries()[i].compare_exchange_strong(seen, kTombstone,
                                                      std::memory_order_acq_rel)) {
        table->live.fetch_sub(1, std::memory_order_relaxed);
        g_ptrset_live.fetch_sub(1, std::memory_order_relaxed);
        return {true, static_cast<int>(seen >> kSlotShift)};
      }
    }
  }
  return {false, -1};
}

std::uint64_t ptrset_size() noexcept { return g_ptrset_live.load(std::memory_order_relaxed); }

void ptrset_reset() noexcept {
  for (unsigned index = 0; index < kMaxTables; ++index) {
    Table* table = g_tables[index].exchange(nullptr, std::memory_order_acq_rel);
    if (table) munmap(table, table_bytes(table->bits));
  }
  g_current.store(0, std::memory_order_release);
  g_ptrset_live.store(0, std::memory_order_relaxed);
}

}  // namespace faultline::shim
