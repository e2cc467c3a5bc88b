// `loss` on @net (shim/engine/net_hold.h): the retransmission model's delays over many segments
// match their distribution, and the same seed gives the same delays.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <map>
#include <vector>

#include "shim/engine/net_hold.h"

namespace faultline::shim {
namespace {

std::vector<std::int64_t> delays(std::uint64_t seed, double loss, int n) {
  std::uint64_t state = seed;
  std::vector<std::int64_t> out;
  for (int i = 0; i < n; ++i) out.push_back(loss_extra_ns(state, loss, kLossRtoNs));
  return out;
}

// A segment's first k transmissions lost and the next one through: chance loss^k (1-loss),
// delay 200 ms x (2^k - 1). Over 1,000 segments each count is within 4 standard deviations
// of its expectation (a false failure about once in 16,000 runs; the seeds are fixed anyway).
TEST(NetLoss, DelaysFollowTheRetransmissionModel) {
  for (double loss : {0.02, 0.1, 0.3}) {
    SCOPED_TRACE(loss);
    const int n = 1000;
    std::map<std::int64_t, int> seen;
    for (std::int64_t d : delays(0x5eed + static_cast<std::uint64_t>(loss * 1000), loss, n))
      ++seen[d];
    for (int k = 0; k <= 3; ++k) {
      const double p = std::pow(loss, k) * (1 - loss);
      const double expect = n * p;
      const double sigma = std::sqrt(n * p * (1 - p));
      const std::int64_t delay = kLossRtoNs * ((std::int64_t{1} << k) - 1);
      EXPECT_NEAR(seen[delay], expect, 4 * sigma + 1) << "k=" << k;
    }
    for (const auto& [delay, count] : seen) {  // nothing outside the model
      bool known = false;
      for (int k = 0; k <= kLossMaxRetries; ++k)
        known |= delay == kLossRtoNs * ((std::int64_t{1} << k) - 1);
      EXPECT_TRUE(known) << delay;
    }
  }
}

TEST(NetLoss, SameSeedSameDelays) {
  EXPECT_EQ(delays(42, 0.2, 1000), delays(42, 0.2, 1000));
  EXPECT_NE(delays(42, 0.2, 1000), delays(43, 0.2, 1000));
}

TEST(NetLoss, NoLossNoDelayCertainLossCapped) {
  for (std::int64_t d : delays(7, 0.0, 100)) EXPECT_EQ(d, 0);
  // Every transmission lost: the model gives up retransmitting after kLossMaxRetries.
  for (std::int64_t d : delays(7, 1.0, 10))
    EXPECT_EQ(d, kLossRtoNs * ((std::int64_t{1} << kLossMaxRetries) - 1));
}

// A SYN lost: 1 s, then 3 s (1 + 2), 7 s... after the first transmission.
TEST(NetLoss, LostSynsWaitOneSecondThenDoubling) {
  std::uint64_t state = 1;
  EXPECT_EQ(loss_extra_ns(state, 1.0, kLossSynRtoNs), 63'000'000'000);
  int one = 0, three = 0;
  for (int seed = 0; seed < 2000; ++seed) {
    std::uint64_t s = static_cast<std::uint64_t>(seed);
    const std::int64_t d = loss_extra_ns(s, 0.5, kLossSynRtoNs);
    one += d == 1'000'000'000;
    three += d == 3'000'000'000;
  }
  EXPECT_NEAR(one, 500, 4 * std::sqrt(2000 * 0.25 * 0.75));
  EXPECT_NEAR(three, 250, 4 * std::sqrt(2000 * 0.125 * 0.875));
}

}  // namespace
}  // namespace faultline::shim
