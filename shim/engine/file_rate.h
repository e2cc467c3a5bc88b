// `bandwidth` on files (@write, @read): a disk read or write takes as long as its bytes need at
// the fault's rate. Each file (its device and inode, per fault) has a bucket: the moment its
// budget is next free. A call of n bytes reserves n / rate past max(now, that moment) and the
// calling thread is held until the end of its reservation (the delay's wait, apply_delay), so
// that threads and calls on the same file share its rate instead of each getting it whole.
// The table is fixed (kRateBuckets), lock-free, and never allocates; a file that finds no
// bucket (every one busy with another file) is held for its own bytes alone.
#pragma once

#include <cstdint>

#include "shim/engine/engine.h"

namespace faultline::shim {

inline constexpr int kRateBuckets = 256;

// How long the call moving `bytes` on fd must be held for the decision's bandwidth, counting
// from now, with its reservation made. 0 for a socket (@net bandwidth is the network hold's)
// or an fd that is not open.
std::int64_t file_bandwidth_ns(const Decision& d, int fd, std::uint64_t bytes) noexcept;

// The reservation itself, on the bucket of `key` (exposed for the unit tests): returns the
// wait from `now_ns`.
std::int64_t rate_reserve(std::uint64_t key, std::uint64_t bytes, std::uint64_t bytes_per_s,
                          std::int64_t now_ns) noexcept;

}  // namespace faultline::shim
