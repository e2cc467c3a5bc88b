// Fault-safe copies of the program's memory (see safe_copy.h).
#include "shim/engine/safe_copy.h"

#include <errno.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <climits>
#include <cstring>

#include "shim/engine/engine.h"
#include "shim/engine/shim.h"

namespace faultline::shim {
namespace {

// Set once process_vm_readv was refused: every later copy answers kUnavailable at once.
std::atomic<bool> g_unavailable{false};

SafeCopy vm_copy(bool write, void* dst, const void* src, std::size_t len) noexcept {
  if (len == 0) return SafeCopy::kOk;
  if (g_unavailable.load(std::memory_order_relaxed)) return SafeCopy::kUnavailable;
  const int saved = errno;
  struct iovec local = {write ? const_cast<void*>(src) : dst, len};
  struct iovec remote = {write ? dst : const_cast<void*>(src), len};
  // getpid() each time, not a cached pid: it stays right in a forked or raw-cloned child.
  const long r = syscall(write ? SYS_process_vm_writev : SYS_process_vm_readv,
                         static_cast<long>(syscall(SYS_getpid)), &local, 1UL, &remote, 1UL, 0UL);
  const int err = errno;
  errno = saved;
  if (r >= 0 && static_cast<std::size_t>(r) == len) return SafeCopy::kOk;
  if (r < 0 && (err == ENOSYS || err == EPERM)) {
    if (!g_unavailable.exchange(true, std::memory_order_relaxed))
      diag(
          "process_vm_readv is not permitted here (%s): calls that pass arrays (iovec, msghdr, "
          "mmsghdr) now run without faults, as the shim cannot read them safely",
          err == ENOSYS ? "ENOSYS" : "EPERM");
    return SafeCopy::kUnavailable;
  }
  return SafeCopy::kFault;  // EFAULT, or a partial copy that stopped at an unmapped page
}

}  // namespace

SafeCopy safe_read(void* dst, const void* src, std::size_t len) noexcept {
  return vm_copy(false, dst, src, len);
}

SafeCopy safe_write(void* dst, const void* src, std::size_t len) noexcept {
  return vm_copy(true, dst, src, len);
}

SafeCopy safe_string_readable(const char* s, std::size_t max) noexcept {
  constexpr std::size_t kPage = 4096;
  char chunk[128];
  std::size_t seen = 0;
  while (seen < max) {
    const auto at = reinterpret_cast<std::uintptr_t>(s + seen);
    std::size_t n = std::min<std::size_t>(sizeof chunk, kPage - at % kPage);
    n = std::min(n, max - seen);
    const SafeCopy r = safe_read(chunk, s + seen, n);
    if (r != SafeCopy::kOk) return r;
    if (std::memchr(chunk, '\0', n)) return SafeCopy::kOk;
    seen += n;
  }
  return SafeCopy::kFault;  // no NUL within max: ENAMETOOLONG from the kernel
}

bool iov_total_safe(const struct iovec* iov, long cnt, std::uint64_t& total) noexcept {
  if (cnt < 0 || cnt > kIovMax) return false;  // EINVAL (EMSGSIZE for msghdr): the kernel's
  constexpr long kChunk = 16;                  // 256 bytes of stack
  struct iovec chunk[kChunk];
  std::uint64_t sum = 0;
  for (long at = 0; at < cnt; at += kChunk) {
    const long n = std::min(kChunk, cnt - at);
    if (safe_read(chunk, iov + at, static_cast<std::size_t>(n) * sizeof(struct iovec)) !=
        SafeCopy::kOk)
      return false;
    for (long i = 0; i < n; ++i) {
      if (chunk[i].iov_len > static_cast<std::size_t>(SSIZE_MAX)) return false;  // EINVAL
      sum += chunk[i].iov_len;  // two values <= SSIZE_MAX: no wrap before the clamp
      if (sum > static_cast<std::uint64_t>(SSIZE_MAX)) sum = SSIZE_MAX;
    }
  }
  total = sum;
  return true;
}

bool iov_args_size(const CallArgs& args, std::uint64_t& total) noexcept {
  return iov_total_safe(static_cast<const struct iovec*>(args.vec), args.vec_count, total);
}

namespace {

std::atomic<char*> g_window{nullptr};
std::atomic<std::uint64_t> g_busy{0};  // one bit per slot of the window
static_assert(kScratchSlots <= 64);

std::size_t page_round(std::size_t bytes) {
  constexpr std::size_t kPage = 4096;
  return (bytes + kPage - 1) & ~(kPage - 1);
}

}  // namespace

void scratch_reserve() noexcept {
  if (g_window.load(std::memory_order_acquire)) return;
  void* p = mmap(nullptr, kScratchSlot * kScratchSlots, PROT_NONE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (p == MAP_FAILED) return;
  char* expected = nullptr;
  if (!g_window.compare_exchange_strong(expected, static_cast<char*>(p)))
    munmap(p, kScratchSlot * kScratchSlots);  // another thread reserved it first
}

void scratch_after_fork_child() noexcept { g_busy.store(0, std::memory_order_relaxed); }

CopyScratch::CopyScratch(std::size_t bytes) noexcept {
  const int saved = errno;
  if (bytes == 0) bytes = 1;
  bytes = page_round(bytes);
  scratch_reserve();  // normally done before main; a no-op then
  char* window = g_window.load(std::memory_order_acquire);
  if (window && bytes <= kScratchSlot) {
    std::uint64_t busy = g_busy.load(std::memory_order_relaxed);
    while (~busy != 0) {
      const int slot = __builtin_ctzll(~busy);
      if (g_busy.compare_exchange_weak(busy, busy | (1ULL << slot), std::memory_order_acquire)) {
        char* at = window + static_cast<std::size_t>(slot) * kScratchSlot;
        if (mprotect(at, bytes, PROT_READ | PROT_WRITE) == 0) {
          mem_ = at;
          bytes_ = bytes;
          slot_ = slot;
        } else {
          g_busy.fetch_and(~(1ULL << slot), std::memory_order_release);
        }
        break;
      }
    }
  }
  if (!mem_) {
    void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p != MAP_FAILED) {
      mem_ = p;
      bytes_ = bytes;
    }
  }
  errno = saved;
}

CopyScratch::~CopyScratch() {
  if (!mem_) return;
  const int saved = errno;
  if (slot_ >= 0) {
    // Back to reserved, zero-filled and without memory: a fixed PROT_NONE mapping replaces it.
    mmap(mem_, bytes_, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED, -1, 0);
    g_busy.fetch_and(~(1ULL << slot_), std::memory_order_release);
  } else {
    munmap(mem_, bytes_);
  }
  errno = saved;
}

int iov_prefix_safe(const struct iovec* iov, int cnt, std::uint64_t n,
                    CopyScratch& scratch) noexcept {
  if (!scratch.ok() || cnt < 0) return -1;
  auto* out = static_cast<struct iovec*>(scratch.data());
  if (safe_read(out, iov, static_cast<std::size_t>(cnt) * sizeof(struct iovec)) != SafeCopy::kOk)
    return -1;
  int used = 0;
  while (used < cnt && n > 0) {
    if (out[used].iov_len > n) out[used].iov_len = static_cast<std::size_t>(n);
    n -= out[used].iov_len;
    ++used;
  }
  return used;
}

}  // namespace faultline::shim
