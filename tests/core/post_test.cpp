// SPDX-License-Identifier: MIT
// Cross-thread post(), stop() and unwatch, on every backend. Meant to be TSan clean:
// everything a task touches belongs to the loop thread, the other threads only call post()
// and stop(), and every thread is joined before its results are read.
#include <unistd.h>

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <iostream>
#include <optional>
#include <thread>
#include <vector>

#include "reactor/core/reactor.hpp"
#include "tests/support/backends.hpp"
#include "tests/support/fds.hpp"
#include "tests/support/loop.hpp"
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
using reactor::test::ms_between;
using reactor::test::run_until;
using reactor::test::SocketPair;
using reactor::test::SteadyClock;
using reactor::test::Watchdog;

class PostTest : public reactor::test::BackendTest {};

TEST_P(PostTest, FourThreadsPostAHundredThousandTasks) {
  constexpr int kThreads = 4;
  constexpr int kPerThread = 25000;
  constexpr int kTotal = kThreads * kPerThread;
  FdLeakCheck leaks;
  Reactor loop(backend());
  const std::thread::id loop_thread = std::this_thread::get_id();

  // Loop-thread state only.
  std::array<int, kThreads> next{};
  int total = 0;
  int wrong_thread = 0;
  int out_of_order = 0;
  bool rescued = false;
  Timer safety = loop.after(40s, [&] {
    rescued = true;
    loop.stop();
  });

  std::atomic<bool> go{false};
  loop.post([&] { go.store(true); });  // the posters start once run() is running
  std::vector<std::thread> posters;
  std::atomic<int> posters_started_late{0};
  for (int t = 0; t < kThreads; ++t) {
    posters.emplace_back([&, t] {
      if (!wait_for([&] { return go.load(); }, 10s)) posters_started_late.fetch_add(1);
      for (int i = 0; i < kPerThread; ++i) {
        loop.post([&, t, i] {
          if (std::this_thread::get_id() != loop_thread) ++wrong_thread;
          if (next[t] != i) ++out_of_order;
          next[t] = i + 1;
          if (++total == kTotal) loop.stop();
        });
      }
    });
  }
  const auto start = SteadyClock::now();
  loop.run();
  const auto took = SteadyClock::now() - start;
  for (auto& p : posters) p.join();
  // Nothing left over, nothing run twice.
  for (int i = 0; i < 3; ++i) loop.run_once(0ms);

  std::cout << "[ figure   ] " << kTotal << " posted tasks ran in "
            << ms_between(start, start + took) << " ms\n";
  EXPECT_FALSE(rescued) << "run() did not finish within 40 s";
  EXPECT_EQ(posters_started_late.load(), 0) << "the first posted task never ran";
  EXPECT_EQ(total, kTotal);
  EXPECT_EQ(wrong_thread, 0) << "tasks ran off the loop thread";
  EXPECT_EQ(out_of_order, 0) << "tasks of one thread ran out of posting order";
  for (int t = 0; t < kThreads; ++t) EXPECT_EQ(next[t], kPerThread) << "thread " << t;
}

TEST_P(PostTest, TaskPostedByATaskRunsOnTheNextIteration) {
  FdLeakCheck leaks;
  Reactor loop(backend());
  Watchdog dog(loop, 20s);
  std::optional<std::uint64_t> outer, inner;
  loop.post([&] {
    outer = loop.iterations();
    loop.post([&] { inner = loop.iterations(); });
  });
  EXPECT_FALSE(outer.has_value()) << "post() ran the task inside the call";
  loop.run_once(0ms);
  ASSERT_TRUE(outer.has_value());
  EXPECT_FALSE(inner.has_value());
  ASSERT_TRUE(run_until(
      loop, [&] { return inner.has_value(); }, 200ms, 20ms));
  EXPECT_EQ(*inner, *outer + 1);
}

TEST_P(PostTest, PendingTaskMakesRunOnceNotBlock) {
  FdLeakCheck leaks;
  Reactor loop(backend());
  Watchdog dog(loop, 20s);
  bool ran = false;
  loop.post([&] { ran = true; });
  const auto start = SteadyClock::now();
  loop.run_once(5s);
  const auto took = SteadyClock::now() - start;
  EXPECT_TRUE(ran);
  EXPECT_LT(took, 1s) << "run_once blocked with a task posted: " << ms_between(start, start + took)
                      << " ms";
}

TEST_P(PostTest, PostFromAnotherThreadWakesABlockedLoop) {
  FdLeakCheck leaks;
  Reactor loop(backend());
  Watchdog dog(loop, 20s);
  for (int round = 0; round < 5; ++round) {
    bool ran = false;
    // Before the thread starts: its 100 ms sleep may begin before the constructor returns.
    const auto start = SteadyClock::now();
    std::thread poster([&] {
      std::this_thread::sleep_for(100ms);
      loop.post([&] { ran = true; });
    });
    run_until(
        loop, [&] { return ran; }, 15s, 5s);
    const auto took = SteadyClock::now() - start;
    poster.join();
    EXPECT_TRUE(ran);
    EXPECT_GE(took, 100ms);
    EXPECT_LT(took, 1500ms) << "round " << round << ": the post woke the loop after "
                            << ms_between(start, start + took) << " ms";
  }
}

TEST_P(PostTest, StopFromAnotherThreadEndsRunAtOnce) {
  FdLeakCheck leaks;
  SocketPair rescue_pair;
  Reactor loop(backend());
  // No timers: the loop blocks with nothing to do. The only way out besides stop() is this
  // watched socket, which the stopping thread writes to if run() has not returned after 5 s.
  bool rescued = false;
  IoWatcher rescue = loop.watch(rescue_pair.a.get(), Interest::read, [&](IoEvents) {
    rescued = true;
    loop.stop();
  });
  ASSERT_EQ(loop.timer_count(), 0u);
  for (int round = 0; round < 5; ++round) {
    SCOPED_TRACE(round);
    SteadyClock::time_point stop_called;
    std::atomic<bool> returned{false};
    const std::uint64_t it0 = loop.iterations();
    const auto start = SteadyClock::now();  // before the stopper starts its 200 ms
    std::thread stopper([&] {
      std::this_thread::sleep_for(200ms);  // let run() block
      stop_called = SteadyClock::now();
      loop.stop();
      if (!wait_for([&] { return returned.load(); }, 5000ms)) {
        const char c = 'r';
        (void)!::write(rescue_pair.b.get(), &c, 1);
      }
    });
    loop.run();
    const auto end = SteadyClock::now();
    returned.store(true);
    stopper.join();
    ASSERT_FALSE(rescued) << "stop() from another thread did not wake run()";
    std::cout << "[ figure   ] run() returned " << ms_between(stop_called, end)
              << " ms after stop() from another thread\n";
    EXPECT_LT(end - stop_called, 500ms);
    EXPECT_GE(end - start, 200ms) << "run() returned before stop() was called";
    EXPECT_LE(loop.iterations() - it0, 3u) << "a blocked loop iterated";
  }
}

TEST_P(PostTest, DestroyingAWatcherThroughPostWhileItsCallbackSleeps) {
  FdLeakCheck leaks;
  SocketPair pair;
  Reactor loop(backend());
  Watchdog dog(loop, 30s);
  std::optional<IoWatcher> watcher;
  std::atomic<bool> in_callback{false};
  int calls = 0;
  std::optional<int> calls_at_destroy;
  // The byte is never read: the fd stays readable, so a live watcher is called every
  // iteration.
  watcher = loop.watch(pair.a.get(), Interest::read, [&](IoEvents) {
    ++calls;
    in_callback.store(true);
    std::this_thread::sleep_for(100ms);
  });
  const char c = 'x';
  ASSERT_EQ(::write(pair.b.get(), &c, 1), 1);

  bool posted = false;
  std::thread other([&] {
    if (!wait_for([&] { return in_callback.load(); }, 10s)) return;
    loop.post([&] {
      watcher.reset();  // destroys the watcher on the loop thread
      calls_at_destroy = calls;
    });
    posted = true;
  });
  run_until(
      loop, [&] { return in_callback.load(); }, 2s, 100ms);
  // The task is queued while the callback sleeps; keep the loop turning until it has run.
  const bool destroyed = run_until(
      loop, [&] { return calls_at_destroy.has_value(); }, 5s, 100ms);
  other.join();
  ASSERT_TRUE(posted);
  ASSERT_TRUE(destroyed);
  for (int i = 0; i < 5; ++i) loop.run_once(20ms);
  EXPECT_GE(calls, 1);
  EXPECT_EQ(calls, *calls_at_destroy) << "the watcher was called after it was destroyed";
  EXPECT_EQ(loop.watcher_count(), 0u);
}

REACTOR_INSTANTIATE_ALL_BACKENDS(PostTest);

}  // namespace
