// The per-fd socket state table (see sock_table.h). Word layout:
//   bits 0-7   SockFlag
//   bits 8-15  fault slot that set the state (the one whose lifting heals it)
//   bits 16-31 errno (kSockPendingError)
//   bits 32-63 close generation, bumped by sock_forget
#include "shim/engine/sock_table.h"

#include <sched.h>
#include <sys/mman.h>

#include <algorithm>
#include <atomic>
#include <cstring>

#include "faultline/seqlock.h"
#include "shim/engine/fd_chunks.h"
#include "shim/engine/fd_table.h"
#include "shim/engine/net_hold.h"

namespace faultline::shim {
namespace {

constexpr std::size_t kPeerWords = sizeof(sockaddr_storage) / 8;

struct Slot {
  std::atomic<std::uint64_t> word;
  std::atomic<std::uint64_t> identity;  // fd_identity() of the socket when a state was set
  std::atomic<std::int32_t> ep_fd;      // epfd + 1; 0 = not registered
  std::atomic<std::uint32_t> ep_events;
  std::atomic<std::uint64_t> ep_data;
  std::atomic<std::uint8_t> peer_unstable;  // a datagram socket: its peer is not remembered
  std::atomic<std::uint8_t> stream;         // made by socket(SOCK_STREAM) under an armed @net
  std::atomic<std::uint64_t> peer_seq;  // seqlock over peer_words (peer_words[kPeerWords] = length)
  std::atomic<std::uint64_t> peer_words[kPeerWords + 1];
  // `addr` answers for the peer above (sock_addr_answer): valid for the peer as of peer_seq
  // and the rules copy of epoch, both in addr_key; kAddrBusy while one thread writes them.
  std::atomic<std::uint64_t> addr_key;
  std::atomic<std::uint64_t> addr_known;  // fault slots whose answer is known
  std::atomic<std::uint64_t> addr_match;  // ... and which of them match
};
constexpr std::uint64_t kAddrBusy = ~0ull;

constinit FdChunks<Slot> g_slots;
std::atomic<int> g_marked[kMarkedMax];  // fd + 1 of marked sockets; 0 = free

bool marked(std::uint64_t word) { return word & kSockMarked; }

void register_marked(int fd) noexcept {
  for (auto& entry : g_marked) {
    int expected = 0;
    if (entry.compare_exchange_strong(expected, fd + 1, std::memory_order_acq_rel)) return;
  }
}

void unregister_marked(int fd) noexcept {
  for (auto& entry : g_marked) {
    int expected = fd + 1;
    if (entry.compare_exchange_strong(expected, 0, std::memory_order_acq_rel)) return;
  }
}

// Keeps the marked count and list exact: only the thread whose CAS changed "marked" updates
// them.
void note_transition(int fd, std::uint64_t before, std::uint64_t after) noexcept {
  if (marked(before) == marked(after)) return;
  if (marked(after)) {
    g_marked_count.fetch_add(1, std::memory_order_acq_rel);
    register_marked(fd);
  } else {
    unregister_marked(fd);
    g_marked_count.fetch_sub(1, std::memory_order_acq_rel);
  }
}

}  // namespace

std::atomic<int> g_marked_count{0};
std::atomic<bool> g_sock_state_ever{false};

SockState sock_load(int fd) noexcept {
  Slot* slot = g_slots.slot(fd, false);
  return SockState{slot ? slot->word.load(std::memory_order_acquire) : 0};
}

bool sock_store(int fd, SockState seen, std::uint32_t flags, int fault, int error) noexcept {
  Slot* slot = g_slots.slot(fd, flags != 0);
  if (!slot) return flags == 0;
  // A first state for this socket: remember which socket it is (its inode), so a state never
  // outlives it on an fd number reused behind our back (sock_load_verified). Stored before
  // the word, so whoever sees the state sees its identity.
  if ((seen.word & 0xff) == 0 && flags != 0)
    slot->identity.store(fd_identity(fd), std::memory_order_release);
  if (flags != 0 && !g_sock_state_ever.load(std::memory_order_relaxed))
    g_sock_state_ever.store(true, std::memory_order_release);
  std::uint64_t desired = (seen.word & ~0xffffffffull) | (flags & 0xff) |
                          (static_cast<std::uint64_t>(fault & 0xff) << 8) |
                          (static_cast<std::uint64_t>(error & 0xffff) << 16);
  std::uint64_t expected = seen.word;
  if (!slot->word.compare_exchange_strong(expected, desired, std::memory_order_acq_rel))
    return false;
  note_transition(fd, seen.word, desired);
  return true;
}

namespace {

// Clears the slot: everything, when `only_if` is null; or only if the word is still
// *only_if (a concurrent update or close wins). True when this call cleared it.
bool forget_slot(Slot* slot, int fd, const std::uint64_t* only_if) noexcept {
  std::uint64_t word = only_if ? *only_if : slot->word.load(std::memory_order_relaxed);
  std::uint64_t fresh = ((word >> 32) + 1) << 32;
  if (only_if) {
    if (!slot->word.compare_exchange_strong(word, fresh, std::memory_order_acq_rel,
                                            std::memory_order_relaxed))
      return false;
  } else {
    while (!slot->word.compare_exchange_weak(word, fresh, std::memory_order_acq_rel,
                                             std::memory_order_relaxed))
      fresh = ((word >> 32) + 1) << 32;
  }
  note_transition(fd, word, fresh);
  if (word & kSockLatency) net_hold_forget(fd);
  if (slot->ep_fd.load(std::memory_order_relaxed) != 0)
    slot->ep_fd.store(0, std::memory_order_relaxed);
  if (slot->peer_unstable.load(std::memory_order_relaxed) != 0)
    slot->peer_unstable.store(0, std::memory_order_relaxed);
  if (slot->stream.load(std::memory_order_relaxed) != 0)
    slot->stream.store(0, std::memory_order_relaxed);
  if (slot->peer_words[kPeerWords].load(std::memory_order_relaxed) != 0) {
    std::uint64_t none[kPeerWords + 1] = {};
    seqlock_write(slot->peer_seq, slot->peer_words, none, kPeerWords + 1);
  }
  return true;
}

}  // namespace

void sock_forget(int fd) noexcept {
  if (Slot* slot = g_slots.slot(fd, false)) forget_slot(slot, fd, nullptr);
}

SockState sock_load_verified(int fd) noexcept {
  Slot* slot = g_slots.slot(fd, false);
  if (!slot) return {};
  std::uint64_t word = slot->word.load(std::memory_order_acquire);
  if ((word & 0xff) == 0) return SockState{word};  // nothing to act on: the common case
  const std::uint64_t identity = slot->identity.load(std::memory_order_acquire);
  if (identity != 0 && fd_identity(fd) == identity) return SockState{word};
  // The number is another socket (or nothing) now: its old socket was closed behind our back
  // (a raw close, close_range by syscall) and its state must not be the new one's.
  forget_slot(slot, fd, &word);
  return SockState{slot->word.load(std::memory_order_acquire)};
}

void sock_forget_range(unsigned first, unsigned last) noexcept {
  g_slots.for_each_mapped(first, last, [](int fd) { sock_forget(fd); });
}

std::atomic<bool> g_peer_remembered{false};

// The length word also says whose address it is: bit 32 set for a listener's own (local).
constexpr std::uint64_t kLocalAddr = 1ull << 32;

void sock_set_peer(int fd, const struct sockaddr* addr, socklen_t len, bool local) noexcept {
  g_peer_remembered.store(true, std::memory_order_relaxed);
  Slot* slot = g_slots.slot(fd, true);
  if (!slot || !addr) return;
  if (len > sizeof(sockaddr_storage)) len = sizeof(sockaddr_storage);
  std::uint64_t words[kPeerWords + 1] = {};
  std::memcpy(words, addr, len);
  words[kPeerWords] = len | (local ? kLocalAddr : 0);
  // One writer per fd in practice (the thread connecting it); concurrent writers to the same
  // fd would be the program racing connect() on one socket, and the seqlock keeps reads whole.
  seqlock_write(slot->peer_seq, slot->peer_words, words, kPeerWords + 1);
}

socklen_t sock_peer(int fd, struct sockaddr_storage* out, std::uint64_t* seq, bool local) noexcept {
  Slot* slot = g_slots.slot(fd, false);
  if (!slot) return 0;
  // The seqlock by hand: only the address's own words are copied (2 for IPv4, 4 for IPv6),
  // not all 17, and the caller learns which version of the peer it read.
  constexpr int kMaxAttempts = 10000;
  for (int attempt = 0; attempt < kMaxAttempts; ++attempt) {
    const std::uint64_t before = slot->peer_seq.load(std::memory_order_acquire);
    if (before & 1) {
      if (attempt > 100) sched_yield();
      continue;
    }
    const std::uint64_t word = slot->peer_words[kPeerWords].load(std::memory_order_acquire);
    const std::uint64_t len = word & ~kLocalAddr;
    const bool kind = ((word & kLocalAddr) != 0) == local;
    const std::size_t words = kind && len <= sizeof(sockaddr_storage) ? (len + 7) / 8 : 0;
    for (std::size_t i = 0; i < words; ++i) {
      const std::uint64_t w = slot->peer_words[i].load(std::memory_order_acquire);
      std::memcpy(reinterpret_cast<char*>(out) + 8 * i, &w, 8);
    }
    if (slot->peer_seq.load(std::memory_order_relaxed) != before) continue;
    if (words == 0) return 0;
    if (seq) *seq = before;
    return static_cast<socklen_t>(len);
  }
  return 0;
}

// An answer set's key: the address's version (below 2^31), whose address (bit 63: a
// listener's own) and the rules copy's epoch. Never kAddrBusy (bit 32 is the even version's).
static std::uint64_t addr_key_of(std::uint64_t seq, std::uint32_t epoch, bool local) {
  return (seq << 32) | epoch | (local ? 1ull << 63 : 0);
}

int sock_addr_answer(int fd, std::uint32_t epoch, int fault, bool local) noexcept {
  if (fault < 0 || fault >= 64) return -1;
  Slot* slot = g_slots.slot(fd, false);
  if (!slot) return -1;
  const std::uint64_t seq = slot->peer_seq.load(std::memory_order_acquire);
  const std::uint64_t want = addr_key_of(seq, epoch, local);
  if ((seq & 1) || seq >= (1ull << 31) || slot->addr_key.load(std::memory_order_acquire) != want)
    return -1;
  // known before match: a writer stores a slot's match bit before its known bit.
  const std::uint64_t known = slot->addr_known.load(std::memory_order_acquire);
  const std::uint64_t match = slot->addr_match.load(std::memory_order_acquire);
  if (slot->addr_key.load(std::memory_order_relaxed) != want) return -1;
  const std::uint64_t bit = 1ull << fault;
  if (!(known & bit)) return -1;
  return (match & bit) ? 1 : 0;
}

void sock_addr_note(int fd, std::uint64_t peer_seq, std::uint32_t epoch, int fault, bool match,
                    bool local) noexcept {
  if (fault < 0 || fault >= 64 || (peer_seq & 1) || peer_seq >= (1ull << 31)) return;
  Slot* slot = g_slots.slot(fd, false);
  if (!slot) return;
  const std::uint64_t want = addr_key_of(peer_seq, epoch, local);
  std::uint64_t key = slot->addr_key.load(std::memory_order_relaxed);
  // One writer at a time, never waited for: a thread that finds another writing (or a
  // handler that interrupted one) just leaves the answer unnoted.
  if (key == kAddrBusy ||
      !slot->addr_key.compare_exchange_strong(key, kAddrBusy, std::memory_order_acquire))
    return;
  // Release stores, as in seqlock.h: a reader that sees any of them also sees the key busy.
  if (key != want) {  // another peer or another rules copy: the old answers go
    slot->addr_known.store(0, std::memory_order_release);
    slot->addr_match.store(0, std::memory_order_release);
  }
  const std::uint64_t bit = 1ull << fault;
  const std::uint64_t m = slot->addr_match.load(std::memory_order_relaxed);
  slot->addr_match.store(match ? (m | bit) : (m & ~bit), std::memory_order_release);
  slot->addr_known.store(slot->addr_known.load(std::memory_order_relaxed) | bit,
                         std::memory_order_release);
  slot->addr_key.store(want, std::memory_order_release);
}

void sock_mark_stream(int fd) noexcept {
  if (Slot* slot = g_slots.slot(fd, true)) slot->stream.store(1, std::memory_order_relaxed);
}

bool sock_is_stream(int fd) noexcept {
  Slot* slot = g_slots.slot(fd, false);
  return slot && slot->stream.load(std::memory_order_relaxed) != 0;
}

void sock_mark_peer_unstable(int fd) noexcept {
  if (Slot* slot = g_slots.slot(fd, true)) slot->peer_unstable.store(1, std::memory_order_relaxed);
}

bool sock_peer_unstable(int fd) noexcept {
  Slot* slot = g_slots.slot(fd, false);
  return slot && slot->peer_unstable.load(std::memory_order_relaxed) != 0;
}

void sock_forget_peer(int fd) noexcept {
  Slot* slot = g_slots.slot(fd, false);
  if (!slot || slot->peer_words[kPeerWords].load(std::memory_order_relaxed) == 0) return;
  std::uint64_t none[kPeerWords + 1] = {};
  seqlock_write(slot->peer_seq, slot->peer_words, none, kPeerWords + 1);
}

void sock_epoll_record(int fd, int epfd, std::uint32_t events, std::uint64_t data) noexcept {
  Slot* slot = g_slots.slot(fd, true);
  if (!slot) return;
  slot->ep_events.store(events, std::memory_order_relaxed);
  slot->ep_data.store(data, std::memory_order_relaxed);
  slot->ep_fd.store(epfd + 1, std::memory_order_release);
}

void sock_epoll_forget(int fd, int epfd) noexcept {
  Slot* slot = g_slots.slot(fd, false);
  if (!slot) return;
  std::int32_t expected = epfd + 1;
  slot->ep_fd.compare_exchange_strong(expected, 0, std::memory_order_acq_rel);
}

bool sock_epoll_get(int fd, int& epfd, std::uint32_t& events, std::uint64_t& data) noexcept {
  Slot* slot = g_slots.slot(fd, false);
  if (!slot) return false;
  std::int32_t ep = slot->ep_fd.load(std::memory_order_acquire);
  if (ep == 0) return false;
  epfd = ep - 1;
  events = slot->ep_events.load(std::memory_order_relaxed);
  data = slot->ep_data.load(std::memory_order_relaxed);
  return true;
}

int sock_marked_fds(int* out, int max) noexcept {
  int n = 0;
  for (auto& entry : g_marked) {
    int value = entry.load(std::memory_order_acquire);
    if (value != 0 && n < max) out[n++] = value - 1;
  }
  return n;
}

}  // namespace faultline::shim
