// Io adapters (see io.h) for the two shapes of byte-moving calls: one buffer, or an iovec.
#pragma once

#include <sys/uio.h>

#include <cstdlib>
#include <cstring>
#include <vector>

#include "io.h"

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
    if (r > 0) corrupt_buffer(d, buf, static_cast<std::size_t>(r));
    return r;
  }
};

inline std::uint64_t iov_total(const struct iovec* iov, int cnt) {
  std::uint64_t total = 0;
  for (int i = 0; i < cnt; ++i) total += iov[i].iov_len;
  return total;
}

// The first n bytes of an iovec, as a new iovec array (the caller's is never modified).
inline std::vector<struct iovec> iov_prefix(const struct iovec* iov, int cnt, std::uint64_t n) {
  std::vector<struct iovec> out;
  for (int i = 0; i < cnt && n > 0; ++i) {
    std::size_t take = iov[i].iov_len < n ? iov[i].iov_len : static_cast<std::size_t>(n);
    out.push_back({iov[i].iov_base, take});
    n -= take;
  }
  return out;
}

template <class Fn>  // ssize_t(const struct iovec*, int)
struct IovWrite {
  static constexpr bool kSend = true;
  const struct iovec* iov;
  int cnt;
  Fn real;
  std::uint64_t size() const { return iov_total(iov, cnt); }
  ssize_t run() { return real(iov, cnt); }
  ssize_t run_limited(std::uint64_t n) {
    auto prefix = iov_prefix(iov, cnt, n);
    return real(prefix.data(), static_cast<int>(prefix.size()));
  }
  ssize_t run_corrupted(const Decision& d) {
    // Flattened into one private buffer: same bytes, same single call, caller's data intact.
    std::vector<unsigned char> copy;
    copy.reserve(size());
    for (int i = 0; i < cnt; ++i) {
      auto* base = static_cast<const unsigned char*>(iov[i].iov_base);
      copy.insert(copy.end(), base, base + iov[i].iov_len);
    }
    corrupt_buffer(d, copy.data(), copy.size());
    struct iovec one = {copy.data(), copy.size()};
    return real(&one, 1);
  }
};

template <class Fn>  // ssize_t(const struct iovec*, int)
struct IovRead {
  static constexpr bool kSend = false;
  const struct iovec* iov;
  int cnt;
  Fn real;
  std::uint64_t size() const { return iov_total(iov, cnt); }
  ssize_t run() { return real(iov, cnt); }
  ssize_t run_limited(std::uint64_t n) {
    auto prefix = iov_prefix(iov, cnt, n);
    return real(prefix.data(), static_cast<int>(prefix.size()));
  }
  ssize_t run_corrupted(const Decision& d) {
    ssize_t r = real(iov, cnt);
    if (r <= 0) return r;
    // Corrupt what was read, gathered into a scratch copy and scattered back.
    auto prefix = iov_prefix(iov, cnt, static_cast<std::uint64_t>(r));
    std::vector<unsigned char> data;
    for (const auto& v : prefix) {
      auto* base = static_cast<unsigned char*>(v.iov_base);
      data.insert(data.end(), base, base + v.iov_len);
    }
    corrupt_buffer(d, data.data(), data.size());
    std::size_t at = 0;
    for (const auto& v : prefix) {
      std::memcpy(v.iov_base, data.data() + at, v.iov_len);
      at += v.iov_len;
    }
    return r;
  }
};

}  // namespace faultline::shim
