// SPDX-License-Identifier: MIT
// Fds at and above FD_SETSIZE (1024): every backend watches them and reports them correctly,
// the select backend included (it sizes its sets itself), mixed with low fds.
#include <fcntl.h>
#include <unistd.h>

#include <chrono>
#include <cstddef>
#include <memory>
#include <string>
#include <system_error>
#include <vector>

#include "reactor/core/reactor.hpp"
#include "tests/support/backends.hpp"
#include "tests/support/fds.hpp"
#include "tests/support/io.hpp"
#include "tests/support/loop.hpp"

namespace {

using namespace std::chrono_literals;
using namespace reactor::test;
using reactor::Interest;
using reactor::IoEvents;
using reactor::IoWatcher;
using reactor::Reactor;
using reactor::test::drain;
using reactor::test::Fd;
using reactor::test::FdLeakCheck;
using reactor::test::run_until;
using reactor::test::SocketPair;
using reactor::test::write_byte;

class SelectLimitsTest : public reactor::test::BackendTest {
 protected:
  void SetUp() override { reactor::test::warm_up(backend()); }
};

/// A socket pair whose watched end has been moved to the lowest free number >= `at_least`
/// (or left where it is when `at_least` is 0). `peer` writes to `end`.
struct PlacedPair {
  explicit PlacedPair(int at_least) {
    SocketPair p;
    peer = std::move(p.b);
    if (at_least <= 0) {
      end = std::move(p.a);
    } else {
      end.reset(::fcntl(p.a.get(), F_DUPFD_CLOEXEC, at_least));
    }
  }
  Fd end, peer;
  int calls = 0;
  int readable = 0;
  int writable = 0;
  IoWatcher watcher;
};

TEST_P(SelectLimitsTest, HighFdIsWatchedAndReported) {
  reactor::test::ScopedFdLimit fd_limit;
  if (!fd_limit.raise_to_hard(1600)) GTEST_SKIP() << "RLIMIT_NOFILE too low";
  FdLeakCheck leaks;
  Reactor loop(backend());
  PlacedPair p(1500);
  ASSERT_GE(p.end.get(), 1500);
  std::error_code ec;
  p.watcher = loop.watch(
      p.end.get(), Interest::read,
      [&](IoEvents ev) {
        ++p.calls;
        p.readable += ev.readable() ? 1 : 0;
        p.writable += ev.writable() ? 1 : 0;
      },
      ec);
  ASSERT_FALSE(ec) << "fd " << p.end.get() << ": " << ec.message();

  for (int i = 0; i < 3; ++i) loop.run_once(0ms);
  EXPECT_EQ(p.calls, 0) << "nothing to read yet";

  ASSERT_TRUE(write_byte(p.peer.get()));
  EXPECT_TRUE(run_until(
      loop, [&] { return p.calls > 0; }, 1s, 100ms));
  EXPECT_EQ(p.readable, 1);
  EXPECT_EQ(p.writable, 0);
  EXPECT_EQ(drain(p.end.get()), "x");
  loop.run_once(0ms);
  EXPECT_EQ(p.calls, 1) << "reported again after draining";

  ASSERT_FALSE(p.watcher.set_interest(Interest::write));
  loop.run_once(100ms);
  EXPECT_EQ(p.calls, 2);
  EXPECT_EQ(p.writable, 1);
  EXPECT_EQ(p.readable, 1);
}

// Low fds, the numbers either side of FD_SETSIZE and far above it, watched together; some
// made readable. Exactly those are reported, every time, in one iteration.
TEST_P(SelectLimitsTest, MixedLowAndHighFdsReportExactlyTheReadyOnes) {
  reactor::test::ScopedFdLimit fd_limit;
  if (!fd_limit.raise_to_hard(1600)) GTEST_SKIP() << "RLIMIT_NOFILE too low";
  const bool very_high = fd_limit.raise_to_hard(4200);
  FdLeakCheck leaks;
  Reactor loop(backend());
  std::vector<int> places = {0, 0, 1023, 1024, 1025, 1500};
  if (very_high) places.push_back(4100);
  std::vector<std::unique_ptr<PlacedPair>> pairs;
  for (int at : places) {
    pairs.push_back(std::make_unique<PlacedPair>(at));
    ASSERT_GE(pairs.back()->end.get(), at);
  }
  // Low ones first, so that the loop is in use before the high ones arrive.
  auto watch = [&](PlacedPair& p) {
    std::error_code ec;
    p.watcher = loop.watch(
        p.end.get(), Interest::read,
        [&p](IoEvents ev) {
          ++p.calls;
          p.readable += ev.readable() ? 1 : 0;
        },
        ec);
    EXPECT_FALSE(ec) << "fd " << p.end.get() << ": " << ec.message();
  };
  watch(*pairs[0]);
  watch(*pairs[1]);
  ASSERT_TRUE(write_byte(pairs[0]->peer.get()));
  loop.run_once(100ms);
  EXPECT_EQ(pairs[0]->calls, 1);
  EXPECT_EQ(pairs[1]->calls, 0);
  EXPECT_EQ(drain(pairs[0]->end.get()), "x");
  pairs[0]->calls = pairs[0]->readable = 0;
  for (std::size_t i = 2; i < pairs.size(); ++i) watch(*pairs[i]);
  if (HasFailure()) return;

  // Two rounds with complementary ready sets.
  for (int round = 0; round < 2; ++round) {
    for (std::size_t i = 0; i < pairs.size(); ++i) {
      if (i % 2 == static_cast<std::size_t>(round)) {
        ASSERT_TRUE(write_byte(pairs[i]->peer.get()));
      }
    }
    loop.run_once(100ms);
    for (std::size_t i = 0; i < pairs.size(); ++i) {
      const bool ready = i % 2 == static_cast<std::size_t>(round);
      EXPECT_EQ(pairs[i]->calls, ready ? 1 : 0)
          << "round " << round << ", fd " << pairs[i]->end.get();
      EXPECT_EQ(pairs[i]->readable, ready ? 1 : 0);
      if (ready) {
        EXPECT_EQ(drain(pairs[i]->end.get()), "x");
      }
      pairs[i]->calls = pairs[i]->readable = 0;
    }
  }

  // Stopping the highest leaves the others served (the sets shrink or keep a hole).
  pairs.back()->watcher.stop();
  for (auto& p : pairs) ASSERT_TRUE(write_byte(p->peer.get()));
  loop.run_once(100ms);
  for (std::size_t i = 0; i + 1 < pairs.size(); ++i) {
    EXPECT_EQ(pairs[i]->calls, 1) << "fd " << pairs[i]->end.get();
  }
  EXPECT_EQ(pairs.back()->calls, 0);
  EXPECT_EQ(loop.watcher_count(), pairs.size() - 1);
}

// Write interest on a high fd, and a high fd whose socket fills up.
TEST_P(SelectLimitsTest, HighFdWriteInterestFollowsTheBuffer) {
  reactor::test::ScopedFdLimit fd_limit;
  if (!fd_limit.raise_to_hard(1600)) GTEST_SKIP() << "RLIMIT_NOFILE too low";
  FdLeakCheck leaks;
  Reactor loop(backend());
  PlacedPair p(1300);
  ASSERT_GE(p.end.get(), 1300);
  p.watcher = loop.watch(p.end.get(), Interest::write, [&](IoEvents ev) {
    ++p.calls;
    p.writable += ev.writable() ? 1 : 0;
  });
  loop.run_once(100ms);
  EXPECT_EQ(p.writable, 1);
  ASSERT_GT(reactor::test::fill(p.end.get()), 0u);
  loop.run_once(0ms);
  loop.run_once(20ms);
  EXPECT_EQ(p.calls, 1) << "a full socket above FD_SETSIZE was reported writable";
  EXPECT_FALSE(drain(p.peer.get()).empty());
  EXPECT_TRUE(run_until(
      loop, [&] { return p.calls > 1; }, 1s, 100ms));
  EXPECT_EQ(p.writable, 2);
}

REACTOR_INSTANTIATE_ALL_BACKENDS(SelectLimitsTest);

}  // namespace
