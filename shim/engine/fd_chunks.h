// Per-fd slots in 4096-fd chunks mapped on demand, shared by the fd table and the socket
// table. Lock-free: a chunk is installed with one compare-and-swap; a lookup is one acquire
// load. mmap, not malloc: the tables must not depend on (or show up in) the program's
// allocator. fds of 1,048,576 and above have no slot (callers fall back to asking the kernel).
#pragma once

#include <sys/mman.h>

#include <algorithm>
#include <atomic>

namespace faultline::shim {

template <class Slot>
class FdChunks {
 public:
  static constexpr unsigned kShift = 12;
  static constexpr unsigned kFds = 1u << kShift;
  static constexpr unsigned kMaxChunks = 256;

  // The slot of fd, mapping its chunk first when `create`; nullptr if there is none.
  Slot* slot(int fd, bool create) noexcept {
    if (fd < 0) return nullptr;
    const unsigned chunk = static_cast<unsigned>(fd) >> kShift;
    if (chunk >= kMaxChunks) return nullptr;
    Slot* base = chunks_[chunk].load(std::memory_order_acquire);
    if (!base && create) base = map_chunk(chunk);
    return base ? &base[static_cast<unsigned>(fd) & (kFds - 1)] : nullptr;
  }

  // Calls visit(fd) for every fd in [first, last] whose chunk is mapped.
  template <class Visit>
  void for_each_mapped(unsigned first, unsigned last, Visit visit) noexcept {
    for (unsigned chunk = first >> kShift; chunk < kMaxChunks && chunk <= (last >> kShift);
         ++chunk) {
      if (!chunks_[chunk].load(std::memory_order_acquire)) continue;
      const unsigned lo = std::max(first, chunk << kShift);
      const unsigned hi = std::min(last, ((chunk + 1) << kShift) - 1);
      for (unsigned fd = lo; fd <= hi; ++fd) visit(static_cast<int>(fd));
    }
  }

 private:
  // Rare, so kept out of slot()'s body, whose prologue would otherwise save registers for
  // the mmap call on every lookup.
  [[gnu::noinline, gnu::cold]] Slot* map_chunk(unsigned chunk) noexcept {
    void* mem = mmap(nullptr, sizeof(Slot) * kFds, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (mem == MAP_FAILED) return nullptr;
    Slot* fresh = static_cast<Slot*>(mem);
    Slot* base = nullptr;
    if (chunks_[chunk].compare_exchange_strong(base, fresh, std::memory_order_acq_rel))
      return fresh;
    munmap(mem, sizeof(Slot) * kFds);
    return base;
  }

  std::atomic<Slot*> chunks_[kMaxChunks] = {};
};

}  // namespace faultline::shim
