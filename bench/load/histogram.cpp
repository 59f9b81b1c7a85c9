// SPDX-License-Identifier: MIT
#include "bench/load/histogram.hpp"

#include <algorithm>
#include <cmath>

namespace reactor::bench::load {

void LatencyHistogram::clear() noexcept {
  counts_.fill(0);
  count_ = 0;
  max_ = 0;
}

std::uint64_t LatencyHistogram::midpoint_of(int bucket) noexcept {
  if (bucket < 2 * kSub) return static_cast<std::uint64_t>(bucket);
  const int shift = bucket / kSub - 1;
  const auto mantissa = static_cast<std::uint64_t>(bucket % kSub + kSub);
  const std::uint64_t low = mantissa << shift;
  return low + ((std::uint64_t{1} << shift) - 1) / 2;
}

std::uint64_t LatencyHistogram::quantile(double q) const noexcept {
  if (count_ == 0) return 0;
  q = std::clamp(q, 0.0, 1.0);
  const auto rank = std::max<std::uint64_t>(
      1, static_cast<std::uint64_t>(std::ceil(q * static_cast<double>(count_))));
  std::uint64_t seen = 0;
  for (int b = 0; b < kBuckets; ++b) {
    seen += counts_[static_cast<std::size_t>(b)];
    if (seen >= rank) return std::min(midpoint_of(b), max_);
  }
  return max_;
}

}  // namespace reactor::bench::load
