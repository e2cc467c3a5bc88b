// The fd table (see fd_table.h). Slot word layout:
//   bit 0      valid
//   bits 1-3   FdKind
//   bits 8-31  rules epoch the match bits were computed for (truncated to 24 bits)
//   bits 32-63 close generation: bumped by every invalidation
#include "shim/engine/fd_table.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <new>
#include <string_view>

#include "shim/engine/fd_chunks.h"
#include "shim/engine/scratch.h"
#include "shim/engine/shim.h"
#include "shim/engine/sock_bytes.h"
#include "shim/engine/sock_table.h"

namespace faultline::shim {

constinit FdChunks<FdVerdictWord> g_fd_verdicts;

namespace {

struct Slot {
  std::atomic<std::uint64_t> word;
  std::atomic<std::uint64_t> match;
  std::atomic<std::uint64_t> identity;
};

constinit FdChunks<Slot> g_slots;

constexpr std::uint64_t kValid = 1;
constexpr std::uint64_t kEpochMask = 0xffffffull;

std::uint64_t generation_of(std::uint64_t word) { return word >> 32; }

FdKind kind_from_link(const char* link) {
  if (link[0] == '/') return FdKind::kFile;
  if (std::strncmp(link, "socket:", 7) == 0) return FdKind::kSocket;
  if (std::strncmp(link, "pipe:", 5) == 0) return FdKind::kPipe;
  return FdKind::kOther;
}

std::uint64_t mix64(std::uint64_t x) {
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdull;
  x ^= x >> 33;
  x *= 0xc4ceb9fe1a85ec53ull;
  return x ^ (x >> 33);
}

}  // namespace

std::uint64_t fd_identity(int fd) noexcept {
  if (fd < 0) return 0;
  // The 256-byte statx (or the stat) in a pool buffer, not on the stack: this runs inside
  // decide(), on the path a signal handler on a small sigaltstack may take (1 KiB budget).
  Scratch scratch;
  char* mem = scratch.get();
  if (mem == nullptr) return 0;
  static_assert(sizeof(struct statx) <= Scratch::kBytes && sizeof(struct stat) <= Scratch::kBytes);
  std::uint64_t dev = 0, ino = 0, born = 0;
  using Statx = struct statx;
  auto* stx = new (mem) Statx{};
  if (statx(fd, "", AT_EMPTY_PATH | AT_STATX_DONT_SYNC, STATX_INO | STATX_BTIME, stx) == 0) {
    dev = (static_cast<std::uint64_t>(stx->stx_dev_major) << 32) | stx->stx_dev_minor;
    ino = stx->stx_ino;
    if (stx->stx_mask & STATX_BTIME)
      born = static_cast<std::uint64_t>(stx->stx_btime.tv_sec) * 1'000'000'000u +
             stx->stx_btime.tv_nsec;
  } else {
    // statx refused (an old kernel, a seccomp filter): device and inode alone.
    using Stat = struct stat;
    auto* st = new (mem) Stat{};
    if (fstat(fd, st) != 0) return 0;
    dev = st->st_dev;
    ino = st->st_ino;
  }
  const std::uint64_t key = mix64(mix64(mix64(dev) ^ ino) ^ born);
  return key ? key : 1;
}

long fd_path(int fd, char* buf, unsigned long size) noexcept {
  if (fd < 0) return -1;
  // By hand, not snprintf: glibc's vfprintf needs ~2 KiB of stack (docs/reliability.md).
  char proc[32] = "/proc/self/fd/";
  char digits[12];
  int n_digits = 0;
  for (unsigned v = static_cast<unsigned>(fd); n_digits == 0 || v != 0; v /= 10)
    digits[n_digits++] = static_cast<char>('0' + v % 10);
  for (int i = 0; i < n_digits; ++i) proc[14 + i] = digits[n_digits - 1 - i];
  proc[14 + n_digits] = '\0';
  ssize_t n = readlink(proc, buf, size - 1);
  if (n < 0) return -1;
  buf[n] = '\0';
  // A file unlinked while open reads back as "/path (deleted)"; the path is what matters.
  constexpr std::string_view kDeleted = " (deleted)";
  if (static_cast<std::size_t>(n) > kDeleted.size() &&
      std::memcmp(buf + n - kDeleted.size(), kDeleted.data(), kDeleted.size()) == 0) {
    n -= static_cast<ssize_t>(kDeleted.size());
    buf[n] = '\0';
  }
  return n;
}

FdInfo fd_lookup(int fd, std::uint32_t rules_epoch, PathMatcher match_paths, void* ctx) noexcept {
  Slot* slot = g_slots.slot(fd, true);
  std::uint64_t epoch = rules_epoch & kEpochMask;
  std::uint64_t observed = 0;
  if (slot) {
    observed = slot->word.load(std::memory_order_acquire);
    if ((observed & kValid) && ((observed >> 8) & kEpochMask) == epoch) {
      std::uint64_t match = slot->match.load(std::memory_order_acquire);
      std::uint64_t identity = slot->identity.load(std::memory_order_acquire);
      if (slot->word.load(std::memory_order_acquire) == observed)
        return {match,
                identity,
                static_cast<std::uint32_t>(generation_of(observed)),
                static_cast<FdKind>((observed >> 1) & 7),
                true,
                true};
    }
  }
  // The identity first, then the path: if the fd changes in between, the entry holds the new
  // path under the old identity, which the check before an injection rejects. (The other
  // order would pair the old path with the new identity and pass the check.)
  const std::uint64_t identity = fd_identity(fd);
  // The link in a scratch buffer, not on the stack: the armed path's stack budget is 1 KiB.
  Scratch scratch;
  char* link = scratch.get();
  if (identity == 0 || !link || fd_path(fd, link, 4096) < 0)
    return {0, 0, 0, FdKind::kUnknown, false, false};
  FdInfo info{0, identity, 0, kind_from_link(link), false, false};
  if (info.kind == FdKind::kFile) info.path_match = match_paths(link, ctx);
  if (slot) {
    // Cache only if no close happened since we looked: otherwise the fd may now be another
    // file, and the next call will learn it afresh.
    std::uint64_t gen = generation_of(observed);
    std::uint64_t fresh =
        (gen << 32) | (epoch << 8) | (static_cast<std::uint64_t>(info.kind) << 1) | kValid;
    slot->match.store(info.path_match, std::memory_order_relaxed);
    slot->identity.store(info.identity, std::memory_order_relaxed);
    std::uint64_t expected = observed;
    info.in_table = slot->word.compare_exchange_strong(expected, fresh, std::memory_order_release,
                                                       std::memory_order_relaxed);
    info.close_gen = static_cast<std::uint32_t>(gen);
  }
  return info;
}

namespace {
void forget_slot(int fd) noexcept {
  Slot* slot = g_slots.slot(fd, false);
  if (!slot) return;
  std::uint64_t word = slot->word.load(std::memory_order_relaxed);
  while (!slot->word.compare_exchange_weak(word, (generation_of(word) + 1) << 32,
                                           std::memory_order_seq_cst, std::memory_order_relaxed)) {
  }
  // A closed fd's verdict dies with it: fd_verdict reads the verdict word alone. Against a
  // verdict being stored meanwhile (fd_set_verdict), both sides write, then read the other's
  // word, sequentially consistent: at least one of them sees the other and clears it.
  FdVerdictWord* verdict = g_fd_verdicts.slot(fd, false);
  if (verdict && verdict->load(std::memory_order_seq_cst) != 0)
    verdict->store(0, std::memory_order_relaxed);
}
}  // namespace

void fd_set_verdict(int fd, const FdInfo& info, std::uint64_t verdict) noexcept {
  if (!info.in_table) return;
  Slot* slot = g_slots.slot(fd, false);
  FdVerdictWord* word = g_fd_verdicts.slot(fd, true);
  if (!slot || !word) return;
  word->store(verdict, std::memory_order_seq_cst);
  // A close since the facts were learned (forget_slot's generation bump, seq_cst too): the
  // verdict is the old file's, take it back.
  if (generation_of(slot->word.load(std::memory_order_seq_cst)) != info.close_gen) {
    std::uint64_t expected = verdict;
    word->compare_exchange_strong(expected, 0, std::memory_order_relaxed);
  }
}

FdInfo fd_relearn(int fd, std::uint32_t rules_epoch, PathMatcher match_paths, void* ctx) noexcept {
  // Only this table's entry: the socket table checks its own state against the socket's
  // identity (a state set on the new socket must survive).
  forget_slot(fd);
  return fd_lookup(fd, rules_epoch, match_paths, ctx);
}

void fd_invalidate(int fd) noexcept {
  sock_forget(fd);        // the @net state of the socket that had this number goes with it
  sock_bytes_forget(fd);  // and its after_bytes counts
  forget_slot(fd);
}

void fd_invalidate_range(unsigned first, unsigned last) noexcept {
  sock_forget_range(first, last);  // its chunks are not this table's
  sock_bytes_forget_range(first, last);
  g_slots.for_each_mapped(first, last, [](int fd) { forget_slot(fd); });
}

}  // namespace faultline::shim
