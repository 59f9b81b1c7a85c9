// SPDX-License-Identifier: MIT
#pragma once
/// \file
/// The payload every connection sends: a deterministic byte stream per connection.
///
/// Connection number `serial` has the key `serial << 40`. Byte `o` of its stream is byte
/// `o % 8` (little-endian) of `pattern_word(key, o / 8)`, and message `m` is the bytes
/// [m * size, (m + 1) * size) of that stream, so the content depends on the connection, the
/// message's sequence number and the position inside it. pattern_word() is a bijection of
/// key + index, so no two 8-byte words of any connection (below 2^40 words, 8 TiB) are equal:
/// a flipped, lost, duplicated or reordered byte, or bytes from another connection, all
/// compare unequal. Generating costs two multiplies per 8 bytes, so nothing is stored.

#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>

namespace reactor::bench::load {

static_assert(std::endian::native == std::endian::little, "the pattern is defined little-endian");

/// The key of connection number `serial` (serials below 2^24).
constexpr std::uint64_t pattern_key(std::uint64_t serial) noexcept { return serial << 40; }

/// The connection number a key was made from.
constexpr std::uint64_t pattern_serial(std::uint64_t key) noexcept { return key >> 40; }

/// Word `index` of the stream of `key`: an invertible mix (odd multiplies, xor-shifts).
constexpr std::uint64_t pattern_word(std::uint64_t key, std::uint64_t index) noexcept {
  std::uint64_t z = (key + index) * 0x9E3779B97F4A7C15ull;
  z ^= z >> 32;
  z *= 0xD6E8FEB86659FD93ull;
  return z ^ (z >> 29);
}

/// Byte `offset` of the stream of `key`.
constexpr std::uint8_t pattern_byte(std::uint64_t key, std::uint64_t offset) noexcept {
  return static_cast<std::uint8_t>(pattern_word(key, offset / 8) >> (8 * (offset % 8)));
}

/// Writes bytes [offset, offset + n) of the stream of `key` to `out`.
inline void pattern_fill(std::uint64_t key, std::uint64_t offset, std::uint8_t* out,
                         std::size_t n) noexcept {
  std::size_t i = 0;
  for (; i < n && (offset + i) % 8 != 0; ++i) out[i] = pattern_byte(key, offset + i);
  std::uint64_t word = (offset + i) / 8;
  for (; i + 8 <= n; i += 8) {
    const std::uint64_t v = pattern_word(key, word++);
    std::memcpy(out + i, &v, 8);
  }
  for (; i < n; ++i) out[i] = pattern_byte(key, offset + i);
}

/// Index of the first byte of `in[0, n)` that differs from bytes [offset, offset + n) of the
/// stream of `key`; n if all match.
inline std::size_t pattern_check(std::uint64_t key, std::uint64_t offset, const std::uint8_t* in,
                                 std::size_t n) noexcept {
  std::size_t i = 0;
  for (; i < n && (offset + i) % 8 != 0; ++i) {
    if (in[i] != pattern_byte(key, offset + i)) return i;
  }
  std::uint64_t word = (offset + i) / 8;
  for (; i + 8 <= n; i += 8) {
    std::uint64_t v;
    std::memcpy(&v, in + i, 8);
    const std::uint64_t diff = v ^ pattern_word(key, word++);
    if (diff != 0) return i + static_cast<std::size_t>(std::countr_zero(diff) / 8);
  }
  for (; i < n; ++i) {
    if (in[i] != pattern_byte(key, offset + i)) return i;
  }
  return n;
}

}  // namespace reactor::bench::load
