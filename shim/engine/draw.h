// Seeded draws for the shapes of time a fault adds: a log-normal delay or latency with a given
// median and 99th percentile (`p99`). Pure arithmetic on one 64-bit draw, with its own
// logarithm, exponential and square root: no libm, no errno, nothing a signal handler must
// not reach, and the same value on every machine for the same seed.
#pragma once

#include <cstdint>

namespace faultline::shim {

// A duration drawn from the log-normal distribution whose median is `median_ns` and whose
// 99th percentile is `p99_ns` (>= median). `draw` is the decision's random word; the same word
// gives the same duration. Capped at 100 times the p99 (and 100 years): a tail, not a hang.
std::int64_t lognormal_ns(std::int64_t median_ns, std::int64_t p99_ns, std::uint64_t draw) noexcept;

// A standard normal deviate from `draw` (Marsaglia's polar method over a splitmix64 stream).
double standard_normal(std::uint64_t draw) noexcept;

double draw_log(double x) noexcept;  // x > 0
double draw_exp(double x) noexcept;  // |x| < 700

}  // namespace faultline::shim
