// Per-file bandwidth buckets (see file_rate.h).
#include "shim/engine/file_rate.h"

#include <sys/stat.h>

#include <atomic>

#include "session/session.h"

namespace faultline::shim {
namespace {

struct Bucket {
  std::atomic<std::uint64_t> key;     // 0 = free
  std::atomic<std::int64_t> free_ns;  // CLOCK_MONOTONIC moment the file's budget is next free
};

Bucket g_buckets[kRateBuckets];

// A bucket whose budget has been free this long belongs to an idle file: another may take it.
constexpr std::int64_t kIdleNs = 1'000'000'000;
constexpr int kProbes = 16;
// Reservations saturate here (~146 years): a copy of 2^63 bytes at 1 B/s must not wrap.
constexpr std::int64_t kMaxWaitNs = INT64_MAX / 2;

std::uint64_t mix_key(std::uint64_t x) {
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdull;
  x ^= x >> 33;
  x *= 0xc4ceb9fe1a85ec53ull;
  return x ^ (x >> 33);
}

// bytes * 1e9 / rate without a 128-bit product: whole seconds, then the remainder.
std::int64_t transfer_ns(std::uint64_t bytes, std::uint64_t bytes_per_s) {
  const std::uint64_t rate = bytes_per_s ? bytes_per_s : 1;
  const std::uint64_t secs = bytes / rate;
  if (secs >= static_cast<std::uint64_t>(kMaxWaitNs) / 1'000'000'000u) return kMaxWaitNs;
  // remainder < rate; rate * 1e9 fits 64 bits for any rate below 18 GB/s, and above that
  // the remainder's share of a second is computed in two steps.
  const std::uint64_t rem = bytes % rate;
  const std::uint64_t frac = rate <= UINT64_MAX / 1'000'000'000u
                                 ? rem * 1'000'000'000u / rate
                                 : rem / (rate / 1'000'000'000u + 1);
  return static_cast<std::int64_t>(secs * 1'000'000'000u + frac);
}

Bucket* find_bucket(std::uint64_t key, std::int64_t now_ns) {
  const std::uint64_t home = key % kRateBuckets;
  for (int probe = 0; probe < kProbes; ++probe) {
    Bucket& b = g_buckets[(home + static_cast<std::uint64_t>(probe)) % kRateBuckets];
    std::uint64_t seen = b.key.load(std::memory_order_acquire);
    if (seen == key) return &b;
    // Free, or an idle file's: claimed with one CAS on the key. Its free_ns is in the past, so
    // the new file starts with its budget free. (A thread that read the old key just before
    // may still reserve on it once: a moment's sharing between two files, never a lost wait.)
    const bool idle = seen == 0 || b.free_ns.load(std::memory_order_relaxed) + kIdleNs < now_ns;
    if (idle &&
        (b.key.compare_exchange_strong(seen, key, std::memory_order_acq_rel) || seen == key))
      return &b;
  }
  return nullptr;
}

}  // namespace

std::int64_t rate_reserve(std::uint64_t key, std::uint64_t bytes, std::uint64_t bytes_per_s,
                          std::int64_t now_ns) noexcept {
  const std::int64_t need = transfer_ns(bytes, bytes_per_s);
  Bucket* b = find_bucket(key ? key : 1, now_ns);
  if (!b) return need;
  std::int64_t free_ns = b->free_ns.load(std::memory_order_relaxed);
  std::int64_t end;
  do {
    const std::int64_t start = free_ns > now_ns ? free_ns : now_ns;
    end = start < kMaxWaitNs - need ? start + need : kMaxWaitNs;
  } while (!b->free_ns.compare_exchange_weak(free_ns, end, std::memory_order_acq_rel,
                                             std::memory_order_relaxed));
  return end - now_ns;
}

std::int64_t file_bandwidth_ns(const Decision& d, int fd, std::uint64_t bytes) noexcept {
  if (bytes == 0 || d.bandwidth_bps == 0 || fd < 0) return 0;
  struct stat st;
  if (fstat(fd, &st) != 0 || S_ISSOCK(st.st_mode)) return 0;
  const std::uint64_t key =
      mix_key(mix_key(static_cast<std::uint64_t>(st.st_dev) ^ mix_key(st.st_ino)) ^
              static_cast<std::uint64_t>(d.fault));
  return rate_reserve(key, bytes, d.bandwidth_bps, monotonic_ns());
}

}  // namespace faultline::shim
