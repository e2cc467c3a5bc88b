// The per-socket byte counters of `after_bytes` (see sock_bytes.h).
#include "shim/engine/sock_bytes.h"

#include <atomic>

#include "calls/calls.h"
#include "shim/engine/fd_chunks.h"
#include "shim/engine/fd_table.h"

namespace faultline::shim {
namespace {

struct Slot {
  std::atomic<std::uint64_t> word[2];   // generation << 48 | bytes, per direction
  std::atomic<std::uint64_t> identity;  // fd_identity() of the socket first counted on
};

constinit FdChunks<Slot> g_slots;

constexpr std::uint64_t kGenerationOne = 1ull << 48;

// The next generation's empty word (the generation wraps after 65,536 closes of one number:
// a stale add would need to be held across exactly that many).
std::uint64_t next_generation(std::uint64_t word) {
  return (word & ~kByteCountMax) + kGenerationOne;
}

void forget_slot(Slot* slot) noexcept {
  for (auto& word : slot->word) {
    std::uint64_t seen = word.load(std::memory_order_relaxed);
    while (!word.compare_exchange_weak(seen, next_generation(seen), std::memory_order_acq_rel,
                                       std::memory_order_relaxed)) {
    }
  }
  slot->identity.store(0, std::memory_order_relaxed);
}

}  // namespace

int call_byte_dir(std::uint32_t call) noexcept {
  switch (call) {
    case kCall_recv:
    case kCall_recvfrom:
    case kCall_recvmsg:
    case kCall_read:
    case kCall_readv:
      return kBytesReceived;
    case kCall_send:
    case kCall_sendto:
    case kCall_sendmsg:
    case kCall_write:
    case kCall_writev:
      return kBytesSent;
    default:  // connect, accept..., and the batch calls (sendmmsg/recvmmsg: docs/limits.md)
      return -1;
  }
}

ByteCount sock_bytes_load(int fd, int dir) noexcept {
  Slot* slot = g_slots.slot(fd, false);
  return ByteCount{slot ? slot->word[dir & 1].load(std::memory_order_acquire) : 0};
}

void sock_bytes_add(int fd, int dir, ByteCount seen, std::uint64_t n) noexcept {
  Slot* slot = g_slots.slot(fd, true);
  if (!slot || n == 0) return;
  auto& word = slot->word[dir & 1];
  std::uint64_t now = word.load(std::memory_order_acquire);
  // The first bytes counted on this socket: remember which socket it is, so that the count
  // never outlives it on a number reused behind the wrappers' back (sock_bytes_verify).
  if (slot->identity.load(std::memory_order_relaxed) == 0)
    slot->identity.store(fd_identity(fd), std::memory_order_release);
  for (;;) {
    if ((now >> 48) != seen.generation()) return;  // closed since: not this socket's bytes
    const std::uint64_t bytes = now & kByteCountMax;
    const std::uint64_t sum = n < kByteCountMax - bytes ? bytes + n : kByteCountMax;
    if (word.compare_exchange_weak(now, (now & ~kByteCountMax) | sum, std::memory_order_acq_rel,
                                   std::memory_order_acquire))
      return;
  }
}

bool sock_bytes_verify(int fd) noexcept {
  Slot* slot = g_slots.slot(fd, false);
  if (!slot) return true;
  const std::uint64_t identity = slot->identity.load(std::memory_order_acquire);
  if (identity == 0 || fd_identity(fd) == identity) return true;
  forget_slot(slot);
  return false;
}

void sock_bytes_forget(int fd) noexcept {
  if (Slot* slot = g_slots.slot(fd, false)) forget_slot(slot);
}

void sock_bytes_forget_range(unsigned first, unsigned last) noexcept {
  g_slots.for_each_mapped(first, last, [](int fd) { sock_bytes_forget(fd); });
}

}  // namespace faultline::shim
