// SPDX-License-Identifier: MIT
// Pure unit tests of reactor::Buffer (no loop, no backend), including buffer arithmetic
// allocator failure injection and read_from over a socket pair.
#include "reactor/net/buffer.hpp"

#include <gtest/gtest.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <vector>

#include "tests/support/fds.hpp"
#include "tests/support/io.hpp"

namespace {

using reactor::Buffer;
using reactor::BufferAllocator;

constexpr std::size_t kMax = SIZE_MAX;

std::string pattern(std::size_t n, unsigned seed = 0) {
  std::string s(n, '\0');
  for (std::size_t i = 0; i < n; ++i)
    s[i] = static_cast<char>((i * 131 + seed * 7 + i / 251) & 0xff);
  return s;
}

/// Everything observable about a buffer, to check that a failed call changed nothing.
struct Snapshot {
  explicit Snapshot(const Buffer& b)
      : bytes(b.view()),
        data(b.data()),
        size(b.size()),
        capacity(b.capacity()),
        max_size(b.max_size()) {}
  std::string bytes;
  const char* data;
  std::size_t size, capacity, max_size;
  bool operator==(const Snapshot&) const = default;
};

// --- allocator injection -------------------------------------------------------------------

std::atomic<bool> g_fail{false};
std::atomic<std::size_t> g_refuse_above{kMax};
std::atomic<long> g_live{0};
std::atomic<long> g_allocations{0};
std::atomic<std::size_t> g_last_request{0};

void* test_allocate(std::size_t n) noexcept {
  g_last_request = n;
  if (g_fail.load() || n > g_refuse_above.load()) return nullptr;
  void* p = std::malloc(n);
  if (p != nullptr) {
    ++g_live;
    ++g_allocations;
  }
  return p;
}
void test_release(void* p) noexcept {
  --g_live;
  std::free(p);
}

/// Installs the counting, failable allocator for one scope and restores the previous one.
/// Compatible with the default (both use malloc/free), as set_buffer_allocator requires.
class TestAllocator {
 public:
  TestAllocator() {
    g_fail = false;
    g_refuse_above = kMax;
    g_live = 0;
    g_allocations = 0;
    previous_ = reactor::set_buffer_allocator({test_allocate, test_release});
  }
  ~TestAllocator() {
    reactor::set_buffer_allocator(previous_);
    g_fail = false;
    g_refuse_above = kMax;
  }
  TestAllocator(const TestAllocator&) = delete;
  TestAllocator& operator=(const TestAllocator&) = delete;

 private:
  BufferAllocator previous_{};
};

// --- basics ---------------------------------------------------------------------------------

TEST(BufferTest, StartsEmpty) {
  Buffer b;
  EXPECT_TRUE(b.valid());
  EXPECT_TRUE(b.empty());
  EXPECT_EQ(b.size(), 0u);
  EXPECT_EQ(b.capacity(), 0u);
  EXPECT_EQ(b.max_size(), Buffer::kDefaultMaxSize);
  EXPECT_EQ(b.view(), "");
  EXPECT_TRUE(b.writable().empty());
  Buffer capped(10);
  EXPECT_EQ(capped.max_size(), 10u);
}

TEST(BufferTest, AppendAndView) {
  Buffer b;
  EXPECT_FALSE(b.append("hello"));
  EXPECT_TRUE(b.valid());
  EXPECT_FALSE(b.append(std::string_view(", ")));
  EXPECT_FALSE(b.append("world!", 5));
  EXPECT_TRUE(b.valid());
  EXPECT_EQ(b.view(), "hello, world");
  EXPECT_EQ(std::string_view(b.data(), b.size()), "hello, world");
  EXPECT_EQ(b.size(), 12u);
  EXPECT_FALSE(b.empty());
  EXPECT_GE(b.capacity(), 12u);
}

TEST(BufferTest, AppendEmptyAndNull) {
  Buffer b;
  EXPECT_FALSE(b.append(nullptr, 0));
  EXPECT_FALSE(b.append(std::string_view()));
  EXPECT_EQ(b.capacity(), 0u);
  EXPECT_EQ(b.append(nullptr, 1), std::errc::invalid_argument);
  EXPECT_TRUE(b.valid());
  EXPECT_TRUE(b.empty());
}

TEST(BufferTest, AppendKeepsBinaryBytes) {
  Buffer b;
  const std::string bytes("a\0b\r\n\xff", 6);
  EXPECT_FALSE(b.append(bytes));
  EXPECT_EQ(b.view(), bytes);
}

TEST(BufferTest, AppendOtherBuffer) {
  Buffer a, b;
  ASSERT_FALSE(a.append("abc"));
  ASSERT_FALSE(b.append("xyz"));
  EXPECT_FALSE(a.append(b));
  EXPECT_EQ(a.view(), "abcxyz");
  EXPECT_EQ(b.view(), "xyz");  // the source keeps its bytes
  Buffer empty;
  EXPECT_FALSE(a.append(empty));
  EXPECT_EQ(a.view(), "abcxyz");
  EXPECT_TRUE(a.valid());
  EXPECT_TRUE(b.valid());
}

TEST(BufferTest, AppendOtherBufferRespectsCap) {
  Buffer a(4), b;
  ASSERT_FALSE(b.append("12345"));
  EXPECT_EQ(a.append(b), std::errc::no_buffer_space);
  EXPECT_TRUE(a.empty());
  EXPECT_TRUE(a.valid());
}

TEST(BufferTest, AppendSelfIsInvalid) {
  Buffer b;
  ASSERT_FALSE(b.append("abc"));
  Snapshot before(b);
  EXPECT_EQ(b.append(b), std::errc::invalid_argument);
  EXPECT_EQ(Snapshot(b), before);
  EXPECT_TRUE(b.valid());
  Buffer empty;
  EXPECT_EQ(empty.append(empty), std::errc::invalid_argument);
  EXPECT_TRUE(empty.valid());
}

TEST(BufferTest, AppendOwnViewWithoutGrowth) {
  Buffer b;
  ASSERT_FALSE(b.append("abcdef"));
  std::error_code ec;
  b.prepare(100, ec);
  ASSERT_FALSE(ec);
  const std::size_t cap = b.capacity();
  EXPECT_FALSE(b.append(b.view().substr(1, 3)));
  EXPECT_EQ(b.view(), "abcdefbcd");
  EXPECT_EQ(b.capacity(), cap);
  EXPECT_TRUE(b.valid());
}

TEST(BufferTest, AppendOwnViewAcrossReallocation) {
  // The whole content appended to itself forces a reallocation that frees the source; under
  // ASan a read from the old block would be reported.
  Buffer b;
  std::string model = pattern(1000);
  ASSERT_FALSE(b.append(model));
  for (int i = 0; i < 8; ++i) {
    const std::size_t cap = b.capacity();
    EXPECT_FALSE(b.append(b.view()));
    model += model;
    EXPECT_EQ(b.view(), model);
    EXPECT_TRUE(b.valid());
    EXPECT_GT(b.capacity(), cap);
  }
}

TEST(BufferTest, AppendOwnViewAcrossSlide) {
  // Consumed space at the front plus the room at the back fits: the bytes slide to the front,
  // overlapping their old place, which moves the source too.
  Buffer b;
  ASSERT_FALSE(b.append(pattern(1000)));
  std::error_code ec;
  auto room = b.prepare(0, ec);
  ASSERT_FALSE(b.commit(room.size()));  // fill to capacity exactly
  const std::size_t cap = b.capacity();
  std::string model(b.view());
  ASSERT_FALSE(b.consume(cap - 600));
  model.erase(0, cap - 600);
  const char* before = b.data();
  EXPECT_FALSE(b.append(b.view().substr(10, 300)));
  model += model.substr(10, 300);
  EXPECT_EQ(b.view(), model);
  EXPECT_EQ(b.capacity(), cap);  // slid, did not reallocate
  EXPECT_NE(b.data(), before);
  EXPECT_TRUE(b.valid());
}

TEST(BufferTest, AppendOfOwnDeadBytesIsInvalid) {
  // Pointers into the consumed front or the uncommitted back hold no meaningful bytes.
  Buffer b;
  ASSERT_FALSE(b.append("0123456789"));
  const char* consumed = b.data();
  ASSERT_FALSE(b.consume(4));
  Snapshot before(b);
  EXPECT_EQ(b.append(consumed, 2), std::errc::invalid_argument);
  EXPECT_EQ(b.append(b.data() + 4, 3), std::errc::invalid_argument);  // runs past the end
  EXPECT_EQ(b.append(b.data() + b.size(), 1), std::errc::invalid_argument);
  EXPECT_EQ(b.append(b.data(), kMax), std::errc::invalid_argument);
  EXPECT_EQ(Snapshot(b), before);
  EXPECT_FALSE(b.append(b.data() + 5, 1));  // the last readable byte is fine
  EXPECT_EQ(b.view(), "4567899");
}

TEST(BufferTest, Peek) {
  Buffer b;
  std::error_code ec;
  EXPECT_EQ(b.peek(0, ec), "");
  EXPECT_FALSE(ec);
  ASSERT_FALSE(b.append("abcdef"));
  EXPECT_EQ(b.peek(3, ec), "abc");
  EXPECT_FALSE(ec);
  EXPECT_EQ(b.peek(6, ec), "abcdef");
  EXPECT_FALSE(ec);
  EXPECT_EQ(b.peek(7, ec), "");
  EXPECT_EQ(ec, std::errc::invalid_argument);
  EXPECT_EQ(b.peek(3, ec), "abc");
  EXPECT_FALSE(ec) << "success clears the error";
  EXPECT_EQ(b.size(), 6u);
}

TEST(BufferTest, Consume) {
  Buffer b;
  ASSERT_FALSE(b.append("abcdef"));
  EXPECT_FALSE(b.consume(0));
  EXPECT_FALSE(b.consume(2));
  EXPECT_EQ(b.view(), "cdef");
  EXPECT_TRUE(b.valid());
  Snapshot before(b);
  EXPECT_EQ(b.consume(5), std::errc::invalid_argument);
  EXPECT_EQ(Snapshot(b), before);
  const std::size_t cap = b.capacity();
  EXPECT_FALSE(b.consume(4));
  EXPECT_TRUE(b.empty());
  EXPECT_EQ(b.capacity(), cap);
  EXPECT_EQ(b.writable().size(), cap) << "emptying returns both positions to 0";
  EXPECT_TRUE(b.valid());
}

TEST(BufferTest, ClearKeepsMemory) {
  Buffer b;
  ASSERT_FALSE(b.append(pattern(5000)));
  ASSERT_FALSE(b.consume(10));
  const std::size_t cap = b.capacity();
  b.clear();
  EXPECT_TRUE(b.empty());
  EXPECT_EQ(b.capacity(), cap);
  EXPECT_EQ(b.writable().size(), cap);
  EXPECT_TRUE(b.valid());
}

TEST(BufferTest, ShrinkReleasesUnusedMemory) {
  Buffer b;
  ASSERT_FALSE(b.append(pattern(10000)));
  ASSERT_FALSE(b.consume(9000));
  const std::string rest(b.view());
  b.shrink();
  EXPECT_EQ(b.capacity(), 1000u);
  EXPECT_EQ(b.view(), rest);
  EXPECT_TRUE(b.valid());
  b.shrink();  // already tight
  EXPECT_EQ(b.capacity(), 1000u);
  b.clear();
  b.shrink();
  EXPECT_EQ(b.capacity(), 0u);
  EXPECT_TRUE(b.valid());
  EXPECT_FALSE(b.append("again"));
  EXPECT_EQ(b.view(), "again");
}

TEST(BufferTest, PrepareAndCommit) {
  Buffer b;
  std::error_code ec;
  auto room = b.prepare(100, ec);
  ASSERT_FALSE(ec);
  ASSERT_GE(room.size(), 100u);
  EXPECT_EQ(room.data(), b.writable().data());
  EXPECT_EQ(room.size(), b.writable().size());
  std::memcpy(room.data(), "0123456789", 10);
  EXPECT_TRUE(b.empty()) << "nothing is readable before commit";
  EXPECT_FALSE(b.commit(10));
  EXPECT_EQ(b.view(), "0123456789");
  EXPECT_TRUE(b.valid());
  // Off by one past the writable region.
  Snapshot before(b);
  EXPECT_EQ(b.commit(b.writable().size() + 1), std::errc::invalid_argument);
  EXPECT_EQ(b.commit(kMax), std::errc::invalid_argument);
  EXPECT_EQ(Snapshot(b), before);
  EXPECT_FALSE(b.commit(0));
  EXPECT_FALSE(b.commit(b.writable().size()));  // exactly the region is fine
  EXPECT_EQ(b.size(), b.capacity());
  EXPECT_TRUE(b.writable().empty());
  EXPECT_TRUE(b.valid());
}

TEST(BufferTest, PrepareZeroDoesNotAllocate) {
  Buffer b;
  std::error_code ec;
  auto room = b.prepare(0, ec);
  EXPECT_FALSE(ec);
  EXPECT_TRUE(room.empty());
  EXPECT_EQ(b.capacity(), 0u);
}

TEST(BufferTest, CommitCannotPassTheCap) {
  // Growth never passes the cap, but a cap lowered later can leave more writable room than
  // the cap allows; commit enforces the cap.
  Buffer b;
  std::error_code ec;
  auto room = b.prepare(1000, ec);
  ASSERT_FALSE(ec);
  ASSERT_FALSE(b.commit(100));
  ASSERT_FALSE(b.set_max_size(150));
  ASSERT_GT(b.writable().size(), 50u);
  const Snapshot before(b);
  EXPECT_EQ(b.commit(51), std::errc::no_buffer_space);
  EXPECT_EQ(Snapshot(b), before);
  EXPECT_FALSE(b.commit(50));
  EXPECT_EQ(b.size(), 150u);
  EXPECT_TRUE(b.valid());
  EXPECT_EQ(b.append("x"), std::errc::no_buffer_space);
  EXPECT_GE(room.size(), 1000u);
}

TEST(BufferTest, GrowthNeverPassesTheCap) {
  Buffer b(300);
  for (int i = 0; i < 300; ++i) {
    ASSERT_FALSE(b.append("x"));
    ASSERT_LE(b.capacity(), 300u);
  }
  EXPECT_EQ(b.append("x"), std::errc::no_buffer_space);
  EXPECT_EQ(b.size(), 300u);
  std::error_code ec;
  Buffer c(300);
  auto room = c.prepare(10, ec);
  EXPECT_GE(room.size(), 10u);
  EXPECT_LE(c.capacity(), 300u);
}

TEST(BufferTest, SetMaxSize) {
  Buffer b;
  ASSERT_FALSE(b.append("abcdef"));
  EXPECT_EQ(b.set_max_size(5), std::errc::no_buffer_space);
  EXPECT_EQ(b.max_size(), Buffer::kDefaultMaxSize);
  EXPECT_FALSE(b.set_max_size(6));
  EXPECT_EQ(b.max_size(), 6u);
  EXPECT_EQ(b.append("x"), std::errc::no_buffer_space);
  EXPECT_EQ(b.view(), "abcdef");
  EXPECT_FALSE(b.set_max_size(kMax));
  EXPECT_FALSE(b.append("x"));
  EXPECT_TRUE(b.valid());
}

TEST(BufferTest, CapIsExact) {
  Buffer b(10);
  EXPECT_FALSE(b.append("0123456789"));
  EXPECT_EQ(b.append("x"), std::errc::no_buffer_space);
  EXPECT_EQ(b.view(), "0123456789");
  EXPECT_LE(b.capacity(), 10u);
  ASSERT_FALSE(b.consume(3));
  EXPECT_FALSE(b.append("abc"));
  EXPECT_EQ(b.view(), "3456789abc");
  EXPECT_LE(b.capacity(), 10u);
  Buffer zero(0);
  EXPECT_FALSE(zero.append(""));
  EXPECT_EQ(zero.append("x"), std::errc::no_buffer_space);
  EXPECT_TRUE(zero.valid());
}

TEST(BufferTest, Find) {
  Buffer b;
  EXPECT_EQ(b.find("x"), Buffer::npos);
  EXPECT_EQ(b.find(""), 0u);
  EXPECT_EQ(b.find("", 1), Buffer::npos);
  ASSERT_FALSE(b.append("xxabcabc"));
  ASSERT_FALSE(b.consume(2));  // positions are relative to the readable bytes
  EXPECT_EQ(b.find("abc"), 0u);
  EXPECT_EQ(b.find("abc", 1), 3u);
  EXPECT_EQ(b.find("abc", 4), Buffer::npos);
  EXPECT_EQ(b.find("c"), 2u);
  EXPECT_EQ(b.find("abcabcabc"), Buffer::npos);
  EXPECT_EQ(b.find("zz"), Buffer::npos);
  EXPECT_EQ(b.find("", 6), 6u);
  EXPECT_EQ(b.find("", 7), Buffer::npos);
  EXPECT_EQ(b.find("a", kMax), Buffer::npos);
  EXPECT_EQ(b.find("", kMax), Buffer::npos);
  EXPECT_EQ(b.find(std::string_view("\0", 1)), Buffer::npos);
}

TEST(BufferTest, MoveConstructAndAssign) {
  Buffer a(1000);
  ASSERT_FALSE(a.append("payload"));
  const char* data = a.data();
  Buffer b(std::move(a));
  EXPECT_EQ(b.view(), "payload");
  EXPECT_EQ(b.data(), data);
  EXPECT_EQ(b.max_size(), 1000u);
  EXPECT_TRUE(a.empty());  // NOLINT(bugprone-use-after-move): moved-from is empty and usable
  EXPECT_EQ(a.capacity(), 0u);
  EXPECT_TRUE(a.valid());
  EXPECT_FALSE(a.append("reuse"));
  EXPECT_EQ(a.view(), "reuse");

  Buffer c;
  ASSERT_FALSE(c.append("old"));
  c = std::move(b);
  EXPECT_EQ(c.view(), "payload");
  EXPECT_EQ(c.max_size(), 1000u);
  EXPECT_TRUE(b.empty());  // NOLINT(bugprone-use-after-move)
  EXPECT_TRUE(b.valid());
  Buffer& alias = c;
  c = std::move(alias);
  EXPECT_EQ(c.view(), "payload");
  EXPECT_TRUE(c.valid());
}

TEST(BufferTest, GrowthDoublesAndSlides) {
  Buffer b;
  ASSERT_FALSE(b.append("x"));
  std::size_t cap = b.capacity();
  std::size_t reallocations = 0;
  for (int i = 0; i < 100000; ++i) {
    ASSERT_FALSE(b.append("y"));
    if (b.capacity() != cap) {
      EXPECT_GE(b.capacity(), 2 * cap) << "grows geometrically";
      cap = b.capacity();
      ++reallocations;
    }
  }
  EXPECT_LT(reallocations, 20u);

  // With consumed space at the front, an append that fits slides instead of growing.
  ASSERT_FALSE(b.consume(b.size() - 10));
  std::error_code ec;
  auto room = b.prepare(0, ec);
  ASSERT_FALSE(b.commit(room.size()));
  const std::size_t size = b.size();
  EXPECT_FALSE(b.append(pattern(cap - size)));
  EXPECT_EQ(b.capacity(), cap);
  EXPECT_EQ(b.size(), cap);
  EXPECT_TRUE(b.valid());
}

// --- Hostile sizes -------------------------------------------------------------------------

TEST(BufferTest, HugeSizesOnEmptyBufferAreRejected) {
  const std::vector<std::size_t> sizes = {kMax,         kMax - 1,     kMax / 2,
                                          kMax / 2 + 1, kMax / 2 - 1, Buffer::kDefaultMaxSize + 1};
  for (std::size_t n : sizes) {
    Buffer b;
    std::error_code ec;
    char c = 'x';
    EXPECT_TRUE(b.append(&c, n)) << n;
    EXPECT_TRUE(b.prepare(n, ec).empty()) << n;
    EXPECT_TRUE(ec) << n;
    EXPECT_EQ(b.consume(n), std::errc::invalid_argument) << n;
    EXPECT_EQ(b.peek(n, ec), "");
    EXPECT_EQ(ec, std::errc::invalid_argument);
    EXPECT_EQ(b.commit(n), std::errc::invalid_argument) << n;
    EXPECT_TRUE(b.valid());
    EXPECT_EQ(b.capacity(), 0u) << "no allocation for a refused request";
    EXPECT_TRUE(b.empty());
  }
}

TEST(BufferTest, HugeSizesLeaveBufferUnchanged) {
  Buffer b;
  ASSERT_FALSE(b.append(pattern(1000)));
  ASSERT_FALSE(b.consume(100));
  const Snapshot before(b);
  const std::size_t size = b.size();
  const std::size_t room = b.max_size() - size;
  const std::size_t writable = b.writable().size();
  const std::vector<std::size_t> sizes = {
      kMax,         kMax - 1,     kMax - size, kMax - size + 1,        kMax / 2,
      kMax / 2 + 1, kMax / 2 - 1, room + 1,    Buffer::kDefaultMaxSize};
  char c = 'x';
  std::error_code ec;
  for (std::size_t n : sizes) {
    SCOPED_TRACE(n);
    const std::error_code append_ec = b.append(&c, n);
    EXPECT_TRUE(append_ec == std::errc::invalid_argument || append_ec == std::errc::no_buffer_space)
        << append_ec.message();
    EXPECT_EQ(Snapshot(b), before);
    EXPECT_TRUE(b.prepare(n, ec).empty());
    EXPECT_TRUE(ec == std::errc::invalid_argument || ec == std::errc::no_buffer_space);
    EXPECT_EQ(Snapshot(b), before);
    EXPECT_EQ(b.consume(n), std::errc::invalid_argument);
    EXPECT_EQ(b.peek(n, ec), "");
    EXPECT_EQ(ec, std::errc::invalid_argument);
    EXPECT_EQ(b.commit(n), std::errc::invalid_argument);
    EXPECT_EQ(Snapshot(b), before);
    EXPECT_TRUE(b.valid());
  }
  // Off by one around the exact limits.
  EXPECT_EQ(b.consume(size + 1), std::errc::invalid_argument);
  EXPECT_EQ(b.peek(size + 1, ec), "");
  EXPECT_EQ(ec, std::errc::invalid_argument);
  EXPECT_EQ(b.commit(writable + 1), std::errc::invalid_argument);
  EXPECT_EQ(b.append(&c, room + 1), std::errc::no_buffer_space);
  EXPECT_TRUE(b.prepare(room + 1, ec).empty());
  EXPECT_EQ(ec, std::errc::no_buffer_space);
  EXPECT_EQ(Snapshot(b), before);
  EXPECT_EQ(b.peek(size, ec).size(), size);
  EXPECT_FALSE(ec);
  EXPECT_FALSE(b.consume(size));
  EXPECT_TRUE(b.valid());
}

TEST(BufferTest, HugeSizesWithoutCap) {
  // No cap: the only limits left are arithmetic (EINVAL: no object exceeds PTRDIFF_MAX) and
  // memory (ENOMEM). The allocator refuses anything over 1 GiB, so no test asks the system
  // (or a sanitizer's allocator) for exabytes.
  TestAllocator allocator;
  g_refuse_above = std::size_t{1} << 30;
  Buffer b(kMax);
  ASSERT_FALSE(b.append(pattern(100)));
  const Snapshot before(b);
  char c = 'x';
  std::error_code ec;
  EXPECT_EQ(b.append(&c, kMax), std::errc::invalid_argument);
  EXPECT_EQ(b.append(&c, kMax - 99), std::errc::invalid_argument);   // size + n wraps to 0
  EXPECT_EQ(b.append(&c, kMax - 100), std::errc::invalid_argument);  // size + n == SIZE_MAX
  EXPECT_EQ(b.append(&c, kMax / 2), std::errc::invalid_argument);
  EXPECT_EQ(b.append(&c, kMax / 2 - 99), std::errc::invalid_argument);
  EXPECT_EQ(b.append(&c, kMax / 2 - 100), std::errc::not_enough_memory);  // size + n == max
  EXPECT_TRUE(b.prepare(kMax / 2 - 100, ec).empty());
  EXPECT_EQ(ec, std::errc::not_enough_memory);
  EXPECT_TRUE(b.prepare(kMax - 100, ec).empty());
  EXPECT_EQ(ec, std::errc::invalid_argument);
  EXPECT_EQ(Snapshot(b), before);
  EXPECT_TRUE(b.valid());
}

// --- randomized model check -----------------------------------------------------------------

TEST(BufferTest, RandomOperationsMatchStringModel) {
  std::mt19937_64 rng(12345);
  auto below = [&](std::size_t n) { return static_cast<std::size_t>(rng() % n); };
  Buffer b(64 * 1024);
  std::string model;
  const std::string source = pattern(4096, 3);
  std::error_code ec;
  for (int i = 0; i < 100000; ++i) {
    const std::size_t op = below(100);
    if (op < 35) {
      const std::size_t n = below(b.max_size() / 16);
      const std::size_t off = below(source.size());
      std::string bytes;
      while (bytes.size() < n) bytes += source.substr(off, n - bytes.size());
      const std::error_code r = b.append(bytes);
      if (model.size() + n > b.max_size()) {
        ASSERT_EQ(r, std::errc::no_buffer_space);
      } else {
        ASSERT_FALSE(r);
        model += bytes;
      }
    } else if (op < 40) {  // a view of itself, possibly across a reallocation
      if (model.empty()) continue;
      const std::size_t off = below(model.size());
      const std::size_t n = 1 + below(model.size() - off);
      const std::error_code r = b.append(b.view().substr(off, n));
      if (model.size() + n > b.max_size()) {
        ASSERT_EQ(r, std::errc::no_buffer_space);
      } else {
        ASSERT_FALSE(r);
        model += model.substr(off, n);
      }
    } else if (op < 65) {
      const std::size_t n = below(model.size() + 2);
      const std::error_code r = b.consume(n);
      if (n > model.size()) {
        ASSERT_EQ(r, std::errc::invalid_argument);
      } else {
        ASSERT_FALSE(r);
        model.erase(0, n);
      }
    } else if (op < 75) {
      const std::size_t n = below(model.size() + 2);
      const std::string_view v = b.peek(n, ec);
      if (n > model.size()) {
        ASSERT_EQ(ec, std::errc::invalid_argument);
        ASSERT_TRUE(v.empty());
      } else {
        ASSERT_FALSE(ec);
        ASSERT_EQ(v, std::string_view(model).substr(0, n));
      }
    } else if (op < 88) {
      const std::size_t want = below(3000);
      auto room = b.prepare(want, ec);
      if (model.size() + want > b.max_size()) {
        ASSERT_EQ(ec, std::errc::no_buffer_space);
        ASSERT_TRUE(room.empty());
        continue;
      }
      ASSERT_FALSE(ec);
      ASSERT_GE(room.size(), want);
      const std::size_t n = below(want + 1);
      for (std::size_t k = 0; k < n; ++k) room[k] = static_cast<char>(rng());
      ASSERT_FALSE(b.commit(n));
      model.append(room.data(), n);
    } else if (op < 94) {
      const std::string needle =
          model.empty() ? std::string("x") : model.substr(below(model.size()), 1 + below(4));
      const std::size_t from = below(model.size() + 2);
      ASSERT_EQ(b.find(needle, from), model.find(needle, from));
    } else if (op < 96) {
      b.shrink();
      ASSERT_EQ(b.capacity(), model.size());
    } else if (op < 97) {
      b.clear();
      model.clear();
    } else {
      Buffer moved(std::move(b));
      b = std::move(moved);
    }
    ASSERT_TRUE(b.valid()) << "op " << i;
    ASSERT_EQ(b.size(), model.size());
    ASSERT_EQ(b.view(), model) << "op " << i;
    ASSERT_LE(b.capacity(), b.max_size());
  }
}

// --- allocator injection --------------------------------------------------------------------

TEST(BufferTest, AllocatorFailureLeavesBufferUnchanged) {
  TestAllocator allocator;
  {
    Buffer b;
    g_fail = true;
    EXPECT_EQ(b.append("abc"), std::errc::not_enough_memory);
    EXPECT_TRUE(b.empty());
    EXPECT_EQ(b.capacity(), 0u);
    EXPECT_TRUE(b.valid());
    g_fail = false;

    ASSERT_FALSE(b.append("abc"));
    const std::size_t cap = b.capacity();
    g_fail = true;
    // Fits in the current block: no allocation needed, so it succeeds.
    EXPECT_FALSE(b.append("d"));
    const Snapshot before(b);
    const std::string big = pattern(cap + 1);
    EXPECT_EQ(b.append(big), std::errc::not_enough_memory);
    EXPECT_EQ(Snapshot(b), before);
    std::error_code ec;
    EXPECT_TRUE(b.prepare(cap + 1, ec).empty());
    EXPECT_EQ(ec, std::errc::not_enough_memory);
    EXPECT_FALSE(b.append(b.view().data(), 1));  // still fits
    const Snapshot after(b);
    Buffer other;
    g_fail = false;
    ASSERT_FALSE(other.append(big));
    g_fail = true;
    EXPECT_EQ(b.append(other), std::errc::not_enough_memory);
    EXPECT_EQ(Snapshot(b), after);
    // shrink cannot allocate the tighter block: it keeps the bytes.
    ASSERT_FALSE(b.consume(1));
    const std::string bytes(b.view());
    b.shrink();
    EXPECT_EQ(b.view(), bytes);
    EXPECT_TRUE(b.valid());
    g_fail = false;
    EXPECT_FALSE(b.append(big));
    EXPECT_EQ(b.view(), bytes + big);
  }
  EXPECT_EQ(g_live.load(), 0) << "every block released";
}

// --- footprint ------------------------------------------------------------------------------

// A connection holds two buffers for its whole life: the object itself is one pointer and the
// cap, the positions live in the heap block.
static_assert(sizeof(Buffer) == 16);

TEST(BufferTest, IsOnePointerAndTheCap) {
  EXPECT_EQ(sizeof(Buffer), sizeof(void*) + sizeof(std::size_t));
}

TEST(BufferTest, EmptyBufferHoldsNoMemory) {
  TestAllocator allocator;
  {
    Buffer b;
    Buffer capped(10);
    Buffer moved_to(std::move(b));
    b = Buffer(5);
    EXPECT_EQ(b.capacity() + capped.capacity() + moved_to.capacity(), 0u);
    b.clear();
    b.shrink();
    EXPECT_FALSE(b.consume(0));
    EXPECT_FALSE(b.commit(0));
    std::error_code ec;
    EXPECT_TRUE(b.prepare(0, ec).empty());
    EXPECT_FALSE(ec);
    EXPECT_EQ(b.find("x"), Buffer::npos);
    EXPECT_EQ(b.find(""), 0u);
    EXPECT_TRUE(b.valid());
  }
  EXPECT_EQ(g_allocations.load(), 0) << "nothing asked of the allocator";
}

TEST(BufferTest, ShrinkOfADrainedBufferFreesTheBlock) {
  TestAllocator allocator;
  Buffer b;
  ASSERT_FALSE(b.append(pattern(5000)));
  ASSERT_EQ(g_live.load(), 1);
  ASSERT_FALSE(b.consume(5000));  // drained: the block stays for reuse until shrink()
  EXPECT_GT(b.capacity(), 0u);
  EXPECT_EQ(g_live.load(), 1);
  b.shrink();
  EXPECT_EQ(b.capacity(), 0u);
  EXPECT_EQ(g_live.load(), 0) << "the block went back to the allocator";
  EXPECT_TRUE(b.empty());
  EXPECT_EQ(b.view(), "");
  EXPECT_TRUE(b.writable().empty());
  EXPECT_TRUE(b.valid());
  // And it works as new afterwards.
  ASSERT_FALSE(b.append("next"));
  EXPECT_EQ(b.view(), "next");
  EXPECT_EQ(g_live.load(), 1);
  b.clear();
  b.shrink();
  EXPECT_EQ(g_live.load(), 0);
}

TEST(BufferTest, AsksForCapacityPlusTheBlockHeader) {
  TestAllocator allocator;
  Buffer b;
  ASSERT_FALSE(b.append("abc"));
  EXPECT_EQ(g_last_request.load(), b.capacity() + Buffer::kBlockOverhead);
  ASSERT_FALSE(b.append(pattern(10000)));
  EXPECT_EQ(g_last_request.load(), b.capacity() + Buffer::kBlockOverhead);
  ASSERT_FALSE(b.consume(9000));
  b.shrink();
  EXPECT_EQ(b.capacity(), 1003u);
  EXPECT_EQ(g_last_request.load(), 1003u + Buffer::kBlockOverhead);
  EXPECT_EQ(g_live.load(), 1);
}

TEST(BufferTest, CapAndFailureOnAnEmptyBufferLeaveNoBlock) {
  TestAllocator allocator;
  Buffer b(8);
  EXPECT_EQ(b.append(pattern(9)), std::errc::no_buffer_space);
  std::error_code ec;
  EXPECT_TRUE(b.prepare(9, ec).empty());
  EXPECT_EQ(ec, std::errc::no_buffer_space);
  EXPECT_EQ(b.commit(1), std::errc::invalid_argument);  // no writable room at all
  EXPECT_EQ(b.consume(1), std::errc::invalid_argument);
  g_fail = true;
  EXPECT_EQ(b.append("x"), std::errc::not_enough_memory);
  EXPECT_EQ(b.capacity(), 0u);
  EXPECT_TRUE(b.valid());
  g_fail = false;
  EXPECT_EQ(g_allocations.load(), 0);
  ASSERT_FALSE(b.append(pattern(8)));
  EXPECT_EQ(b.size(), 8u);
  EXPECT_LE(b.capacity(), 8u) << "growth never passes what the cap can use";
}

TEST(BufferTest, GrowthFallsBackToExactSize) {
  TestAllocator allocator;
  Buffer b;
  ASSERT_FALSE(b.append(pattern(1000)));
  ASSERT_FALSE(b.commit(b.writable().size()));
  const std::size_t full = b.size();
  // Doubling would need 2 * full; only the exact need (and the block's header) is allowed.
  g_refuse_above = full + 10 + Buffer::kBlockOverhead;
  EXPECT_FALSE(b.append(pattern(10)));
  EXPECT_EQ(b.capacity(), full + 10);
  EXPECT_EQ(b.append("x"), std::errc::not_enough_memory);
  EXPECT_EQ(b.size(), full + 10);
  EXPECT_TRUE(b.valid());
}

TEST(BufferTest, SetAllocatorReturnsPrevious) {
  const BufferAllocator first = reactor::set_buffer_allocator({test_allocate, test_release});
  const BufferAllocator mine = reactor::set_buffer_allocator(first);
  EXPECT_EQ(mine.allocate, test_allocate);
  EXPECT_EQ(mine.release, test_release);
  g_allocations = 0;
  Buffer b;
  ASSERT_FALSE(b.append("x"));
  EXPECT_EQ(g_allocations.load(), 0) << "the previous allocator is back in use";
}

// --- read_from ------------------------------------------------------------------------------

using reactor::test::SocketPair;

using reactor::test::drain;
using reactor::test::send_all;

TEST(BufferReadTest, ReadsWhatArrived) {
  reactor::test::FdLeakCheck leaks;
  SocketPair sp;
  Buffer b;
  ASSERT_FALSE(b.append("old:"));
  ASSERT_TRUE(send_all(sp.b.get(), "hello"));
  std::error_code ec;
  EXPECT_EQ(b.read_from(sp.a.get(), 1000, ec), 5u);
  EXPECT_FALSE(ec);
  EXPECT_EQ(b.view(), "old:hello");
  EXPECT_TRUE(b.valid());
}

TEST(BufferReadTest, NothingToReadIsEagain) {
  SocketPair sp;
  Buffer b;
  ASSERT_FALSE(b.append("keep"));
  const Snapshot before(b);
  std::error_code ec;
  EXPECT_EQ(b.read_from(sp.a.get(), 1000, ec), 0u);
  EXPECT_TRUE(ec == std::errc::resource_unavailable_try_again ||
              ec == std::errc::operation_would_block)
      << ec.message();
  EXPECT_EQ(Snapshot(b), before);
}

TEST(BufferReadTest, EndOfFile) {
  SocketPair sp;
  ASSERT_TRUE(send_all(sp.b.get(), "last"));
  ASSERT_EQ(::shutdown(sp.b.get(), SHUT_WR), 0);
  Buffer b;
  std::error_code ec;
  EXPECT_EQ(b.read_from(sp.a.get(), 1000, ec), 4u);
  EXPECT_FALSE(ec);
  EXPECT_EQ(b.read_from(sp.a.get(), 1000, ec), 0u);
  EXPECT_FALSE(ec) << "EOF is 0 without an error";
  EXPECT_EQ(b.view(), "last");
}

TEST(BufferReadTest, BadFdIsAnError) {
  Buffer b;
  std::error_code ec;
  EXPECT_EQ(b.read_from(-1, 100, ec), 0u);
  EXPECT_EQ(ec, std::errc::bad_file_descriptor);
  EXPECT_TRUE(b.valid());
}

TEST(BufferReadTest, LimitIsRespected) {
  SocketPair sp;
  const std::string data = pattern(100);
  ASSERT_TRUE(send_all(sp.b.get(), data));
  Buffer b;
  std::error_code ec;
  b.prepare(1000, ec);  // plenty of writable room: the limit, not the room, must stop it
  ASSERT_FALSE(ec);
  EXPECT_EQ(b.read_from(sp.a.get(), 10, ec), 10u);
  EXPECT_FALSE(ec);
  EXPECT_EQ(b.view(), data.substr(0, 10));
  EXPECT_EQ(b.read_from(sp.a.get(), 1, ec), 1u);
  EXPECT_EQ(b.read_from(sp.a.get(), 1000, ec), 89u);
  EXPECT_EQ(b.view(), data);
  EXPECT_EQ(b.read_from(sp.a.get(), 0, ec), 0u);
  EXPECT_EQ(ec, std::errc::no_buffer_space) << "a zero limit leaves no room";
}

TEST(BufferReadTest, CapIsRespected) {
  SocketPair sp;
  const std::string data = pattern(100);
  ASSERT_TRUE(send_all(sp.b.get(), data));
  Buffer b(16);
  ASSERT_FALSE(b.append("0123456"));
  std::error_code ec;
  EXPECT_EQ(b.read_from(sp.a.get(), kMax, ec), 9u);
  EXPECT_FALSE(ec);
  EXPECT_EQ(b.size(), 16u);
  const Snapshot before(b);
  EXPECT_EQ(b.read_from(sp.a.get(), kMax, ec), 0u);
  EXPECT_EQ(ec, std::errc::no_buffer_space);
  EXPECT_EQ(Snapshot(b), before);
  // Nothing was taken from the socket.
  EXPECT_EQ(drain(sp.a.get()), data.substr(9));
}

TEST(BufferReadTest, LargeReadSpillsToTheStack) {
  SocketPair sp;
  // Room in the socket for more than one readv's worth.
  int size = 1 << 20;
  ::setsockopt(sp.b.get(), SOL_SOCKET, SO_SNDBUF, &size, sizeof size);
  const std::string data = pattern(200 * 1024, 5);
  std::size_t written = 0;
  while (written < data.size()) {
    const ssize_t n = ::write(sp.b.get(), data.data() + written, data.size() - written);
    if (n <= 0) break;
    written += static_cast<std::size_t>(n);
  }
  ASSERT_GT(written, std::size_t{100} * 1024) << "socket too small for the test";
  Buffer b;
  std::error_code ec;
  ASSERT_FALSE(b.append("x"));
  const std::size_t direct = b.writable().size();
  const std::size_t first = b.read_from(sp.a.get(), kMax, ec);
  ASSERT_FALSE(ec);
  EXPECT_GT(first, direct) << "the stack area took the overflow";
  EXPECT_LE(first, direct + 64 * 1024);
  EXPECT_TRUE(b.valid());
  while (b.size() < written + 1) {
    const std::size_t n = b.read_from(sp.a.get(), kMax, ec);
    ASSERT_FALSE(ec) << ec.message();
    ASSERT_GT(n, 0u);
    ASSERT_TRUE(b.valid());
  }
  EXPECT_EQ(b.view(), "x" + data.substr(0, written));
}

TEST(BufferReadTest, SpillAllocationFailureIsEnomem) {
  TestAllocator allocator;
  SocketPair sp;
  ASSERT_TRUE(send_all(sp.b.get(), pattern(1000)));
  {
    Buffer b;
    g_fail = true;
    std::error_code ec;
    EXPECT_EQ(b.read_from(sp.a.get(), kMax, ec), 0u);
    EXPECT_EQ(ec, std::errc::not_enough_memory);
    EXPECT_TRUE(b.empty());
    EXPECT_TRUE(b.valid());
    g_fail = false;
  }
  EXPECT_EQ(g_live.load(), 0);
}

void ignore_signal(int) {}

TEST(BufferReadTest, InterruptedReadIsRetried) {
  // A blocking socket and a handler without SA_RESTART: the signal makes readv fail with
  // EINTR, which read_from must swallow and retry.
  int sv[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
  reactor::test::Fd a(sv[0]), b(sv[1]);
  struct sigaction sa {
  }, old{};
  sa.sa_handler = ignore_signal;
  sigemptyset(&sa.sa_mask);
  ASSERT_EQ(::sigaction(SIGUSR1, &sa, &old), 0);
  const pthread_t reader = ::pthread_self();
  std::thread peer([&] {
    for (int i = 0; i < 5; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
      ::pthread_kill(reader, SIGUSR1);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    (void)send_all(b.get(), "late");
  });
  Buffer buf;
  std::error_code ec;
  const std::size_t n = buf.read_from(a.get(), 100, ec);
  peer.join();
  ::sigaction(SIGUSR1, &old, nullptr);
  EXPECT_FALSE(ec) << ec.message();
  EXPECT_EQ(n, 4u);
  EXPECT_EQ(buf.view(), "late");
}

}  // namespace
