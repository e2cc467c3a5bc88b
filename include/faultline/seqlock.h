// Seqlock over an array of 64-bit atomic words, shared by the control block's fault specs,
// its log path and the event ring. Payload words are loaded with acquire and stored with
// release order instead of relying on standalone fences: the same instructions on x86-64,
// no data race on any word, and ThreadSanitizer understands it.
//
// Writers must be serialised (the session's flock). A writer that died mid-write leaves the
// sequence odd; the next writer repairs it, and readers give up after a bounded wait rather
// than hang the program.
#pragma once

#include <sched.h>

#include <atomic>
#include <cstddef>
#include <cstdint>

namespace faultline {

inline void seqlock_write(std::atomic<std::uint64_t>& seq, std::atomic<std::uint64_t>* words,
                          const std::uint64_t* values, std::size_t n) noexcept {
  std::uint64_t s = seq.load(std::memory_order_relaxed);
  if (s & 1) ++s;  // a previous writer died mid-write
  seq.store(s + 1, std::memory_order_relaxed);
  for (std::size_t i = 0; i < n; ++i) words[i].store(values[i], std::memory_order_release);
  seq.store(s + 2, std::memory_order_release);
}

// Copies a consistent snapshot into `out`; false if no consistent read was possible within
// the bound (a writer is stuck or dead).
inline bool seqlock_read(const std::atomic<std::uint64_t>& seq,
                         const std::atomic<std::uint64_t>* words, std::uint64_t* out,
                         std::size_t n) noexcept {
  constexpr int kMaxAttempts = 10000;
  for (int attempt = 0; attempt < kMaxAttempts; ++attempt) {
    std::uint64_t before = seq.load(std::memory_order_acquire);
    if (before & 1) {
      if (attempt > 100) sched_yield();
      continue;
    }
    for (std::size_t i = 0; i < n; ++i) out[i] = words[i].load(std::memory_order_acquire);
    if (seq.load(std::memory_order_relaxed) == before) return true;
  }
  return false;
}

}  // namespace faultline
