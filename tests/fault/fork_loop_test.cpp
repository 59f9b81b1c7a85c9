// SPDX-License-Identifier: MIT
// fork() with a running loop, on every backend. tests/core/fork_test.cpp checks that a child
// can use its loop after Reactor::after_fork() and that the parent's loop still wakes; here
// the child does everything a program might do to the registrations it inherited, and the
// parent counts every byte:
// - the parent's loop watches four socket pairs and runs a 10 ms repeating timer;
// - the child calls after_fork(), stops one inherited watcher, silences one
//   (Interest::none), turns one to write interest and leaves one as it is; it adds and
//   removes watchers of its own, runs timers, closes its copies of the parent's sockets and
//   destroys its loop with a watcher still registered;
// - meanwhile and afterwards the parent's watchers deliver exactly the bytes written to
//   them (no event lost, none spurious) and its timer keeps firing.
// A second test forks a child that never calls after_fork() and just destroys the loop it
// inherited (as a child does that leaves through exit() or an exception with the loop on
// its stack): that must not take the parent's registrations with it either.
//
// No thread exists at fork time (ASan's allocator is not fork-safe with threads); the child
// reports through its exit status and a line channel, and never returns into GoogleTest.
#include <gtest/gtest.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <optional>
#include <string>

#include "reactor/core/reactor.hpp"
#include "tests/support/backends.hpp"
#include "tests/support/fds.hpp"
#include "tests/support/loop.hpp"
#include "tests/support/patterns.hpp"
#include "tests/support/processes.hpp"
#include "tests/support/signals.hpp"
#include "tests/support/time.hpp"

namespace {

using namespace std::chrono_literals;
using namespace reactor::test;
using reactor::Interest;
using reactor::IoEvents;
using reactor::IoWatcher;
using reactor::Reactor;
using reactor::Timer;
using reactor::test::Child;
using reactor::test::FdLeakCheck;
using reactor::test::SocketPair;
using Clock = reactor::test::SteadyClock;
using reactor::test::LinePipe;

constexpr int kPairs = 4;

class ForkLoopTest : public reactor::test::BackendTest {};

/// The child's exit statuses.
enum ChildStatus : int {
  kChildOk = 0,
  kAfterForkFailed = 10,
  kOwnWatcherSilent,
  kOwnTimerSilent,
  kInheritedReadSilent,
  kNoGoFromParent,
  kReportFailed,
  kInterestChangeFailed,
};

/// The parent's side of the four watched pairs: bytes written to each and bytes its watcher
/// read. In the child (a copy of this memory) `in_child` is set and the handlers only count
/// events: the child must never read the parent's bytes.
struct Watched {
  std::array<SocketPair, kPairs> pairs;
  std::array<std::optional<IoWatcher>, kPairs> watchers;
  std::array<int, kPairs> written{};
  std::array<int, kPairs> read{};
  std::array<int, kPairs> child_events{};
  bool in_child = false;

  void watch(Reactor& loop) {
    for (int i = 0; i < kPairs; ++i) {
      watchers[i] = loop.watch(pairs[i].a.get(), Interest::read, [this, i](IoEvents) {
        if (in_child) {
          ++child_events[i];
          return;
        }
        char buf[256];
        for (;;) {
          const ssize_t n = ::read(pairs[i].a.get(), buf, sizeof buf);
          if (n <= 0) break;
          read[i] += static_cast<int>(n);
        }
      });
    }
  }
  // Writes `n` bytes to every pair's far end.
  bool write_all(int n) {
    for (int i = 0; i < kPairs; ++i) {
      const std::string bytes(static_cast<std::size_t>(n), static_cast<char>('a' + i));
      if (::write(pairs[i].b.get(), bytes.data(), bytes.size()) != n) return false;
      written[i] += n;
    }
    return true;
  }
  bool all_read() const { return read == written; }
};

/// Runs `loop` until every byte written was read (at most 2 s); then a little longer, to
/// see that nothing more comes. Success when the counts match exactly.
::testing::AssertionResult delivers_exactly(Reactor& loop, Watched& w, int round) {
  if (!w.write_all(round + 1)) return ::testing::AssertionFailure() << "write failed";
  run_until(
      loop, [&] { return w.all_read(); }, 2s, 20ms);
  for (int i = 0; i < 3; ++i) loop.run_once(5ms);
  if (w.all_read()) return ::testing::AssertionSuccess();
  auto failure = ::testing::AssertionFailure();
  failure << "round " << round << ":";
  for (int i = 0; i < kPairs; ++i) {
    failure << " pair " << i << " read " << w.read[i] << " of " << w.written[i] << ";";
  }
  return failure;
}

/// Runs `loop` until `pipe` has a line, `child` has exited or `limit` passed; returns the
/// line ("" when none came).
std::string await_line(Reactor& loop, LinePipe& pipe, const Child& child,
                       std::chrono::milliseconds limit) {
  const auto deadline = Clock::now() + limit;
  std::string line;
  while (Clock::now() < deadline) {
    if (pipe.receive(line, 0ms)) return line;
    if (!child.running()) return pipe.receive(line, 0ms) ? line : "";
    loop.run_once(10ms);
  }
  return "";
}

TEST_P(ForkLoopTest, ChildRewiresItsCopyParentsWatchersDeliverExactly) {
  ASSERT_TRUE(Child::single_threaded()) << "forking needs a single-threaded process";
  FdLeakCheck leaks;
  LinePipe to_parent, to_child;
  Watched w;
  std::optional<Reactor> loop;
  loop.emplace(backend());
  w.watch(*loop);
  int ticks = 0;
  Timer tick = loop->every(10ms, [&] { ++ticks; });
  ASSERT_TRUE(delivers_exactly(*loop, w, 0)) << "before fork";

  Child child([&]() -> int {
    w.in_child = true;
    to_parent.close_read();
    to_child.close_write();
    if (loop->after_fork()) return kAfterForkFailed;
    // The inherited registrations, rewired before the loop runs again.
    w.watchers[0]->stop();
    if (w.watchers[1]->set_interest(Interest::none)) return kInterestChangeFailed;
    if (w.watchers[2]->set_interest(Interest::write)) return kInterestChangeFailed;
    tick.cancel();
    // Watchers and timers of its own, added and removed.
    int own_bytes = 0, own_fires = 0;
    {
      SocketPair own;
      IoWatcher own_watch = loop->watch(own.a.get(), Interest::read, [&](IoEvents) {
        char c;
        while (::read(own.a.get(), &c, 1) == 1) ++own_bytes;
      });
      Timer own_timer = loop->after(5ms, [&] { ++own_fires; });
      if (::write(own.b.get(), "xy", 2) != 2) return kOwnWatcherSilent;
      run_until(
          *loop, [&] { return own_bytes == 2 && own_fires == 1; }, 2s);
      if (own_bytes != 2) return kOwnWatcherSilent;
      if (own_fires != 1) return kOwnTimerSilent;
      own_watch.stop();
    }
    // Pair 3 is still watched for reading, pair 2 for writing: the child's loop may report
    // them (its handlers only count); the parent's copies must not notice.
    run_until(
        *loop, [] { return false; }, 50ms);
    if (!to_parent.send("rewired")) return kReportFailed;
    std::string go;
    if (!to_child.receive(go, 20s) || go != "go") return kNoGoFromParent;
    // Close the copies of the parent's sockets: the watcher of pair 0 was stopped first;
    // the others are closed behind the loop's back, then the loop is destroyed with them.
    for (int i = 0; i < kPairs; ++i) w.pairs[i].a.reset();
    run_until(
        *loop, [] { return false; }, 50ms);
    loop.reset();
    for (int i = 0; i < kPairs; ++i) w.pairs[i].b.reset();
    if (!to_parent.send("done")) return kReportFailed;
    return kChildOk;
  });
  to_parent.close_write();
  to_child.close_read();

  // While the child runs and rewires its copy.
  EXPECT_EQ(await_line(*loop, to_parent, child, 20s), "rewired") << "the child never got going";
  const int ticks_before = ticks;
  for (int round = 1; round <= 3; ++round) {
    EXPECT_TRUE(delivers_exactly(*loop, w, round)) << "while the child runs";
  }
  EXPECT_TRUE(to_child.send("go"));
  EXPECT_EQ(await_line(*loop, to_parent, child, 20s), "done");
  const int status = child.wait(20s, [&] { loop->run_once(0ms); });
  ASSERT_EQ(status, kChildOk);

  // After the child closed its copies and destroyed its loop, and after it exited.
  for (int round = 4; round <= 6; ++round) {
    EXPECT_TRUE(delivers_exactly(*loop, w, round)) << "after the child exited";
  }
  const int ticks_mid = ticks;
  run_until(
      *loop, [&] { return ticks >= ticks_mid + 5; }, 1s, 20ms);
  EXPECT_GT(ticks_mid, ticks_before) << "the timer stopped while the child ran";
  EXPECT_GE(ticks, ticks_mid + 5) << "the timer stopped after the child exited";
  for (int i = 0; i < kPairs; ++i) {
    EXPECT_TRUE(w.watchers[i]->active()) << "pair " << i;
    EXPECT_EQ(w.child_events[i], 0) << "the parent's memory saw the child's events";
  }
}

TEST_P(ForkLoopTest, ChildThatDestroysItsLoopWithoutAfterForkLeavesTheParentsAlone) {
  ASSERT_TRUE(Child::single_threaded()) << "forking needs a single-threaded process";
  FdLeakCheck leaks;
  Watched w;
  std::optional<Reactor> loop;
  loop.emplace(backend());
  w.watch(*loop);
  int ticks = 0;
  Timer tick = loop->every(10ms, [&] { ++ticks; });
  ASSERT_TRUE(delivers_exactly(*loop, w, 0)) << "before fork";

  Child child([&]() -> int {
    w.in_child = true;
    // No after_fork(): the loop is not used, only destroyed, its watchers and timer still
    // alive (they become inert).
    loop.reset();
    return kChildOk;
  });
  EXPECT_EQ(child.wait(20s, [&] { loop->run_once(0ms); }), kChildOk);

  for (int round = 1; round <= 3; ++round) {
    EXPECT_TRUE(delivers_exactly(*loop, w, round)) << "after the child destroyed its copy";
  }
  const int ticks_before = ticks;
  run_until(
      *loop, [&] { return ticks >= ticks_before + 5; }, 1s, 20ms);
  EXPECT_GE(ticks, ticks_before + 5) << "the timer stopped";
}

REACTOR_INSTANTIATE_ALL_BACKENDS(ForkLoopTest);

}  // namespace
