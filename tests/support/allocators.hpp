// SPDX-License-Identifier: MIT
#pragma once
/// A buffer allocator that fails on demand, installed for a scope; the heap in use.
#include <malloc.h>

#include <atomic>
#include <cstddef>

#include "reactor/net/buffer.hpp"

namespace reactor::test {

/// Bytes malloc has handed out and not taken back, headers included, in every arena: the
/// arenas' chunks and the blocks mapped on their own (a large table does not show in
/// uordblks alone). Freed small chunks cached per thread still count, so measure over many
/// objects. Meaningless under a sanitizer, which brings its own allocator.
inline std::size_t heap_in_use() {
  const struct mallinfo2 m = ::mallinfo2();
  return m.uordblks + m.hblkhd;
}

/// A buffer allocator that fails on demand: while fail_ is on, every allocation of at least
/// `fail_from_` bytes returns nullptr (and is counted). Everything else goes to the allocator
/// that was installed before. Installed for the scope; the previous one is restored after.
class ScopedFailingAllocator {
 public:
  ScopedFailingAllocator() {
    failures_count().store(0);
    fail().store(false);
    previous() = set_buffer_allocator(BufferAllocator{&allocate, &release});
  }
  ScopedFailingAllocator(const ScopedFailingAllocator&) = delete;
  ScopedFailingAllocator& operator=(const ScopedFailingAllocator&) = delete;
  ~ScopedFailingAllocator() {
    fail().store(false);
    set_buffer_allocator(previous());
  }

  /// Turns failure on for allocations of at least `from_bytes`, or off.
  void fail_from(std::size_t from_bytes) {
    threshold().store(from_bytes);
    fail().store(true);
  }
  void stop_failing() { fail().store(false); }
  /// Allocations refused so far.
  std::size_t failures() const { return failures_count().load(); }

 private:
  static BufferAllocator& previous() {
    static BufferAllocator p{};
    return p;
  }
  static std::atomic<bool>& fail() {
    static std::atomic<bool> f{false};
    return f;
  }
  static std::atomic<std::size_t>& threshold() {
    static std::atomic<std::size_t> t{0};
    return t;
  }
  static std::atomic<std::size_t>& failures_count() {
    static std::atomic<std::size_t> n{0};
    return n;
  }
  static void* allocate(std::size_t size) noexcept {
    if (fail().load() && size >= threshold().load()) {
      failures_count().fetch_add(1);
      return nullptr;
    }
    return previous().allocate(size);
  }
  static void release(void* p) noexcept { previous().release(p); }
};

}  // namespace reactor::test
