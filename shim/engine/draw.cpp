// Log-normal draws without libm (draw.h). Accuracy needed: a few parts in a million, far
// below what a clock can show; the series below give about 1e-12.
#include "shim/engine/draw.h"

#include <bit>

namespace faultline::shim {
namespace {

constexpr double kLn2 = 0.6931471805599453;
// The 99th percentile of the standard normal distribution.
constexpr double kZ99 = 2.3263478740408408;

std::uint64_t next(std::uint64_t& state) noexcept {
  std::uint64_t x = (state += 0x9e3779b97f4a7c15ull);
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

// Uniform in (-1, 1) from the top 53 bits.
double signed_unit(std::uint64_t bits) noexcept {
  return static_cast<double>(bits >> 11) * (2.0 / 9007199254740992.0) - 1.0;
}

double draw_sqrt(double x) noexcept {
  if (x <= 0) return 0;
  // A first guess from the exponent bits, then Newton: quadratic, six steps are plenty.
  double r = std::bit_cast<double>((std::bit_cast<std::uint64_t>(x) >> 1) + 0x1ff8000000000000ull);
  for (int i = 0; i < 6; ++i) r = 0.5 * (r + x / r);
  return r;
}

}  // namespace

double draw_log(double x) noexcept {
  // x = m * 2^e with m in [1, 2); ln m = 2 atanh((m - 1) / (m + 1)), |s| <= 1/3.
  const std::uint64_t bits = std::bit_cast<std::uint64_t>(x);
  const int e = static_cast<int>((bits >> 52) & 0x7ff) - 1023;
  const double m = std::bit_cast<double>((bits & 0x000fffffffffffffull) | 0x3ff0000000000000ull);
  const double s = (m - 1) / (m + 1);
  const double s2 = s * s;
  double term = s, sum = 0;
  for (int k = 1; k < 40; k += 2) {
    sum += term / k;
    term *= s2;
  }
  return 2 * sum + e * kLn2;
}

double draw_exp(double x) noexcept {
  // x = n ln2 + r, |r| <= ln2 / 2; e^r by its series, 2^n by the exponent bits.
  const double nf = x / kLn2;
  const int n = static_cast<int>(nf < 0 ? nf - 0.5 : nf + 0.5);
  const double r = x - n * kLn2;
  double term = 1, sum = 1;
  for (int k = 1; k < 20; ++k) {
    term *= r / k;
    sum += term;
  }
  return sum * std::bit_cast<double>(static_cast<std::uint64_t>(n + 1023) << 52);
}

double standard_normal(std::uint64_t draw) noexcept {
  std::uint64_t state = draw;
  // Accepts with probability pi/4 per round: 64 rounds fail about once in 10^43.
  for (int round = 0; round < 64; ++round) {
    const double u = signed_unit(next(state));
    const double v = signed_unit(next(state));
    const double s = u * u + v * v;
    if (s > 0 && s < 1) return u * draw_sqrt(-2 * draw_log(s) / s);
  }
  return 0;
}

std::int64_t lognormal_ns(std::int64_t median_ns, std::int64_t p99_ns,
                          std::uint64_t draw) noexcept {
  if (median_ns <= 0) return 0;
  if (p99_ns <= median_ns) return median_ns;
  const double mu = draw_log(static_cast<double>(median_ns));
  const double sigma = (draw_log(static_cast<double>(p99_ns)) - mu) / kZ99;
  double exponent = mu + sigma * standard_normal(draw);
  // 100 years bounds it too, like every duration the compiler accepts.
  const double cap =
      static_cast<double>(p99_ns) * 100 < 3.1536e18 ? static_cast<double>(p99_ns) * 100 : 3.1536e18;
  if (exponent > 690) return static_cast<std::int64_t>(cap);
  const double ns = draw_exp(exponent);
  return static_cast<std::int64_t>(ns > cap ? cap : ns);
}

}  // namespace faultline::shim
