// SPDX-License-Identifier: MIT
// Reactor::after_fork() on every backend: a child that calls it can use the loop it
// inherited (timers, the watched fds, post) and tear it down, and none of that disturbs the
// parent's loop, which keeps delivering fd events and cross-thread posts while and after the
// child runs.
//
// The child never returns into GoogleTest: it reports through its exit status and leaves
// with _exit(). The parent waits for it with a bounded WNOHANG poll and kills it if it
// overruns. No thread exists at fork() time.
#include <signal.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <iostream>
#include <optional>
#include <thread>

#include "reactor/core/reactor.hpp"
#include "tests/support/backends.hpp"
#include "tests/support/fds.hpp"
#include "tests/support/loop.hpp"
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
using reactor::test::FdLeakCheck;
using reactor::test::flush_before_fork;
using reactor::test::ms_between;
using reactor::test::reap;
using reactor::test::run_until;
using reactor::test::SocketPair;
using reactor::test::SteadyClock;
using reactor::test::still_running;
using reactor::test::Watchdog;

class ForkTest : public reactor::test::BackendTest {};

/// The child's exit statuses.
enum ChildStatus : int {
  kChildOk = 0,
  kAfterForkFailed = 10,
  kTimerNeverFired,
  kTimerFiredEarly,
  kPostNeverRan,
  kWatchedFdNeverReadable,
  kWrongByte,
  kRepeatingTimerStalled,
  kReplyFailed,
  kChildThrew,
};

const char* describe(int status) {
  switch (status) {
    case kChildOk:
      return "ok";
    case kAfterForkFailed:
      return "after_fork() returned an error";
    case kTimerNeverFired:
      return "a timer set in the child never fired";
    case kTimerFiredEarly:
      return "a timer set in the child fired early";
    case kPostNeverRan:
      return "a task posted in the child never ran";
    case kWatchedFdNeverReadable:
      return "the fd watched before fork never became readable in the child";
    case kWrongByte:
      return "the child read an unexpected byte";
    case kRepeatingTimerStalled:
      return "a repeating timer in the child stalled";
    case kReplyFailed:
      return "the child could not write its reply";
    case kChildThrew:
      return "the child threw";
    default:
      return "unknown status";
  }
}

/// Reads everything available from a non-blocking fd; returns the byte count, last byte out.
int drain_count(int fd, char& last) {
  int total = 0;
  char buf[64];
  for (;;) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n <= 0) return total;
    total += static_cast<int>(n);
    last = buf[n - 1];
  }
}

/// One byte written to `writer` reaches the watcher counting into `bytes` (bounded).
::testing::AssertionResult fd_delivers(Reactor& loop, int writer, const int& bytes) {
  const int before = bytes;
  const char c = 'p';
  if (::write(writer, &c, 1) != 1) return ::testing::AssertionFailure() << "write failed";
  if (!run_until(
          loop, [&] { return bytes > before; }, 1s, 20ms)) {
    return ::testing::AssertionFailure() << "the watched fd delivered nothing within 1 s";
  }
  return ::testing::AssertionSuccess();
}

/// A post from another thread wakes `loop` out of a long run_once (bounded).
::testing::AssertionResult post_wakes(Reactor& loop) {
  bool ran = false;
  std::thread poster([&] {
    std::this_thread::sleep_for(50ms);
    loop.post([&] { ran = true; });
  });
  const auto start = SteadyClock::now();
  run_until(
      loop, [&] { return ran; }, 9s, 3s);
  const auto took = SteadyClock::now() - start;
  poster.join();
  if (!ran) return ::testing::AssertionFailure() << "the posted task never ran";
  if (took > 1500ms) {
    return ::testing::AssertionFailure()
           << "the post woke the loop only after " << ms_between(start, start + took) << " ms";
  }
  return ::testing::AssertionSuccess();
}

TEST_P(ForkTest, ChildUsesItsLoopAndTheParentsKeepsWorking) {
  FdLeakCheck leaks;
  SocketPair parent_pair;  // a: watched by the parent's loop; b: written by the parent
  SocketPair child_pair;   // a: watched before fork, read by the child; b: the parent's end
  std::optional<Reactor> loop;
  loop.emplace(backend());
  int parent_bytes = 0, child_bytes = 0;
  char parent_last = 0, child_last = 0;
  IoWatcher parent_watch = loop->watch(parent_pair.a.get(), Interest::read, [&](IoEvents) {
    parent_bytes += drain_count(parent_pair.a.get(), parent_last);
  });
  std::optional<IoWatcher> child_watch =
      loop->watch(child_pair.a.get(), Interest::read,
                  [&](IoEvents) { child_bytes += drain_count(child_pair.a.get(), child_last); });
  // The loop has been used before the fork.
  bool warm = false;
  loop->post([&] { warm = true; });
  loop->run_once(0ms);
  ASSERT_TRUE(warm);
  ASSERT_TRUE(fd_delivers(*loop, parent_pair.b.get(), parent_bytes));

  flush_before_fork();
  const pid_t pid = ::fork();
  ASSERT_NE(pid, -1);
  if (pid == 0) {
    auto child = [&]() -> int {
      if (loop->after_fork()) return kAfterForkFailed;
      parent_watch.stop();  // the parent's socket is the parent's to read
      std::optional<SteadyClock::time_point> fired_at;
      bool posted = false;
      const auto set_at = SteadyClock::now();
      Timer t = loop->after(10ms, [&] { fired_at = SteadyClock::now(); });
      loop->post([&] { posted = true; });
      // The parent writes to child_pair.b once it has checked its own loop.
      run_until(
          *loop, [&] { return fired_at.has_value() && posted && child_bytes > 0; }, 10s, 50ms);
      if (!fired_at) return kTimerNeverFired;
      if (*fired_at - set_at < 10ms) return kTimerFiredEarly;
      if (!posted) return kPostNeverRan;
      if (child_bytes == 0) return kWatchedFdNeverReadable;
      if (child_last != 'x') return kWrongByte;
      // Keep using the loop for a while, answer, then tear everything down: none of it may
      // reach the parent's loop.
      int repeats = 0;
      Timer r = loop->every(5ms, [&] { ++repeats; });
      run_until(
          *loop, [&] { return repeats >= 10; }, 5s, 50ms);
      if (repeats < 10) return kRepeatingTimerStalled;
      const char y = 'y';
      if (::write(child_pair.a.get(), &y, 1) != 1) return kReplyFailed;
      r = Timer();
      t = Timer();
      child_watch.reset();
      parent_watch = IoWatcher();
      loop.reset();
      return kChildOk;
    };
    int status = kChildThrew;
    try {
      status = child();
    } catch (...) {
    }
    ::_exit(status);
  }

  // Parent.
  child_watch.reset();  // the child's socket is the child's to read
  Watchdog dog(*loop, 45s);
  // While the child is alive and using its loop (it waits for our byte).
  EXPECT_TRUE(fd_delivers(*loop, parent_pair.b.get(), parent_bytes)) << "while the child runs";
  EXPECT_TRUE(post_wakes(*loop)) << "while the child runs";
  EXPECT_TRUE(still_running(pid)) << "the child ended before the parent wrote to it";
  const char x = 'x';
  EXPECT_EQ(::write(child_pair.b.get(), &x, 1), 1);

  const int status = reap(pid, std::chrono::seconds(20), [&] { loop->run_once(20ms); });
  EXPECT_EQ(status, kChildOk) << "child: " << describe(status);
  char reply = 0;
  EXPECT_EQ(::read(child_pair.b.get(), &reply, 1), 1) << "no reply from the child";
  EXPECT_EQ(reply, 'y');
  EXPECT_EQ(child_bytes, 0) << "the parent read the child's byte";

  // After the child is gone.
  EXPECT_TRUE(fd_delivers(*loop, parent_pair.b.get(), parent_bytes)) << "after the child exited";
  EXPECT_TRUE(post_wakes(*loop)) << "after the child exited";
  bool fired = false;
  Timer t = loop->after(5ms, [&] { fired = true; });
  EXPECT_TRUE(run_until(
      *loop, [&] { return fired; }, 1s, 20ms));
  EXPECT_EQ(parent_last, 'p');
  dog.disarm();
}

TEST_P(ForkTest, ChildThatDestroysItsLoopDoesNotDisturbTheParent) {
  FdLeakCheck leaks;
  SocketPair pair;
  std::optional<Reactor> loop;
  loop.emplace(backend());
  int bytes = 0;
  char last = 0;
  std::optional<IoWatcher> watch = loop->watch(
      pair.a.get(), Interest::read, [&](IoEvents) { bytes += drain_count(pair.a.get(), last); });
  Timer repeating = loop->every(1h, [] {});
  loop->run_once(0ms);

  flush_before_fork();
  const pid_t pid = ::fork();
  ASSERT_NE(pid, -1);
  if (pid == 0) {
    int status = kChildThrew;
    try {
      if (loop->after_fork()) {
        status = kAfterForkFailed;
      } else {
        watch.reset();
        repeating = Timer();
        loop->run_once(0ms);
        loop.reset();
        status = kChildOk;
      }
    } catch (...) {
    }
    ::_exit(status);
  }

  Watchdog dog(*loop, 30s);
  const int status = reap(pid, std::chrono::seconds(20), [&] { loop->run_once(20ms); });
  EXPECT_EQ(status, kChildOk) << "child: " << describe(status);
  EXPECT_TRUE(fd_delivers(*loop, pair.b.get(), bytes));
  EXPECT_TRUE(post_wakes(*loop));
  EXPECT_TRUE(repeating.active());
  dog.disarm();
}

REACTOR_INSTANTIATE_ALL_BACKENDS(ForkTest);

}  // namespace
