// Reading (and writing back to) the program's memory without trusting it. A program may hand
// any call a NULL or wild iovec, msghdr or mmsghdr vector; the kernel answers EFAULT, and so
// must the shim: it never dereferences caller memory the kernel has not validated. These
// copies go through process_vm_readv/process_vm_writev on the own pid, which report EFAULT
// instead of faulting, into bounded scratch (a small stack chunk, or mmap'd pages on the rare
// paths that need a whole vector). All of it is async-signal-safe and allocation-free.
#pragma once

#include <sys/types.h>
#include <sys/uio.h>

#include <cstddef>
#include <cstdint>

namespace faultline::shim {

enum class SafeCopy {
  kOk,           // every byte copied
  kFault,        // part of the range is not readable (writable): the kernel would say EFAULT
  kUnavailable,  // process_vm_readv is refused here (seccomp: ENOSYS/EPERM); said once via diag
};

// Copies len bytes from the program's memory at src into dst (shim memory).
SafeCopy safe_read(void* dst, const void* src, std::size_t len) noexcept;
// Copies len bytes from src (shim memory) into the program's memory at dst.
SafeCopy safe_write(void* dst, const void* src, std::size_t len) noexcept;

// Is there a NUL within `max` bytes at s, all of them readable (kOk)? Read fault-safely in
// small chunks that never cross a page needlessly (a string may end just before an unmapped
// page). kFault also when there is no NUL within max (the kernel's ENAMETOOLONG).
SafeCopy safe_string_readable(const char* s, std::size_t max) noexcept;

// The kernel's limits on a vector of buffers (UIO_MAXIOV) and on one transfer (MAX_RW_COUNT).
inline constexpr int kIovMax = 1024;
inline constexpr std::uint64_t kMaxRwCount = 0x7ffff000;

// The bytes an iovec asks for, read fault-safely a small chunk at a time (no copy of the whole
// vector). False when the kernel would refuse the vector itself — iovcnt out of range, an
// unreadable array, an iov_len past SSIZE_MAX — or it cannot be read: the caller then runs
// the real call without deciding and returns exactly what the kernel returns. The total is
// clamped to SSIZE_MAX.
bool iov_total_safe(const struct iovec* iov, long cnt, std::uint64_t& total) noexcept;

// CallArgs::size_from for the iovec calls: iov_total_safe over site.vec/site.vec_count.
struct CallArgs;
bool iov_args_size(const CallArgs& args, std::uint64_t& total) noexcept;

// Zero-filled private pages, released on scope exit: scratch for the rare paths (short,
// corrupt, quota on an iovec; corrupt on a write) that need a whole copy, without malloc (a
// signal handler may call writev while the program is inside malloc).
//
// Not the shim's small text buffers (scratch.h: a pool for paths and event lines): this is for
// copies of the caller's data, of any size. It never lands where the program once had memory: a
// plain mmap would gladly reuse the page the program has just unmapped, and a dangling pointer into
// it (an iovec, a msg_name) would then read the shim's scratch instead of giving EFAULT. So scratch
// comes from a window of address space reserved (PROT_NONE, no memory) before main
// (scratch_reserve, from the constructor), in slots of kScratchSlot bytes claimed lock-free; only a
// request larger than a slot, or one made while every slot is busy, falls back to a plain mmap.
inline constexpr std::size_t kScratchSlot = 256 * 1024;
inline constexpr int kScratchSlots = 64;
void scratch_reserve() noexcept;
// In a forked child only the forking thread lives on: the slots other threads held at the
// fork are free again.
void scratch_after_fork_child() noexcept;

class CopyScratch {
 public:
  explicit CopyScratch(std::size_t bytes) noexcept;
  ~CopyScratch();
  CopyScratch(const CopyScratch&) = delete;
  CopyScratch& operator=(const CopyScratch&) = delete;
  void* data() const noexcept { return mem_; }
  bool ok() const noexcept { return mem_ != nullptr; }

 private:
  void* mem_ = nullptr;
  std::size_t bytes_ = 0;
  int slot_ = -1;
};

// The first n bytes of a validated iovec (`cnt` entries) as a new iovec array in `scratch`
// (the caller's array is never modified); returns its entry count, -1 when the array could
// not be copied.
int iov_prefix_safe(const struct iovec* iov, int cnt, std::uint64_t n,
                    CopyScratch& scratch) noexcept;

}  // namespace faultline::shim
