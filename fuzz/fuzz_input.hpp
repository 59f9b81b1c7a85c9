// SPDX-License-Identifier: MIT
#pragma once
/// Reads a fuzzer input front to back: small integers, choices from tables and byte strings.
/// Past the end every read returns zero / empty, so decoders need no length checks and a
/// truncated input is still a valid (shorter) program. Reading front to back keeps the seed
/// files readable and lets the fuzzer's mutations stay local.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <span>
#include <string_view>

namespace reactor::fuzz {

class Input {
 public:
  Input(const std::uint8_t* data, std::size_t size) noexcept : data_(data), size_(size) {}

  bool empty() const noexcept { return pos_ >= size_; }
  std::size_t remaining() const noexcept { return empty() ? 0 : size_ - pos_; }

  std::uint8_t u8() noexcept { return empty() ? 0 : data_[pos_++]; }
  std::uint16_t u16() noexcept {
    const std::uint16_t lo = u8();
    return static_cast<std::uint16_t>(lo | (u8() << 8));
  }
  std::uint32_t u32() noexcept {
    const std::uint32_t lo = u16();
    return lo | (std::uint32_t{u16()} << 16);
  }
  std::uint64_t u64() noexcept {
    const std::uint64_t lo = u32();
    return lo | (std::uint64_t{u32()} << 32);
  }
  bool flag() noexcept { return (u8() & 1) != 0; }

  /// One of `table`, chosen by the next byte.
  template <typename T>
  T pick(std::span<const T> table) noexcept {
    return table[u8() % table.size()];
  }

  /// Up to `max` bytes: a length byte (scaled to max), then that many bytes (fewer at the end).
  std::string_view bytes(std::size_t max) noexcept {
    std::size_t n = u8();
    if (max < 255) n = n % (max + 1);
    return take(n > max ? max : n);
  }
  /// Exactly the next n bytes, or what is left.
  std::string_view take(std::size_t n) noexcept {
    if (n > remaining()) n = remaining();
    std::string_view s(reinterpret_cast<const char*>(data_ + pos_), n);
    pos_ += n;
    return s;
  }
  /// Everything that is left.
  std::string_view rest() noexcept { return take(remaining()); }

 private:
  const std::uint8_t* data_;
  std::size_t size_;
  std::size_t pos_ = 0;
};

/// Stops the run with a message libFuzzer shows next to the crash: for a broken invariant.
[[noreturn]] inline void fail(const char* what, const char* file, int line) noexcept {
  std::fprintf(stderr, "\nFUZZ CHECK FAILED at %s:%d: %s\n", file, line, what);
  std::fflush(stderr);
  __builtin_trap();
}

}  // namespace reactor::fuzz

/// Like assert, but always on (fuzz builds are Debug with NDEBUG unset anyway, and a check
/// that a Release build drops would hide findings).
#define FUZZ_CHECK(cond)                                           \
  do {                                                             \
    if (!(cond)) ::reactor::fuzz::fail(#cond, __FILE__, __LINE__); \
  } while (0)
