// SPDX-License-Identifier: MIT
// The timer contract of reactor.hpp / timer.hpp on every backend: never early on the
// monotonic clock, enormous and negative delays, repeating timers, order within a tick, 0 ms
// timers on the next iteration, cancel and destroy (also from callbacks), Timer::active().
#include <chrono>
#include <cstdint>
#include <iostream>
#include <limits>
#include <memory>
#include <optional>
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
using reactor::Reactor;
using reactor::Timer;
using reactor::test::FdLeakCheck;
using reactor::test::ms_between;
using reactor::test::run_until;
using reactor::test::SteadyClock;
using reactor::test::Watchdog;
using std::chrono::nanoseconds;

class TimerTest : public reactor::test::BackendTest {};

/// Sets a one-shot timer of `delay` and runs the loop until it fires (bounded); returns the
/// time from just before after() to inside the callback, or nullopt if it never fired.
std::optional<nanoseconds> measure_one_shot(Reactor& loop, nanoseconds delay) {
  std::optional<SteadyClock::time_point> fired_at;
  const auto start = SteadyClock::now();
  Timer t = loop.after(delay, [&] { fired_at = SteadyClock::now(); });
  run_until(
      loop, [&] { return fired_at.has_value(); }, 5s, 50ms);
  if (!fired_at) return std::nullopt;
  return *fired_at - start;
}

TEST_P(TimerTest, NeverFiresEarly) {
  FdLeakCheck leaks;
  Reactor loop(backend());
  Watchdog dog(loop, 20s);
  for (nanoseconds delay : {nanoseconds(0), nanoseconds(1ms), nanoseconds(10ms)}) {
    for (int round = 0; round < 5; ++round) {
      const auto took = measure_one_shot(loop, delay);
      ASSERT_TRUE(took.has_value()) << "a " << delay.count() << " ns timer never fired";
      EXPECT_GE(*took, delay) << "fired early: after " << took->count() << " ns";
      EXPECT_LT(*took, delay + 1s);
    }
  }
}

TEST_P(TimerTest, NeverFiresEarlyAfterTheLoopSatIdle) {
  // The loop's cached time goes stale while nobody runs it; a deadline taken from the stale
  // time would fire early by the time the loop slept.
  FdLeakCheck leaks;
  Reactor loop(backend());
  Watchdog dog(loop, 20s);
  for (nanoseconds delay : {nanoseconds(1ms), nanoseconds(10ms), nanoseconds(30ms)}) {
    loop.run_once(0ms);
    std::this_thread::sleep_for(50ms);
    const auto took = measure_one_shot(loop, delay);
    ASSERT_TRUE(took.has_value());
    EXPECT_GE(*took, delay) << "fired early: after " << took->count() << " ns";
    EXPECT_LT(*took, delay + 1s);
  }
}

TEST_P(TimerTest, NeverFiresEarlyWhenSetLateInACallback) {
  // A timer set at the end of a slow callback: its delay counts from the after() call.
  FdLeakCheck leaks;
  Reactor loop(backend());
  Watchdog dog(loop, 20s);
  std::optional<SteadyClock::time_point> set_at, fired_at;
  Timer inner;
  Timer outer = loop.after(0ms, [&] {
    std::this_thread::sleep_for(50ms);
    set_at = SteadyClock::now();
    inner = loop.after(20ms, [&] { fired_at = SteadyClock::now(); });
  });
  ASSERT_TRUE(run_until(
      loop, [&] { return fired_at.has_value(); }, 5s, 50ms));
  ASSERT_TRUE(set_at.has_value());
  EXPECT_GE(*fired_at - *set_at, 20ms)
      << "fired " << ms_between(*set_at, *fired_at) << " ms after being set";
  EXPECT_LT(*fired_at - *set_at, 1s);
}

TEST_P(TimerTest, EnormousDelaysNeitherOverflowNorFire) {
  FdLeakCheck leaks;
  Reactor loop(backend());
  Watchdog dog(loop, 20s);
  int fired = 0;
  auto count = [&] { ++fired; };
  Timer a = loop.after(nanoseconds::max(), count);
  Timer b = loop.after(std::chrono::hours(1'000'000), count);
  Timer c = loop.after(nanoseconds::max() - nanoseconds(1), count);
  Timer d = loop.every(nanoseconds::max(), count);
  Timer e = loop.every(std::chrono::hours(1'000'000), count);
  EXPECT_EQ(loop.timer_count(), 5u);

  // Bounded waits: each lasts its timeout (no negative or zero poll timeout from an
  // overflow) and nothing fires.
  const std::uint64_t it0 = loop.iterations();
  for (int i = 0; i < 5; ++i) {
    const auto start = SteadyClock::now();
    EXPECT_EQ(loop.run_once(20ms), 0u);
    const auto took = SteadyClock::now() - start;
    EXPECT_GE(took, 20ms) << "run_once(20ms) returned after " << ms_between(start, start + took)
                          << " ms";
    EXPECT_LT(took, 2s);
  }
  EXPECT_EQ(loop.iterations() - it0, 5u);
  EXPECT_EQ(fired, 0);

  // run() for 200 ms: the loop blocks on the nearest (real) deadline instead of spinning.
  bool stopped = false;
  Timer stopper = loop.after(200ms, [&] {
    stopped = true;
    loop.stop();
  });
  const std::uint64_t it1 = loop.iterations();
  loop.run();
  EXPECT_TRUE(stopped);
  stopper = Timer();
  EXPECT_LE(loop.iterations() - it1, 10u) << "the loop spun";
  EXPECT_EQ(fired, 0);
  EXPECT_TRUE(a.active());
  EXPECT_TRUE(b.active());
  EXPECT_TRUE(c.active());
  EXPECT_TRUE(d.active());
  EXPECT_TRUE(e.active());
  EXPECT_EQ(loop.timer_count(), 5u);
}

TEST_P(TimerTest, NegativeDelaysCountAsZero) {
  FdLeakCheck leaks;
  Reactor loop(backend());
  Watchdog dog(loop, 20s);
  int a_fired = 0, b_fired = 0;
  Timer a = loop.after(-5ms, [&] { ++a_fired; });
  Timer b = loop.after(nanoseconds::min(), [&] { ++b_fired; });
  EXPECT_EQ(a_fired + b_fired, 0) << "no callback inside after()";
  loop.run_once(0ms);
  EXPECT_EQ(a_fired, 1);
  EXPECT_EQ(b_fired, 1);
  for (int i = 0; i < 3; ++i) loop.run_once(5ms);
  EXPECT_EQ(a_fired, 1);
  EXPECT_EQ(b_fired, 1);
}

TEST_P(TimerTest, RepeatingTimerFiresRepeatedlyNeverEarly) {
  FdLeakCheck leaks;
  Reactor loop(backend());
  Watchdog dog(loop, 20s);
  constexpr auto kInterval = 10ms;
  constexpr std::size_t kFires = 10;
  std::vector<SteadyClock::time_point> fires;
  bool active_inside = true;
  const auto start = SteadyClock::now();
  Timer t;
  t = loop.every(kInterval, [&] {
    fires.push_back(SteadyClock::now());
    active_inside = active_inside && t.active();
  });
  ASSERT_TRUE(run_until(
      loop, [&] { return fires.size() >= kFires; }, 25s, 50ms))
      << "fired " << fires.size() << " times";
  EXPECT_TRUE(active_inside) << "a repeating timer is active inside its callback";
  EXPECT_TRUE(t.active());
  // The k-th firing (from 1) comes no earlier than k intervals after every().
  for (std::size_t k = 0; k < fires.size(); ++k) {
    EXPECT_GE(fires[k] - start, static_cast<long>(k + 1) * kInterval)
        << "firing " << k + 1 << " at " << ms_between(start, fires[k]) << " ms";
  }
  EXPECT_LT(fires.back() - start, static_cast<long>(kFires) * kInterval + 5s);

  t.cancel();
  EXPECT_FALSE(t.active());
  const std::size_t n = fires.size();
  for (int i = 0; i < 5; ++i) loop.run_once(15ms);
  EXPECT_EQ(fires.size(), n) << "fired after cancel()";
}

TEST_P(TimerTest, RepeatingTimerDoesNotBurstWhenLate) {
  FdLeakCheck leaks;
  Reactor loop(backend());
  Watchdog dog(loop, 20s);
  int fired = 0;
  Timer t = loop.every(50ms, [&] { ++fired; });
  std::this_thread::sleep_for(320ms);  // six intervals missed
  for (int i = 0; i < 5; ++i) loop.run_once(0ms);
  EXPECT_GE(fired, 1);
  EXPECT_LE(fired, 2) << "a late repeating timer fired in a burst";
}

TEST_P(TimerTest, RepeatingTimerFiresOncePerIteration) {
  // every(1ns) is always due again; it still fires once per iteration, so run_once ends.
  FdLeakCheck leaks;
  Reactor loop(backend());
  Watchdog dog(loop, 20s);
  int fired = 0;
  Timer t = loop.every(1ns, [&] { ++fired; });
  for (int i = 0; i < 20; ++i) {
    const int before = fired;
    loop.run_once(0ms);
    EXPECT_LE(fired - before, 1) << "iteration " << i;
  }
  EXPECT_GE(fired, 10);
}

TEST_P(TimerTest, TimersDueInOneTickFireInDeadlineThenSetOrder) {
  FdLeakCheck leaks;
  Reactor loop(backend());
  Watchdog dog(loop, 20s);
  std::vector<int> order;
  std::vector<std::uint64_t> iterations;
  auto record = [&](int id) {
    return [&, id] {
      order.push_back(id);
      iterations.push_back(loop.iterations());
    };
  };
  std::vector<Timer> timers;
  // Deadlines 10 ms apart, so that only a 10 ms stall between two after() calls could
  // reorder them; equal delays set in a row keep the order they were set in.
  timers.push_back(loop.after(30ms, record(3)));
  timers.push_back(loop.after(20ms, record(2)));
  timers.push_back(loop.after(10ms, record(1)));
  for (int i = 0; i < 10; ++i) timers.push_back(loop.after(0ms, record(10 + i)));
  for (int i = 0; i < 10; ++i) timers.push_back(loop.after(40ms, record(20 + i)));
  std::this_thread::sleep_for(80ms);  // everything is due before the loop looks
  EXPECT_TRUE(order.empty());
  loop.run_once(0ms);

  std::vector<int> expected;
  for (int i = 0; i < 10; ++i) expected.push_back(10 + i);
  expected.insert(expected.end(), {1, 2, 3});
  for (int i = 0; i < 10; ++i) expected.push_back(20 + i);
  EXPECT_EQ(order, expected);
  ASSERT_FALSE(iterations.empty());
  for (std::uint64_t it : iterations) EXPECT_EQ(it, iterations.front()) << "not one tick";
}

TEST_P(TimerTest, TwoTimersWithOneDelayFireInTheOrderSet) {
  FdLeakCheck leaks;
  Reactor loop(backend());
  Watchdog dog(loop, 20s);
  for (int round = 0; round < 20; ++round) {
    std::vector<int> order;
    Timer first = loop.after(2ms, [&] { order.push_back(1); });
    Timer second = loop.after(2ms, [&] { order.push_back(2); });
    std::this_thread::sleep_for(5ms);
    loop.run_once(0ms);
    EXPECT_EQ(order, (std::vector<int>{1, 2})) << "round " << round;
  }
}

TEST_P(TimerTest, ZeroTimerSetInsideATimerRunsOnTheNextIteration) {
  FdLeakCheck leaks;
  Reactor loop(backend());
  Watchdog dog(loop, 20s);
  std::optional<std::uint64_t> outer_iteration, inner_iteration;
  Timer inner;
  Timer outer = loop.after(0ms, [&] {
    outer_iteration = loop.iterations();
    inner = loop.after(0ms, [&] { inner_iteration = loop.iterations(); });
    EXPECT_FALSE(inner_iteration.has_value()) << "ran inside after()";
  });
  ASSERT_TRUE(run_until(
      loop, [&] { return outer_iteration.has_value(); }, 500ms, 50ms));
  EXPECT_FALSE(inner_iteration.has_value()) << "the 0 ms timer ran in the run_once that set it";
  ASSERT_TRUE(run_until(
      loop, [&] { return inner_iteration.has_value(); }, 500ms, 50ms));
  EXPECT_EQ(*inner_iteration, *outer_iteration + 1);
}

TEST_P(TimerTest, ZeroTimerDoesNotRunInsideAfter) {
  FdLeakCheck leaks;
  Reactor loop(backend());
  Watchdog dog(loop, 20s);
  loop.run_once(0ms);
  int fired = 0;
  Timer t = loop.after(0ms, [&] { ++fired; });
  EXPECT_EQ(fired, 0);
  EXPECT_TRUE(t.active());
  Timer r = loop.every(1ns, [&] { ++fired; });
  EXPECT_EQ(fired, 0);
  std::this_thread::sleep_for(2ms);
  EXPECT_EQ(fired, 0);
  loop.run_once(0ms);
  EXPECT_EQ(fired, 2) << "both are due on the next iteration";
  EXPECT_FALSE(t.active());
}

TEST_P(TimerTest, CancelOfAFiredTimerIsANoOp) {
  FdLeakCheck leaks;
  Reactor loop(backend());
  Watchdog dog(loop, 20s);
  int a_fired = 0, b_fired = 0, c_fired = 0;
  Timer a = loop.after(0ms, [&] { ++a_fired; });
  loop.run_once(0ms);
  ASSERT_EQ(a_fired, 1);
  EXPECT_FALSE(a.active());
  a.cancel();
  a.cancel();
  // A new timer may take the fired one's slot: the stale handle must not reach it.
  Timer b = loop.after(0ms, [&] { ++b_fired; });
  a.cancel();
  EXPECT_TRUE(b.active());
  EXPECT_FALSE(a.active());
  loop.run_once(0ms);
  EXPECT_EQ(b_fired, 1);
  EXPECT_EQ(a_fired, 1);

  // Destroying the stale handle is harmless too.
  Timer c = loop.after(0ms, [&] { ++c_fired; });
  { Timer gone = std::move(a); }
  { Timer gone = std::move(b); }
  EXPECT_TRUE(c.active());
  loop.run_once(0ms);
  EXPECT_EQ(c_fired, 1);
  c = Timer();
  EXPECT_EQ(loop.timer_count(), 0u);
}

TEST_P(TimerTest, CancelOfACancelledTimerIsANoOp) {
  FdLeakCheck leaks;
  Reactor loop(backend());
  Watchdog dog(loop, 20s);
  int t_fired = 0, u_fired = 0;
  Timer t = loop.after(5ms, [&] { ++t_fired; });
  EXPECT_EQ(loop.timer_count(), 1u);
  t.cancel();
  EXPECT_FALSE(t.active());
  EXPECT_EQ(loop.timer_count(), 0u);
  Timer u = loop.after(5ms, [&] { ++u_fired; });  // may reuse t's slot
  t.cancel();
  t.cancel();
  EXPECT_TRUE(u.active());
  EXPECT_EQ(loop.timer_count(), 1u);
  ASSERT_TRUE(run_until(
      loop, [&] { return u_fired > 0; }, 400ms, 20ms));
  for (int i = 0; i < 3; ++i) loop.run_once(10ms);
  EXPECT_EQ(t_fired, 0);
  EXPECT_EQ(u_fired, 1);
}

TEST_P(TimerTest, CancelInsideItsOwnCallback) {
  FdLeakCheck leaks;
  Reactor loop(backend());
  Watchdog dog(loop, 20s);

  int once = 0;
  Timer one_shot;
  one_shot = loop.after(0ms, [&] {
    ++once;
    one_shot.cancel();  // already fired: a no-op
    EXPECT_FALSE(one_shot.active());
  });

  int repeats = 0;
  Timer repeating;
  repeating = loop.every(1ms, [&] {
    if (++repeats == 3) {
      repeating.cancel();
      EXPECT_FALSE(repeating.active());
    }
  });
  ASSERT_TRUE(run_until(
      loop, [&] { return repeats >= 3; }, 1s, 10ms));
  for (int i = 0; i < 10; ++i) loop.run_once(3ms);
  EXPECT_EQ(once, 1);
  EXPECT_EQ(repeats, 3) << "cancel() inside the callback did not stop the repeating timer";
  EXPECT_FALSE(repeating.active());
  one_shot = Timer();
  EXPECT_EQ(loop.timer_count(), 0u);
}

TEST_P(TimerTest, DestroyingTheHandleInsideItsOwnCallback) {
  FdLeakCheck leaks;
  Reactor loop(backend());
  Watchdog dog(loop, 20s);
  auto token = std::make_shared<int>(7);

  std::optional<Timer> repeating;
  int repeat_sum = 0;
  repeating = loop.every(1ms, [&, token] {
    repeating.reset();     // destroys this timer's handle from inside its callback
    repeat_sum += *token;  // the callback's own captures are still usable
  });
  std::optional<Timer> one_shot;
  int once_sum = 0;
  one_shot = loop.after(0ms, [&, token] {
    one_shot.reset();
    once_sum += *token;
  });

  ASSERT_TRUE(run_until(
      loop, [&] { return repeat_sum > 0 && once_sum > 0; }, 1s, 10ms));
  for (int i = 0; i < 10; ++i) loop.run_once(3ms);
  EXPECT_EQ(repeat_sum, 7) << "the repeating timer fired after its handle was destroyed";
  EXPECT_EQ(once_sum, 7);
  EXPECT_EQ(loop.timer_count(), 0u);
  EXPECT_EQ(token.use_count(), 1) << "the callbacks were not freed";
}

TEST_P(TimerTest, CallbackCancelsAnotherTimerDueInTheSameTick) {
  FdLeakCheck leaks;
  Reactor loop(backend());
  Watchdog dog(loop, 20s);
  int b_fired = 0, d_fired = 0;
  std::optional<std::uint64_t> a_iteration, c_iteration, e_iteration;
  Timer b;
  std::optional<Timer> d;
  Timer e;
  Timer a = loop.after(0ms, [&] {
    a_iteration = loop.iterations();
    b.cancel();
    d.reset();
    // A new 0 ms timer, possibly in b's or d's freed slot: it waits for the next iteration.
    e = loop.after(0ms, [&] { e_iteration = loop.iterations(); });
  });
  b = loop.after(0ms, [&] { ++b_fired; });
  Timer c = loop.after(0ms, [&] { c_iteration = loop.iterations(); });
  d = loop.after(0ms, [&] { ++d_fired; });
  std::this_thread::sleep_for(2ms);
  loop.run_once(0ms);
  ASSERT_TRUE(a_iteration.has_value());
  EXPECT_EQ(c_iteration, a_iteration) << "an untouched timer of the same tick must still fire";
  EXPECT_FALSE(e_iteration.has_value());
  ASSERT_TRUE(run_until(
      loop, [&] { return e_iteration.has_value(); }, 200ms, 20ms));
  EXPECT_EQ(*e_iteration, *a_iteration + 1);
  for (int i = 0; i < 3; ++i) loop.run_once(5ms);
  EXPECT_EQ(b_fired, 0) << "a timer cancelled earlier in its tick fired";
  EXPECT_EQ(d_fired, 0) << "a timer destroyed earlier in its tick fired";
}

TEST_P(TimerTest, ActiveFollowsTheTimerLifecycle) {
  FdLeakCheck leaks;
  Reactor loop(backend());
  Watchdog dog(loop, 20s);

  Timer empty;
  EXPECT_FALSE(empty.active());
  empty.cancel();  // no-op on an empty handle
  EXPECT_FALSE(empty.active());

  // One-shot: active until it fires, false inside its callback and after.
  std::optional<bool> inside_one_shot;
  Timer once;
  once = loop.after(0ms, [&] { inside_one_shot = once.active(); });
  EXPECT_TRUE(once.active());
  loop.run_once(0ms);
  ASSERT_TRUE(inside_one_shot.has_value());
  EXPECT_FALSE(*inside_one_shot);
  EXPECT_FALSE(once.active());
  once = Timer();

  // Repeating: active inside its callback and after, until cancelled.
  std::optional<bool> inside_repeating;
  Timer rep;
  rep = loop.every(1ms, [&] { inside_repeating = rep.active(); });
  EXPECT_TRUE(rep.active());
  ASSERT_TRUE(run_until(
      loop, [&] { return inside_repeating.has_value(); }, 500ms, 10ms));
  EXPECT_TRUE(*inside_repeating);
  EXPECT_TRUE(rep.active());
  rep.cancel();
  EXPECT_FALSE(rep.active());

  // Cancelled before firing.
  Timer later = loop.after(1h, [] {});
  EXPECT_TRUE(later.active());
  later.cancel();
  EXPECT_FALSE(later.active());

  // Moves carry the timer; the moved-from handle is empty.
  rep = Timer();
  later = Timer();
  EXPECT_EQ(loop.timer_count(), 0u);
  Timer m = loop.after(1h, [] {});
  Timer n = std::move(m);
  EXPECT_FALSE(m.active());  // NOLINT(bugprone-use-after-move): moved-from is empty
  EXPECT_TRUE(n.active());
  EXPECT_EQ(loop.timer_count(), 1u);
  m.cancel();  // must not reach n's timer
  EXPECT_TRUE(n.active());
  Timer o;
  o = std::move(n);
  EXPECT_TRUE(o.active());
  EXPECT_FALSE(n.active());  // NOLINT(bugprone-use-after-move)

  // Assigning over a live handle cancels its old timer.
  int old_fired = 0;
  Timer p = loop.after(0ms, [&] { ++old_fired; });
  p = loop.after(1h, [] {});
  EXPECT_TRUE(p.active());
  loop.run_once(0ms);
  EXPECT_EQ(old_fired, 0) << "the overwritten timer still fired";
  EXPECT_EQ(loop.timer_count(), 2u);  // o and p
  o = Timer();
  EXPECT_EQ(loop.timer_count(), 1u);
  p.cancel();
  EXPECT_EQ(loop.timer_count(), 0u);
}

REACTOR_INSTANTIATE_ALL_BACKENDS(TimerTest);

}  // namespace
