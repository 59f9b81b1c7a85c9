// SPDX-License-Identifier: MIT
// Reactor::after_fork() in a child forked from a multithreaded parent, on every backend: the
// child's thread takes the loop over whatever the parent's other threads were doing at the
// fork.
// - The parent's loop thread was inside a callback: the child can still run the loop (the
//   copied "a callback is running" state belongs to a thread the child does not have), and
//   the handle whose callback was cut off is stopped in the child.
// - Another parent thread was inside post(), holding the queue's lock: the child's own
//   post() does not wait for a lock nobody will release.
//
// Each child reports through its exit status and is bounded by alarm(), so a regression
// (a hang) kills it with SIGALRM and fails the test instead of hanging it.
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <stdexcept>
#include <thread>

#include "reactor/core/reactor.hpp"
#include "tests/support/backends.hpp"
#include "tests/support/fds.hpp"
#include "tests/support/loop.hpp"
#include "tests/support/processes.hpp"
#include "tests/support/sanitizers.hpp"

namespace {

using namespace std::chrono_literals;
using reactor::Interest;
using reactor::IoEvents;
using reactor::IoWatcher;
using reactor::Reactor;
using reactor::Timer;
using reactor::test::Child;
using reactor::test::run_until;
using reactor::test::SocketPair;

class ForkThreadsTest : public reactor::test::BackendTest {};

/// The child's exit statuses.
enum ChildStatus : int {
  kChildOk = 0,
  kAfterForkFailed = 10,
  kRunOnceRefused,
  kCutOffHandleStillActive,
  kTimerNeverFired,
  kPostNeverRan,
  kWatchedFdSilent,
};

const char* describe(int status) {
  switch (status) {
    case kChildOk:
      return "ok";
    case kAfterForkFailed:
      return "after_fork() returned an error";
    case kRunOnceRefused:
      return "run_once() threw: the parent's callback state was kept";
    case kCutOffHandleStillActive:
      return "the handle whose callback was running at the fork is still active";
    case kTimerNeverFired:
      return "a timer set in the child never fired";
    case kPostNeverRan:
      return "a task posted in the child never ran";
    case kWatchedFdSilent:
      return "an fd watched in the child never became readable";
    default:
      return "killed, hung (SIGALRM) or threw";
  }
}

constexpr auto kChildLimit = std::chrono::milliseconds(8000);

/// In the child, after after_fork(): the loop runs, and a timer, a post and a watched fd each
/// reach their callbacks.
int child_loop_works(Reactor& loop) {
  try {
    loop.run_once(0ms);
  } catch (const std::logic_error&) {
    return kRunOnceRefused;
  }
  SocketPair pair;
  bool fired = false, posted = false, readable = false;
  Timer t = loop.after(1ms, [&] { fired = true; });
  loop.post([&] { posted = true; });
  IoWatcher w = loop.watch(pair.a.get(), Interest::read, [&](IoEvents) { readable = true; });
  const char c = 'c';
  if (::write(pair.b.get(), &c, 1) != 1) return kWatchedFdSilent;
  run_until(
      loop, [&] { return fired && posted && readable; }, 3s, 50ms);
  if (!fired) return kTimerNeverFired;
  if (!posted) return kPostNeverRan;
  if (!readable) return kWatchedFdSilent;
  return kChildOk;
}

/// Forks while another thread runs a callback of `loop` made by `start_callback`, which is
/// given the flags to set (`in`) and to wait on (`forked`). The child runs `child_body`.
template <class Start, class ChildBody>
int fork_inside_callback(Reactor& loop, Start start_callback, ChildBody child_body) {
  std::atomic<bool> in{false}, forked{false};
  auto handle = start_callback(in, forked);
  std::thread runner([&] { loop.run_once(); });
  while (!in.load()) std::this_thread::yield();
  int status = -1;
  {
    Child child([&] {
      ::alarm(5);
      if (loop.after_fork()) return static_cast<int>(kAfterForkFailed);
      return child_body(handle);
    });
    forked.store(true);
    runner.join();
    status = child.wait(kChildLimit);
  }
  return status;
}

TEST_P(ForkThreadsTest, ChildRunsTheLoopForkedDuringATimerCallback) {
  Reactor loop(backend());
  const int status = fork_inside_callback(
      loop,
      [&](std::atomic<bool>& in, std::atomic<bool>& forked) {
        return loop.after(0ms, [&] {
          in.store(true);
          while (!forked.load()) {
          }
        });
      },
      [&](Timer&) { return child_loop_works(loop); });
  EXPECT_EQ(status, kChildOk) << "child: " << describe(status);
  // The parent's loop is unaffected.
  bool ran = false;
  loop.post([&] { ran = true; });
  EXPECT_TRUE(run_until(
      loop, [&] { return ran; }, 2s));
}

TEST_P(ForkThreadsTest, RepeatingTimerCutOffByTheForkIsStoppedInTheChild) {
  Reactor loop(backend());
  const int status = fork_inside_callback(
      loop,
      [&](std::atomic<bool>& in, std::atomic<bool>& forked) {
        return loop.every(1ms, [&] {
          in.store(true);
          while (!forked.load()) {
          }
        });
      },
      [&](Timer& cut_off) {
        if (cut_off.active()) return static_cast<int>(kCutOffHandleStillActive);
        return child_loop_works(loop);
      });
  EXPECT_EQ(status, kChildOk) << "child: " << describe(status);
}

TEST_P(ForkThreadsTest, WatcherCutOffByTheForkIsStoppedInTheChild) {
  Reactor loop(backend());
  SocketPair pair;
  const char c = 'x';
  ASSERT_EQ(::write(pair.b.get(), &c, 1), 1);
  const int status = fork_inside_callback(
      loop,
      [&](std::atomic<bool>& in, std::atomic<bool>& forked) {
        return loop.watch(pair.a.get(), Interest::read, [&](IoEvents) {
          in.store(true);
          while (!forked.load()) {
          }
        });
      },
      [&](IoWatcher& cut_off) {
        if (cut_off.active()) return static_cast<int>(kCutOffHandleStillActive);
        return child_loop_works(loop);
      });
  EXPECT_EQ(status, kChildOk) << "child: " << describe(status);
}

TEST_P(ForkThreadsTest, ChildPostsWhileAParentThreadWasPosting) {
  // Skipped under ASan only: its allocator is not fork-safe with threads (a child forked
  // while the poster holds its allocator lock, growing the queue, deadlocks in malloc).
  // TSan locks its own state around fork() and runs this test without a report.
  if (reactor::test::kAsan) {
    GTEST_SKIP() << "forking while another thread allocates: ASan's allocator deadlocks";
  }
  Reactor loop(backend());
  // The poster posts without pause while it has budget; the loop is not run meanwhile, so
  // that post() never makes a system call (the wake-up is already pending) and spends most
  // of its time holding the lock, growing the queue. The budget bounds the queue's memory
  // however long a child takes.
  constexpr int kBudget = 1'000'000;
  std::atomic<bool> stop{false};
  std::atomic<int> budget{0};
  std::thread poster([&] {
    while (!stop.load(std::memory_order_relaxed)) {
      if (budget.load(std::memory_order_relaxed) > 0) {
        budget.fetch_sub(1, std::memory_order_relaxed);
        loop.post([] {});
      } else {
        std::this_thread::yield();
      }
    }
  });
  constexpr int kForks = 20;
  int ok = 0;
  for (int i = 0; i < kForks; ++i) {
    budget.store(kBudget);
    std::this_thread::sleep_for(1ms);  // the poster is well into its queue
    Child child([&] {
      ::alarm(2);
      if (loop.after_fork()) return static_cast<int>(kAfterForkFailed);
      bool ran = false;
      loop.post([&] { ran = true; });
      run_until(
          loop, [&] { return ran; }, 1s, 20ms);
      return static_cast<int>(ran ? kChildOk : kPostNeverRan);
    });
    const int status = child.wait(kChildLimit);
    EXPECT_EQ(status, kChildOk) << "fork " << i << ": child: " << describe(status);
    if (status == kChildOk) ++ok;
    budget.store(0);
    loop.run_once(0ms);  // drains the queue
  }
  stop.store(true);
  poster.join();
  EXPECT_EQ(ok, kForks);
  // The parent's queue still works.
  bool ran = false;
  loop.post([&] { ran = true; });
  EXPECT_TRUE(run_until(
      loop, [&] { return ran; }, 2s));
}

REACTOR_INSTANTIATE_ALL_BACKENDS(ForkThreadsTest);

}  // namespace
