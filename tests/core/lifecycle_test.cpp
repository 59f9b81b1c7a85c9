// SPDX-License-Identifier: MIT
// The loop's lifecycle on every backend: stop() from a callback ends run() within one
// iteration, run_once(timeout) with nothing to do waits that timeout, stop() before run(),
// and destroying a Reactor while IoWatchers, Timers, SignalWatchers and posted tasks live.
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <system_error>
#include <thread>
#include <utility>
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
using reactor::SignalWatcher;
using reactor::Timer;
using reactor::test::FdLeakCheck;
using reactor::test::g_signal_counts;
using reactor::test::handler_of;
using reactor::test::ms_between;
using reactor::test::open_fd_count;
using reactor::test::query_disposition;
using reactor::test::same_disposition;
using reactor::test::ScopedDisposition;
using reactor::test::ScopedUnblock;
using reactor::test::SocketPair;
using reactor::test::SteadyClock;
using reactor::test::Watchdog;
using std::chrono::nanoseconds;

class LifecycleTest : public reactor::test::BackendTest {};

/// A safety net for run(): a timer that stops the loop after `limit` and says so.
struct Safety {
  Safety(Reactor& loop, nanoseconds limit)
      : timer(loop.after(limit, [this, &loop] {
          fired = true;
          loop.stop();
        })) {}
  bool fired = false;
  Timer timer;
};

TEST_P(LifecycleTest, StopFromAnIoCallbackEndsRunWithinOneIteration) {
  FdLeakCheck leaks;
  SocketPair pair;
  const char c = 'x';
  ASSERT_EQ(::write(pair.b.get(), &c, 1), 1);  // never read: readable every iteration
  Reactor loop(backend());
  Watchdog dog(loop, 20s);
  Safety safety(loop, 5s);
  int calls = 0;
  std::uint64_t stop_iteration = 0;
  IoWatcher w = loop.watch(pair.a.get(), Interest::read, [&](IoEvents) {
    if (++calls == 3) {
      stop_iteration = loop.iterations();
      loop.stop();
    }
  });
  loop.run();
  EXPECT_FALSE(safety.fired);
  EXPECT_EQ(calls, 3) << "the loop went on after stop()";
  EXPECT_LE(loop.iterations() - stop_iteration, 1u);
}

TEST_P(LifecycleTest, StopFromATimerCallbackEndsRunWithinOneIteration) {
  FdLeakCheck leaks;
  Reactor loop(backend());
  Watchdog dog(loop, 20s);
  Safety safety(loop, 5s);
  int fires = 0;
  std::uint64_t stop_iteration = 0;
  Timer t = loop.every(1ms, [&] {
    if (++fires == 3) {
      stop_iteration = loop.iterations();
      loop.stop();
    }
  });
  loop.run();
  EXPECT_FALSE(safety.fired);
  EXPECT_EQ(fires, 3);
  EXPECT_LE(loop.iterations() - stop_iteration, 1u);
}

TEST_P(LifecycleTest, StopFromAPostedTaskEndsRunWithinOneIteration) {
  FdLeakCheck leaks;
  Reactor loop(backend());
  Watchdog dog(loop, 20s);
  Safety safety(loop, 5s);
  int runs = 0;
  std::uint64_t stop_iteration = 0;
  std::function<void()> task = [&] {
    if (++runs == 3) {
      stop_iteration = loop.iterations();
      loop.stop();
    }
    loop.post(task);  // one more for the next iteration, stop or not
  };
  loop.post(task);
  loop.run();
  EXPECT_FALSE(safety.fired);
  EXPECT_EQ(runs, 3);
  EXPECT_LE(loop.iterations() - stop_iteration, 1u);
}

TEST_P(LifecycleTest, RunOnceWithNothingWatchedWaitsItsTimeout) {
  FdLeakCheck leaks;
  Reactor loop(backend());
  Watchdog dog(loop, 30s);
  for (nanoseconds timeout : {nanoseconds(0), nanoseconds(1ms), nanoseconds(10ms),
                              nanoseconds(50ms), nanoseconds(200ms), nanoseconds(1500us)}) {
    for (int round = 0; round < 3; ++round) {
      const std::uint64_t it0 = loop.iterations();
      const auto start = SteadyClock::now();
      const std::size_t callbacks = loop.run_once(timeout);
      const auto took = SteadyClock::now() - start;
      EXPECT_EQ(callbacks, 0u);
      EXPECT_EQ(loop.iterations() - it0, 1u);
      EXPECT_GE(took, timeout) << "run_once(" << timeout.count() << " ns) returned after "
                               << ms_between(start, start + took) << " ms";
      EXPECT_LT(took, timeout + 1s);
    }
  }
}

TEST_P(LifecycleTest, StopBeforeRunMakesRunReturnAtOnce) {
  FdLeakCheck leaks;
  Reactor loop(backend());
  Watchdog dog(loop, 20s);
  Safety safety(loop, 3s);
  loop.stop();
  const std::uint64_t it0 = loop.iterations();
  auto start = SteadyClock::now();
  loop.run();
  auto took = SteadyClock::now() - start;
  EXPECT_FALSE(safety.fired);
  EXPECT_LT(took, 500ms);
  EXPECT_LE(loop.iterations() - it0, 1u);

  // That stop was used up: the next run() runs until it is stopped again.
  bool stopped = false;
  Timer stopper = loop.after(50ms, [&] {
    stopped = true;
    loop.stop();
  });
  start = SteadyClock::now();
  loop.run();
  took = SteadyClock::now() - start;
  EXPECT_TRUE(stopped) << "a stale stop() ended a second run()";
  EXPECT_FALSE(safety.fired);
  EXPECT_GE(took, 50ms);
}

TEST_P(LifecycleTest, DestroyingALoopWithLiveHandles) {
  ScopedDisposition usr1(SIGUSR1);
  const struct sigaction previous = usr1.install_counting();
  ScopedUnblock unblock(SIGUSR1);
  FdLeakCheck leaks;
  SocketPair pair;
  const std::size_t fds_without_loop = open_fd_count();

  auto token = std::make_shared<int>(0);  // shared by every callback: tracks their release
  int calls = 0;
  IoWatcher io;
  Timer once, repeating;
  SignalWatcher sig;
  {
    auto loop = std::make_unique<Reactor>(backend());
    io = loop->watch(pair.a.get(), Interest::read, [&, token](IoEvents) { ++calls; });
    once = loop->after(1h, [&, token] { ++calls; });
    repeating = loop->every(1ms, [&, token] { ++calls; });
    sig = loop->on_signal(SIGUSR1, [&, token](int) { ++calls; });
    for (int i = 0; i < 3; ++i) loop->run_once(2ms);
    EXPECT_TRUE(io.active());
    EXPECT_TRUE(once.active());
    EXPECT_TRUE(repeating.active());
    EXPECT_TRUE(sig.active());
    EXPECT_NE(handler_of(query_disposition(SIGUSR1)), handler_of(previous));

    // Things that would need one more iteration: a posted task, a readable fd.
    loop->post([&, token] { ++calls; });
    const char c = 'x';
    ASSERT_EQ(::write(pair.b.get(), &c, 1), 1);
    loop.reset();
  }
  const int calls_at_destroy = calls;

  // The loop's own fds are gone; the user's fds are not touched.
  EXPECT_EQ(open_fd_count(), fds_without_loop);
  EXPECT_NE(::fcntl(pair.a.get(), F_GETFD), -1) << "the loop closed a watched fd it does not own";
  // Every callback (and the pending task) was released with the loop.
  EXPECT_EQ(token.use_count(), 1);
  // The signal disposition was restored by the loop's destruction.
  EXPECT_TRUE(same_disposition(query_disposition(SIGUSR1), previous));
  ASSERT_EQ(::raise(SIGUSR1), 0);
  EXPECT_EQ(g_signal_counts[SIGUSR1].load(), 1);

  // The handles are inert.
  EXPECT_FALSE(io.active());
  EXPECT_FALSE(once.active());
  EXPECT_FALSE(repeating.active());
  EXPECT_FALSE(sig.active());
  EXPECT_EQ(io.interest(), Interest::none);
  EXPECT_EQ(io.set_interest(Interest::read_write), std::errc::bad_file_descriptor);
  io.stop();
  once.cancel();
  repeating.cancel();
  sig.stop();
  EXPECT_FALSE(io.active());
  EXPECT_TRUE(same_disposition(query_disposition(SIGUSR1), previous));

  // Moving inert handles around and destroying them is safe.
  IoWatcher io2 = std::move(io);
  Timer t2;
  t2 = std::move(repeating);
  SignalWatcher s2(std::move(sig));
  EXPECT_FALSE(io2.active());
  EXPECT_FALSE(t2.active());
  EXPECT_FALSE(s2.active());
  io2 = IoWatcher();
  t2 = Timer();
  s2 = SignalWatcher();
  once = Timer();
  EXPECT_EQ(calls, calls_at_destroy);
  EXPECT_TRUE(same_disposition(query_disposition(SIGUSR1), previous));

  // A new loop on the same fd works: nothing of the old registration is left.
  {
    Reactor fresh(backend());
    bool readable = false;
    IoWatcher w = fresh.watch(pair.a.get(), Interest::read,
                              [&](IoEvents ev) { readable = readable || ev.readable(); });
    run_until(
        fresh, [&] { return readable; }, 500ms, 50ms);
    EXPECT_TRUE(readable);
  }
  EXPECT_EQ(open_fd_count(), fds_without_loop);
}

TEST_P(LifecycleTest, HandlesOutliveTheLoopInAnyOrder) {
  FdLeakCheck leaks;
  SocketPair p1, p2;
  std::vector<IoWatcher> watchers;
  std::vector<Timer> timers;
  {
    Reactor loop(backend());
    watchers.push_back(loop.watch(p1.a.get(), Interest::read, [](IoEvents) {}));
    watchers.push_back(loop.watch(p2.a.get(), Interest::write, [](IoEvents) {}));
    timers.push_back(loop.after(0ms, [] {}));
    timers.push_back(loop.every(1h, [] {}));
    loop.run_once(0ms);  // the 0 ms timer fires; its handle stays
    watchers[1].stop();  // one stopped before the loop goes
  }
  for (auto& w : watchers) EXPECT_FALSE(w.active());
  for (auto& t : timers) EXPECT_FALSE(t.active());
  // Destroy in reverse and forward order.
  watchers.pop_back();
  timers.erase(timers.begin());
  watchers.clear();
  timers.clear();
}

REACTOR_INSTANTIATE_ALL_BACKENDS(LifecycleTest);

}  // namespace
