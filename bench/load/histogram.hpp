// SPDX-License-Identifier: MIT
#pragma once
/// \file
/// A log-bucket latency histogram, HdrHistogram-like: exact below 128, then 64 buckets per
/// power of two, so a bucket's midpoint is within 1/128 (0.8%) of any value in it. Fixed size
/// (about 30 KiB), no allocation after construction; record() is a few instructions.

#include <array>
#include <cstdint>

namespace reactor::bench::load {

/// Counts of non-negative integer values (nanoseconds here). Single-threaded.
class LatencyHistogram {
 public:
  /// Adds one value.
  void record(std::uint64_t value) noexcept {
    ++counts_[bucket_of(value)];
    ++count_;
    if (value > max_) max_ = value;
  }

  /// Forgets every value.
  void clear() noexcept;

  /// Values recorded since the last clear().
  std::uint64_t count() const noexcept { return count_; }

  /// Largest value recorded (exact); 0 if none.
  std::uint64_t max() const noexcept { return max_; }

  /// The value at quantile q (0..1): the midpoint of the bucket holding the ceil(q * count)-th
  /// smallest value, capped at max(). 0 if empty.
  std::uint64_t quantile(double q) const noexcept;

 private:
  static constexpr int kSubBits = 6;  // 64 buckets per power of two
  static constexpr int kSub = 1 << kSubBits;
  static constexpr int kBuckets = (64 - kSubBits) * kSub;

  static int bucket_of(std::uint64_t value) noexcept;
  static std::uint64_t midpoint_of(int bucket) noexcept;

  std::array<std::uint64_t, kBuckets> counts_{};
  std::uint64_t count_ = 0;
  std::uint64_t max_ = 0;
};

inline int LatencyHistogram::bucket_of(std::uint64_t value) noexcept {
  if (value < 2 * kSub) return static_cast<int>(value);
  // Keep the top kSubBits + 1 bits: value = mantissa << shift, mantissa in [kSub, 2 * kSub).
  const int shift = 63 - __builtin_clzll(value) - kSubBits;
  const auto mantissa = static_cast<int>(value >> shift);
  return (shift + 1) * kSub + (mantissa - kSub);
}

}  // namespace reactor::bench::load
