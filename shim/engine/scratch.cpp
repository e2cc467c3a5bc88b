// The scratch pool (see scratch.h).
#include "shim/engine/scratch.h"

#include <sys/mman.h>

#include <atomic>

namespace faultline::shim {
namespace {

// Enough for the threads that emit events at the same moment; more fall back to mmap. In
// .bss: pages nobody touches cost nothing.
constexpr int kSlots = 8;
std::atomic<bool> g_busy[kSlots];
alignas(64) char g_pool[kSlots][Scratch::kBytes];

}  // namespace

void Scratch::claim() noexcept {
  for (int i = 0; i < kSlots; ++i) {
    if (!g_busy[i].load(std::memory_order_relaxed) &&
        !g_busy[i].exchange(true, std::memory_order_acquire)) {
      slot_ = i;
      data_ = g_pool[i];
      return;
    }
  }
  void* mem = mmap(nullptr, kBytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (mem != MAP_FAILED) data_ = static_cast<char*>(mem);
}

Scratch::~Scratch() {
  if (slot_ >= 0)
    g_busy[slot_].store(false, std::memory_order_release);
  else if (data_)
    munmap(data_, kBytes);
}

}  // namespace faultline::shim
