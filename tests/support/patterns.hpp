// SPDX-License-Identifier: MIT
#pragma once
/// Bytes a test can check at the other end: a position-dependent pattern cheap enough for
/// hundreds of MiB, random bytes, the first difference of two strings, and a checksum.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <string_view>

namespace reactor::test {

/// The byte at stream offset `i` of the test pattern: byte i % 8 of (i / 8) times an odd
/// constant. Every aligned 8-byte word differs from every other within 2^61 words, so a slice
/// that is dropped, duplicated or moved by any amount is noticed.
inline char pattern_byte(std::uint64_t i) {
  const std::uint64_t w = (i >> 3) * 0x9E3779B97F4A7C15ull;
  return static_cast<char>((w >> ((i & 7) * 8)) & 0xff);
}

/// Fills `out` with `n` pattern bytes from stream offset `offset` (a multiple of 8 is
/// fastest).
inline void fill_pattern(std::uint64_t offset, char* out, std::size_t n) {
  std::size_t i = 0;
  for (; i < n && ((offset + i) & 7) != 0; ++i) out[i] = pattern_byte(offset + i);
  for (; i + 8 <= n; i += 8) {
    const std::uint64_t w = ((offset + i) >> 3) * 0x9E3779B97F4A7C15ull;
    std::memcpy(out + i, &w, 8);  // little-endian: byte k of w is byte k of the word
  }
  for (; i < n; ++i) out[i] = pattern_byte(offset + i);
}

/// `n` pattern bytes starting at stream offset `offset`.
inline std::string pattern(std::uint64_t offset, std::size_t n) {
  std::string s(n, '\0');
  fill_pattern(offset, s.data(), n);
  return s;
}

/// Index of the first byte of `got` that differs from the pattern at `offset`, or npos.
inline std::size_t pattern_mismatch(std::string_view got, std::uint64_t offset = 0) {
  char expected[4096];
  for (std::size_t done = 0; done < got.size();) {
    const std::size_t n = std::min(sizeof expected, got.size() - done);
    fill_pattern(offset + done, expected, n);
    if (std::memcmp(expected, got.data() + done, n) != 0) {
      for (std::size_t i = 0; i < n; ++i) {
        if (expected[i] != got[done + i]) return done + i;
      }
    }
    done += n;
  }
  return std::string_view::npos;
}

/// `n` random bytes from `rng`.
inline std::string random_bytes(std::mt19937_64& rng, std::size_t n) {
  std::string s(n, '\0');
  for (std::size_t i = 0; i < n; ++i) s[i] = static_cast<char>(rng() & 0xff);
  return s;
}

/// Index of the first difference between `a` and `b` (the shorter length if one is a prefix
/// of the other), or npos when they are equal.
inline std::size_t first_difference(std::string_view a, std::string_view b) {
  const std::size_t n = std::min(a.size(), b.size());
  for (std::size_t i = 0; i < n; ++i) {
    if (a[i] != b[i]) return i;
  }
  return a.size() == b.size() ? std::string_view::npos : n;
}

/// 64-bit FNV-1a, fed incrementally.
struct Fnv1a {
  std::uint64_t value = 14695981039346656037ull;
  std::uint64_t bytes = 0;
  void update(std::string_view s) {
    for (unsigned char c : s) {
      value ^= c;
      value *= 1099511628211ull;
    }
    bytes += s.size();
  }
};

}  // namespace reactor::test
