// SPDX-License-Identifier: MIT
// Steady state allocates nothing per event: after a warm-up, 10,000 ping-pong events
// dispatched through run_once() make no call to operator new, on every backend.
//
// This file replaces the global operator new and delete for the whole core_tests binary with
// versions that forward to malloc/free and count calls made on a thread while that thread
// has counting switched on (AllocationCounter below). Outside such a scope they only forward.
// Under a sanitizer, which brings its own operator new, nothing is replaced and the tests
// skip.
//
// Only operator new is seen: a backend library calling malloc directly (libuv) is not
// counted here.
#include <unistd.h>

#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <new>

#include "reactor/core/reactor.hpp"
#include "tests/support/backends.hpp"
#include "tests/support/fds.hpp"
#include "tests/support/io.hpp"
#include "tests/support/loop.hpp"
#include "tests/support/sanitizers.hpp"

#define REACTOR_TEST_COUNT_NEW (!REACTOR_TEST_SANITIZED)

namespace {

std::atomic<std::uint64_t> g_new_calls{0};
// A plain bool with static TLS in the executable: reading it never allocates.
thread_local bool g_counting = false;

/// Counts operator new calls made by this thread while it lives.
class AllocationCounter {
 public:
  AllocationCounter() : start_(g_new_calls.load()) { g_counting = true; }
  ~AllocationCounter() { g_counting = false; }
  AllocationCounter(const AllocationCounter&) = delete;
  AllocationCounter& operator=(const AllocationCounter&) = delete;
  std::uint64_t count() const { return g_new_calls.load() - start_; }

 private:
  std::uint64_t start_;
};

}  // namespace

#if REACTOR_TEST_COUNT_NEW

namespace {

void* raw_allocate(std::size_t size, std::size_t align) noexcept {
  if (size == 0) size = 1;
  if (align <= __STDCPP_DEFAULT_NEW_ALIGNMENT__) return std::malloc(size);
  if (align < sizeof(void*)) align = sizeof(void*);
  void* p = nullptr;
  return ::posix_memalign(&p, align, size) == 0 ? p : nullptr;
}

void* counted_new(std::size_t size, std::size_t align) {
  if (g_counting) g_new_calls.fetch_add(1, std::memory_order_relaxed);
  for (;;) {
    if (void* p = raw_allocate(size, align)) return p;
    std::new_handler handler = std::get_new_handler();
    if (handler == nullptr) throw std::bad_alloc();
    handler();
  }
}

void* counted_new_nothrow(std::size_t size, std::size_t align) noexcept {
  try {
    return counted_new(size, align);
  } catch (...) {
    return nullptr;
  }
}

constexpr std::size_t kDefault = 0;

}  // namespace

void* operator new(std::size_t size) { return counted_new(size, kDefault); }
void* operator new[](std::size_t size) { return counted_new(size, kDefault); }
void* operator new(std::size_t size, const std::nothrow_t&) noexcept {
  return counted_new_nothrow(size, kDefault);
}
void* operator new[](std::size_t size, const std::nothrow_t&) noexcept {
  return counted_new_nothrow(size, kDefault);
}
void* operator new(std::size_t size, std::align_val_t align) {
  return counted_new(size, static_cast<std::size_t>(align));
}
void* operator new[](std::size_t size, std::align_val_t align) {
  return counted_new(size, static_cast<std::size_t>(align));
}
void* operator new(std::size_t size, std::align_val_t align, const std::nothrow_t&) noexcept {
  return counted_new_nothrow(size, static_cast<std::size_t>(align));
}
void* operator new[](std::size_t size, std::align_val_t align, const std::nothrow_t&) noexcept {
  return counted_new_nothrow(size, static_cast<std::size_t>(align));
}

void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }
void operator delete(void* p, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete[](void* p, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete(void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete(void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }
void operator delete(void* p, std::align_val_t, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete[](void* p, std::align_val_t, const std::nothrow_t&) noexcept { std::free(p); }

#endif  // REACTOR_TEST_COUNT_NEW

namespace {

using namespace std::chrono_literals;
using namespace reactor::test;
using reactor::Interest;
using reactor::IoEvents;
using reactor::IoWatcher;
using reactor::Reactor;
using reactor::test::FdLeakCheck;
using reactor::test::SocketPair;

class AllocationTest : public reactor::test::BackendTest {
 protected:
  void SetUp() override { reactor::test::warm_up(backend()); }
};

constexpr std::uint64_t kEvents = 10'000;
constexpr int kWarmUpIterations = 200;
// Each iteration carries one event per pair; leave room for a slow start but stay bounded.
constexpr int kMaxIterations = 4 * static_cast<int>(kEvents);

/// What the handlers record, in plain counters: no gtest call (which may allocate) runs
/// while allocations are being counted.
struct Stats {
  std::uint64_t events = 0;
  std::uint64_t errors = 0;
};

/// Reads what arrived on `fd` and sends it straight back: one ball bouncing between the two
/// ends of a pair forever, one readable event per iteration.
[[maybe_unused]] void bounce(int fd, IoEvents ev, Stats& stats) {
  char buf[64];
  const ssize_t n = ev.readable() ? ::read(fd, buf, sizeof buf) : -1;
  if (n <= 0 || ::write(fd, buf, static_cast<std::size_t>(n)) != n) {
    ++stats.errors;
    return;
  }
  ++stats.events;
}

TEST_P(AllocationTest, CounterSeesAllocations) {
#if !REACTOR_TEST_COUNT_NEW
  GTEST_SKIP() << "operator new is not replaced under a sanitizer";
#else
  std::uint64_t seen = 0;
  {
    AllocationCounter counter;
    void* volatile p = ::operator new(24);
    ::operator delete(p);
    void* volatile q = ::operator new (64, std::align_val_t{64});
    ::operator delete (q, std::align_val_t{64});
    seen = counter.count();
  }
  EXPECT_EQ(seen, 2u) << "the counting operator new is not in use";
  // And a copy of a std::function holding a large callable allocates: the measure below
  // would see a handler copied per dispatch.
  std::array<std::uint64_t, 8> big{};
  reactor::IoHandler h = [big](IoEvents) { (void)big; };
  {
    AllocationCounter counter;
    reactor::IoHandler copy = h;
    seen = counter.count();
  }
  EXPECT_GE(seen, 1u);
#endif
}

TEST_P(AllocationTest, PingPongAllocatesNothing) {
#if !REACTOR_TEST_COUNT_NEW
  GTEST_SKIP() << "operator new is not replaced under a sanitizer";
#else
  FdLeakCheck leaks;
  Reactor loop(backend());
  SocketPair p1, p2;
  Stats stats;
  // One handler small enough for std::function's inline buffer, one that is not (a copy of
  // it per dispatch would allocate).
  const std::array<std::uint64_t, 8> padding{};
  IoWatcher w1a = loop.watch(p1.a.get(), Interest::read,
                             [&stats, fd = p1.a.get()](IoEvents ev) { bounce(fd, ev, stats); });
  IoWatcher w1b = loop.watch(p1.b.get(), Interest::read,
                             [&stats, fd = p1.b.get()](IoEvents ev) { bounce(fd, ev, stats); });
  IoWatcher w2a =
      loop.watch(p2.a.get(), Interest::read, [&stats, padding, fd = p2.a.get()](IoEvents ev) {
        bounce(fd + static_cast<int>(padding[0]), ev, stats);
      });
  IoWatcher w2b =
      loop.watch(p2.b.get(), Interest::read, [&stats, padding, fd = p2.b.get()](IoEvents ev) {
        bounce(fd + static_cast<int>(padding[7]), ev, stats);
      });
  ASSERT_TRUE(reactor::test::write_byte(p1.a.get()));
  ASSERT_TRUE(reactor::test::write_byte(p2.a.get()));

  for (int i = 0; i < kWarmUpIterations; ++i) loop.run_once(100ms);
  ASSERT_EQ(stats.errors, 0u);
  ASSERT_GE(stats.events, static_cast<std::uint64_t>(kWarmUpIterations));

  const std::uint64_t start_events = stats.events;
  const std::uint64_t start_iterations = loop.iterations();
  std::uint64_t allocations = 0;
  {
    AllocationCounter counter;
    for (int i = 0; i < kMaxIterations && stats.events - start_events < kEvents; ++i) {
      loop.run_once(100ms);
    }
    allocations = counter.count();
  }
  const std::uint64_t events = stats.events - start_events;
  EXPECT_GE(events, kEvents);
  EXPECT_EQ(stats.errors, 0u);
  EXPECT_EQ(allocations, 0u) << "operator new called during " << events << " events in "
                             << loop.iterations() - start_iterations << " iterations on "
                             << backend();
#endif
}

// The same with a writer's interest toggling as a flow-controlled connection does it:
// read, then ask for writability, then write and go back to reading.
TEST_P(AllocationTest, InterestTogglingAllocatesNothing) {
#if !REACTOR_TEST_COUNT_NEW
  GTEST_SKIP() << "operator new is not replaced under a sanitizer";
#else
  FdLeakCheck leaks;
  Reactor loop(backend());
  SocketPair p;
  Stats stats;
  IoWatcher wa;
  char held = 0;
  wa = loop.watch(p.a.get(), Interest::read, [&](IoEvents ev) {
    if (ev.readable()) {
      if (::read(p.a.get(), &held, 1) != 1 || wa.set_interest(Interest::write)) ++stats.errors;
    } else if (ev.writable()) {
      if (::write(p.a.get(), &held, 1) != 1 || wa.set_interest(Interest::read)) ++stats.errors;
    } else {
      ++stats.errors;
    }
    ++stats.events;
  });
  IoWatcher wb = loop.watch(p.b.get(), Interest::read,
                            [&stats, fd = p.b.get()](IoEvents ev) { bounce(fd, ev, stats); });
  ASSERT_TRUE(reactor::test::write_byte(p.b.get()));

  for (int i = 0; i < kWarmUpIterations; ++i) loop.run_once(100ms);
  ASSERT_EQ(stats.errors, 0u);
  ASSERT_GE(stats.events, static_cast<std::uint64_t>(kWarmUpIterations / 2));

  const std::uint64_t start_events = stats.events;
  std::uint64_t allocations = 0;
  {
    AllocationCounter counter;
    for (int i = 0; i < kMaxIterations && stats.events - start_events < kEvents; ++i) {
      loop.run_once(100ms);
    }
    allocations = counter.count();
  }
  EXPECT_GE(stats.events - start_events, kEvents);
  EXPECT_EQ(stats.errors, 0u);
  EXPECT_EQ(allocations, 0u) << "operator new called while toggling interest on " << backend();
#endif
}

REACTOR_INSTANTIATE_ALL_BACKENDS(AllocationTest);

}  // namespace
