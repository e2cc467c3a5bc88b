// Io adapters (see io.h) for the two shapes of byte-moving calls: one buffer, or an iovec.
// Caller memory is read only through safe_copy.h: an iovec array is validated (and summed)
// fault-safely before anything is decided, and the whole-vector copies that short, quota and
// corrupt need live in mmap'd scratch, never on the stack or the heap.
#pragma once

#include <sys/uio.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>

#include "shim/engine/safe_copy.h"
#include "shim/io.h"

namespace faultline::shim {

template <class Fn>  // ssize_t(const void*, size_t)
struct BufWrite {
  static constexpr bool kSend = true;
  const void* buf;
  std::size_t count;
  Fn real;
  std::uint64_t size() const { return count; }
  ssize_t run() { return real(buf, count); }
  ssize_t run_limited(std::uint64_t n) { return real(buf, static_cast<std::size_t>(n)); }
  ssize_t run_corrupted(const Decision& d) { return write_corrupted_copy(d, buf, count, real); }
};

template <class Fn>  // ssize_t(void*, size_t)
struct BufRead {
  static constexpr bool kSend = false;
  void* buf;
  std::size_t count;
  Fn real;
  std::uint64_t size() const { return count; }
  ssize_t run() { return real(buf, count); }
  ssize_t run_limited(std::uint64_t n) { return real(buf, static_cast<std::size_t>(n)); }
  ssize_t run_corrupted(const Decision& d) {
    ssize_t r = real(buf, count);
    // The kernel has just written these r bytes: they are the program's, and writable.
    if (r > 0) corrupt_buffer(d, buf, static_cast<std::size_t>(r));
    return r;
  }
};

// An iovec whose sum (`total`) was read fault-safely — by the wrapper, or by decide() through
// CallArgs::size_from before it decided anything; size() is only asked after a decision.
// run() hands the caller's own array to the kernel; the shortened and corrupted runs work on
// fault-safe copies and fall back to the caller's array (the kernel's answer) when a copy
// fails.
template <class Fn>  // ssize_t(const struct iovec*, int)
struct IovWrite {
  static constexpr bool kSend = true;
  const struct iovec* iov;
  int cnt;
  const std::uint64_t& total;
  Fn real;
  std::uint64_t size() const { return total; }
  ssize_t run() { return real(iov, cnt); }
  ssize_t run_limited(std::uint64_t n) {
    CopyScratch scratch(static_cast<std::size_t>(cnt) * sizeof(struct iovec));
    const int used = iov_prefix_safe(iov, cnt, n, scratch);
    if (used < 0) return real(iov, cnt);
    return real(static_cast<const struct iovec*>(scratch.data()), used);
  }
  ssize_t run_corrupted(const Decision& d) {
    // Flattened into one private buffer: same bytes, same single call, caller's data intact.
    // An unreadable buffer leaves the call to the kernel (EFAULT), uncorrupted.
    const std::size_t bytes = static_cast<std::size_t>(total);
    CopyScratch vec(static_cast<std::size_t>(cnt) * sizeof(struct iovec));
    CopyScratch data(bytes);
    if (!vec.ok() || !data.ok()) return real(iov, cnt);
    auto* v = static_cast<struct iovec*>(vec.data());
    if (safe_read(v, iov, static_cast<std::size_t>(cnt) * sizeof(struct iovec)) != SafeCopy::kOk)
      return real(iov, cnt);
    auto* out = static_cast<unsigned char*>(data.data());
    std::size_t at = 0;
    for (int i = 0; i < cnt && at < bytes; ++i) {
      const std::size_t take = v[i].iov_len < bytes - at ? v[i].iov_len : bytes - at;
      if (safe_read(out + at, v[i].iov_base, take) != SafeCopy::kOk) return real(iov, cnt);
      at += take;
    }
    corrupt_buffer(d, out, at);
    struct iovec one = {out, at};
    return real(&one, 1);
  }
};

template <class Fn>  // ssize_t(const struct iovec*, int)
struct IovRead {
  static constexpr bool kSend = false;
  const struct iovec* iov;
  int cnt;
  const std::uint64_t& total;
  Fn real;
  std::uint64_t size() const { return total; }
  ssize_t run() { return real(iov, cnt); }
  ssize_t run_limited(std::uint64_t n) {
    CopyScratch scratch(static_cast<std::size_t>(cnt) * sizeof(struct iovec));
    const int used = iov_prefix_safe(iov, cnt, n, scratch);
    if (used < 0) return real(iov, cnt);
    return real(static_cast<const struct iovec*>(scratch.data()), used);
  }
  ssize_t run_corrupted(const Decision& d) {
    // The array is copied before the call, so what is corrupted afterwards is exactly the
    // buffers the kernel filled, in place: each buffer's filled part, bit by bit, as one
    // stream (the same positions a single flat buffer would get).
    CopyScratch scratch(static_cast<std::size_t>(cnt) * sizeof(struct iovec));
    const int used = iov_prefix_safe(iov, cnt, total, scratch);
    if (used < 0) return real(iov, cnt);
    auto* v = static_cast<struct iovec*>(scratch.data());
    ssize_t r = real(v, used);
    if (r <= 0) return r;
    // Gathered into mmap'd scratch, corrupted, scattered back: the kernel has just written
    // these r bytes, so they are mapped and writable.
    CopyScratch data(static_cast<std::size_t>(r));
    if (!data.ok()) return r;
    auto* flat = static_cast<unsigned char*>(data.data());
    std::size_t at = 0;
    for (int i = 0; i < used && at < static_cast<std::size_t>(r); ++i) {
      const std::size_t take = std::min(v[i].iov_len, static_cast<std::size_t>(r) - at);
      std::memcpy(flat + at, v[i].iov_base, take);
      at += take;
    }
    corrupt_buffer(d, flat, at);
    at = 0;
    for (int i = 0; i < used && at < static_cast<std::size_t>(r); ++i) {
      const std::size_t take = std::min(v[i].iov_len, static_cast<std::size_t>(r) - at);
      std::memcpy(v[i].iov_base, flat + at, take);
      at += take;
    }
    return r;
  }
};

}  // namespace faultline::shim
