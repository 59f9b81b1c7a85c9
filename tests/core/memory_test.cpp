// SPDX-License-Identifier: MIT
// What a watched fd costs in memory, all tables of the loop and its backend together: the
// heap in use (malloc's count, not resident pages) grows by at most a fixed number of bytes
// per fd watched, on every backend. The figure is measured between 1,000 and 9,000 watched
// eventfds, so that what every loop holds once (the bounded batch, the first chunks) is
// already paid for; the handler is a lambda small enough to sit in the loop's own slot.
#include <sys/eventfd.h>

#include <cstddef>
#include <iostream>
#include <memory>
#include <system_error>
#include <vector>

#include "reactor/core/reactor.hpp"
#include "tests/support/allocators.hpp"
#include "tests/support/backends.hpp"
#include "tests/support/fds.hpp"
#include "tests/support/sanitizers.hpp"

namespace {

using reactor::Interest;
using reactor::IoEvents;
using reactor::IoWatcher;
using reactor::Reactor;
using reactor::test::Fd;

constexpr std::size_t kFirst = 1000;
constexpr std::size_t kTotal = 9000;

class WatchMemoryTest : public reactor::test::BackendTest {
 protected:
  // The bound for this backend, bytes per watched fd. uv keeps a heap block per fd holding a
  // uv_poll_t (libuv's own handle, 160 of its 200 bytes) besides the loop's slot and other records:
  // about 270 bytes in all today, pinned here so that it does not grow.
  std::size_t bound() const { return backend() == "uv" ? 288 : 48; }
};

TEST_P(WatchMemoryTest, EachWatchedFdCostsAtMostItsBound) {
  if (reactor::test::kSanitized) GTEST_SKIP() << "a sanitizer's allocator keeps other books";
  reactor::test::ScopedFdLimit fd_limit;
  if (!fd_limit.raise_to_hard(kTotal + 100)) GTEST_SKIP() << "RLIMIT_NOFILE too low";
  reactor::test::FdLeakCheck leaks;
  std::vector<Fd> fds;
  fds.reserve(kTotal);
  auto counter = std::make_shared<std::size_t>(0);
  std::vector<IoWatcher> watchers;
  watchers.reserve(kTotal);
  {
    // The loop first: its own fd (the wake-up eventfd) must not be the highest, or its tables
    // would cover every fd before the first watch.
    Reactor loop(backend());
    for (std::size_t i = 0; i < kTotal; ++i) {
      const int fd = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
      ASSERT_GE(fd, 0);
      fds.emplace_back(fd);
    }
    const auto watch = [&](std::size_t i) {
      // 16 bytes of capture, as a connection's handler holding a std::shared_ptr.
      watchers.push_back(
          loop.watch(fds[i].get(), Interest::read, [counter](IoEvents) { ++*counter; }));
    };
    for (std::size_t i = 0; i < kFirst; ++i) watch(i);
    loop.run_once(std::chrono::nanoseconds{0});
    const std::size_t before = reactor::test::heap_in_use();
    for (std::size_t i = kFirst; i < kTotal; ++i) watch(i);
    loop.run_once(std::chrono::nanoseconds{0});
    const std::size_t after = reactor::test::heap_in_use();
    const double per_fd =
        static_cast<double>(after > before ? after - before : 0) / (kTotal - kFirst);
    std::cout << "[ figure   ] " << backend() << ": " << per_fd
              << " bytes of heap per watched fd\n";
    EXPECT_LE(per_fd, static_cast<double>(bound()));
    watchers.clear();
  }
  EXPECT_EQ(counter.use_count(), 1) << "a handler outlived its watch";
}

REACTOR_INSTANTIATE_ALL_BACKENDS(WatchMemoryTest);

}  // namespace
