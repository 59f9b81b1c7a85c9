// SPDX-License-Identifier: MIT
#pragma once
// A backend's per-fd records, indexed by fd, in fixed chunks: growing never copies, and the
// memory held is what is used rounded up to one chunk (a std::vector doubling would hold up to
// twice that). Records of fds never reached stay value-initialised.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

namespace reactor::backends {

template <class T, std::size_t kChunk = 512>
class FdTable {
 public:
  // Fds below this have a record.
  std::size_t size() const noexcept { return chunks_.size() * kChunk; }
  // Makes a record for `fd` (not negative). Throws std::bad_alloc.
  void grow_to(std::size_t fd) {
    while (fd >= size()) chunks_.push_back(std::make_unique<T[]>(kChunk));
  }
  T& operator[](std::size_t fd) noexcept { return chunks_[fd / kChunk][fd % kChunk]; }
  const T& operator[](std::size_t fd) const noexcept { return chunks_[fd / kChunk][fd % kChunk]; }

 private:
  std::vector<std::unique_ptr<T[]>> chunks_;
};

// The 64-bit token a caller hands to add()/modify(), kept as two 32-bit halves so that a
// record holding it needs no 8-byte alignment (no padding beside 4-byte fields).
struct SplitToken {
  std::uint32_t low = 0;
  std::uint32_t high = 0;
  SplitToken() = default;
  explicit SplitToken(std::uint64_t token) noexcept
      : low(static_cast<std::uint32_t>(token)), high(static_cast<std::uint32_t>(token >> 32)) {}
  std::uint64_t value() const noexcept { return (std::uint64_t{high} << 32) | low; }
};

}  // namespace reactor::backends
