// SPDX-License-Identifier: MIT
// A Reactor hosted by a libuv loop the program owns (Reactor(uv_loop_t*)): plain libuv
// handles and the Reactor's watchers, timers and posted tasks share one loop, and either
// driver runs both: the program's own uv_run(), or Reactor::run()/run_once(). stop() ends
// the program's uv_run(); destroying the Reactor leaves the loop usable and closable.
// Only for the uv backend: this file is built only when the library has libuv.
#include <gtest/gtest.h>
#include <unistd.h>
#include <uv.h>

#include <atomic>
#include <chrono>
#include <optional>
#include <stdexcept>
#include <thread>

#include "reactor/core/reactor.hpp"
#include "tests/support/backends.hpp"
#include "tests/support/fds.hpp"

namespace {

using namespace std::chrono_literals;
using reactor::Interest;
using reactor::IoEvents;
using reactor::IoWatcher;
using reactor::Reactor;
using reactor::Timer;
using reactor::test::FdLeakCheck;
using reactor::test::SocketPair;
using Clock = std::chrono::steady_clock;

/// The program's loop, with a plain libuv timer of its own.
class UvEmbedTest : public ::testing::Test {
 protected:
  void SetUp() override {
    reactor::test::warm_up("uv");
    leaks_.emplace();
    ASSERT_EQ(uv_loop_init(&loop_), 0);
    ASSERT_EQ(uv_timer_init(&loop_, &timer_), 0);
    timer_.data = this;
  }

  void TearDown() override {
    // The program closes its own handles; the loop must then close.
    if (uv_is_closing(reinterpret_cast<uv_handle_t*>(&timer_)) == 0) {
      uv_close(reinterpret_cast<uv_handle_t*>(&timer_), nullptr);
    }
    for (int i = 0; i < 100 && uv_run(&loop_, UV_RUN_NOWAIT) != 0; ++i) {
    }
    EXPECT_EQ(uv_loop_close(&loop_), 0) << "the loop still holds handles";
    leaks_.reset();
  }

  /// Starts the plain timer, repeating every `ms`, counting into ticks_.
  void start_uv_timer(std::uint64_t ms) {
    uv_timer_start(
        &timer_, [](uv_timer_t* t) { ++static_cast<UvEmbedTest*>(t->data)->ticks_; }, ms, ms);
  }

  /// The program's driver: uv_run(UV_RUN_ONCE) until `done()` or `limit` (the plain timer,
  /// started first, keeps each wait short).
  template <class Pred>
  bool uv_run_until(Pred done, std::chrono::milliseconds limit = 3000ms) {
    const auto deadline = Clock::now() + limit;
    while (!done() && Clock::now() < deadline) uv_run(&loop_, UV_RUN_ONCE);
    return done();
  }

  std::optional<FdLeakCheck> leaks_;
  uv_loop_t loop_{};
  uv_timer_t timer_{};
  int ticks_ = 0;
};

TEST_F(UvEmbedTest, ProgramsUvRunDrivesReactorHandlesAndItsOwn) {
  Reactor loop(&loop_);
  EXPECT_EQ(loop.backend_name(), "uv");
  start_uv_timer(5);
  SocketPair pair;
  const std::thread::id self = std::this_thread::get_id();
  bool readable = false, fired = false, posted = false, posted_from_thread = false;
  bool all_on_this_thread = true;
  const auto here = [&] {
    all_on_this_thread = all_on_this_thread && std::this_thread::get_id() == self;
  };
  IoWatcher w = loop.watch(pair.a.get(), Interest::read, [&](IoEvents e) {
    here();
    char c;
    if (e.readable() && ::read(pair.a.get(), &c, 1) == 1) readable = true;
  });
  const auto set_at = Clock::now();
  Clock::time_point fired_at{};
  Timer t = loop.after(20ms, [&] {
    here();
    fired = true;
    fired_at = Clock::now();
  });
  loop.post([&] {
    here();
    posted = true;
  });
  std::thread poster([&] {
    loop.post([&] {
      here();
      posted_from_thread = true;
    });
  });
  const char c = 'x';
  ASSERT_EQ(::write(pair.b.get(), &c, 1), 1);
  EXPECT_TRUE(uv_run_until(
      [&] { return readable && fired && posted && posted_from_thread && ticks_ >= 3; }));
  poster.join();
  EXPECT_TRUE(readable) << "the Reactor's watcher";
  EXPECT_TRUE(fired) << "the Reactor's timer";
  EXPECT_GE(fired_at - set_at, 20ms) << "the Reactor's timer fired early";
  EXPECT_TRUE(posted) << "a task posted on the loop thread";
  EXPECT_TRUE(posted_from_thread) << "a task posted from another thread";
  EXPECT_GE(ticks_, 3) << "the program's own libuv timer";
  EXPECT_TRUE(all_on_this_thread) << "a callback ran off the thread calling uv_run";
  EXPECT_GT(loop.iterations(), 0u);
}

TEST_F(UvEmbedTest, ReactorTimerAloneWakesTheProgramsUvRun) {
  // No handle of the program's is active: only the Reactor's timer ends uv_run's wait.
  Reactor loop(&loop_);
  const auto start = Clock::now();
  bool fired = false;
  Timer t = loop.after(30ms, [&] { fired = true; });
  for (int i = 0; i < 50 && !fired; ++i) uv_run(&loop_, UV_RUN_ONCE);
  EXPECT_TRUE(fired);
  EXPECT_GE(Clock::now() - start, 30ms);
  EXPECT_LT(Clock::now() - start, 2s);
}

TEST_F(UvEmbedTest, PostFromAnotherThreadWakesABlockedUvRun) {
  Reactor loop(&loop_);
  std::atomic<bool> ran{false};
  std::thread::id ran_on{};
  std::thread runner([&] {
    // The program's loop thread: blocks in uv_run until the Reactor is stopped.
    uv_run(&loop_, UV_RUN_DEFAULT);
  });
  std::this_thread::sleep_for(50ms);
  const auto start = Clock::now();
  loop.post([&] {
    ran_on = std::this_thread::get_id();
    ran = true;
    loop.stop();
  });
  const std::thread::id runner_id = runner.get_id();
  runner.join();  // bounded by the test's timeout: a post that never wakes uv_run hangs here
  EXPECT_TRUE(ran.load());
  EXPECT_EQ(ran_on, runner_id);
  EXPECT_LT(Clock::now() - start, 2s);
}

TEST_F(UvEmbedTest, StopEndsTheProgramsUvRunDefault) {
  Reactor loop(&loop_);
  start_uv_timer(5);
  // From a Reactor callback: uv_run(UV_RUN_DEFAULT) returns after that iteration.
  int after_stop = 0;
  Timer t = loop.after(20ms, [&] { loop.stop(); });
  const auto start = Clock::now();
  uv_run(&loop_, UV_RUN_DEFAULT);
  EXPECT_LT(Clock::now() - start, 2s);
  EXPECT_FALSE(t.active());
  const int ticks = ticks_;
  EXPECT_GE(ticks, 1) << "the program's timer ran while the Reactor's was pending";
  // From another thread, while uv_run blocks.
  std::thread stopper([&] {
    std::this_thread::sleep_for(30ms);
    loop.stop();
  });
  uv_run(&loop_, UV_RUN_DEFAULT);
  stopper.join();
  EXPECT_GT(ticks_, ticks) << "uv_run returned before the stop";
  // Requested while nobody runs the loop: the next uv_run returns after one iteration.
  uv_timer_stop(&timer_);
  Timer never = loop.after(1h, [&] { ++after_stop; });
  loop.stop();
  const auto again = Clock::now();
  uv_run(&loop_, UV_RUN_DEFAULT);
  EXPECT_LT(Clock::now() - again, 1s);
  EXPECT_EQ(after_stop, 0);
  // The stop was used up: a later one is needed to end the next run.
  bool later = false;
  Timer t2 = loop.after(10ms, [&] {
    later = true;
    loop.stop();
  });
  uv_run(&loop_, UV_RUN_DEFAULT);
  EXPECT_TRUE(later);
}

TEST_F(UvEmbedTest, ReactorRunDrivesTheProgramsHandles) {
  Reactor loop(&loop_);
  start_uv_timer(5);
  // A plain libuv poll handle of the program's, on a socket the Reactor does not watch.
  SocketPair pair;
  uv_poll_t poll{};
  ASSERT_EQ(uv_poll_init(&loop_, &poll, pair.a.get()), 0);
  bool polled = false;
  poll.data = &polled;
  uv_poll_start(&poll, UV_READABLE,
                [](uv_poll_t* h, int, int) { *static_cast<bool*>(h->data) = true; });
  const char c = 'x';
  ASSERT_EQ(::write(pair.b.get(), &c, 1), 1);
  bool posted = false;
  loop.post([&] { posted = true; });
  Timer t = loop.after(100ms, [&] { loop.stop(); });
  const auto start = Clock::now();
  loop.run();
  EXPECT_LT(Clock::now() - start, 3s);
  EXPECT_TRUE(posted);
  EXPECT_TRUE(polled) << "the program's uv_poll_t";
  EXPECT_GE(ticks_, 5) << "the program's uv_timer_t";
  uv_poll_stop(&poll);
  uv_close(reinterpret_cast<uv_handle_t*>(&poll), nullptr);
  // The program's uv_stop() ends only the wait it interrupts: run() goes on until stop().
  uv_timer_t stopper{};
  uv_timer_init(&loop_, &stopper);
  bool uv_stopped = false;
  stopper.data = &uv_stopped;
  uv_timer_start(
      &stopper,
      [](uv_timer_t* h) {
        *static_cast<bool*>(h->data) = true;
        uv_stop(h->loop);
      },
      10, 0);
  const auto again = Clock::now();
  Timer t2 = loop.after(80ms, [&] { loop.stop(); });
  loop.run();
  EXPECT_TRUE(uv_stopped);
  EXPECT_GE(Clock::now() - again, 80ms) << "uv_stop() ended Reactor::run()";
  uv_close(reinterpret_cast<uv_handle_t*>(&stopper), nullptr);
  loop.run_once(0ms);  // the close callbacks
}

TEST_F(UvEmbedTest, DestroyingTheReactorClosesOnlyItsOwnHandles) {
  start_uv_timer(5);
  SocketPair pair;
  {
    std::optional<Reactor> loop;
    loop.emplace(&loop_);
    int reads = 0;
    IoWatcher w = loop->watch(pair.a.get(), Interest::read, [&](IoEvents) {
      char c;
      while (::read(pair.a.get(), &c, 1) == 1) ++reads;
    });
    Timer t = loop->every(1ms, [] {});
    Timer pending = loop->after(1h, [] {});
    loop->post([] {});
    const char c = 'x';
    ASSERT_EQ(::write(pair.b.get(), &c, 1), 1);
    EXPECT_TRUE(uv_run_until([&] { return reads > 0; }));
    // Destroyed with live handles, from inside the program's loop (a plain timer callback).
    struct Ctx {
      std::optional<Reactor>* loop;
      bool done = false;
    } ctx{&loop};
    uv_timer_t once{};
    uv_timer_init(&loop_, &once);
    once.data = &ctx;
    uv_timer_start(
        &once,
        [](uv_timer_t* h) {
          auto* ctx = static_cast<Ctx*>(h->data);
          ctx->loop->reset();
          ctx->done = true;
        },
        1, 0);
    EXPECT_TRUE(uv_run_until([&] { return ctx.done; }));
    EXPECT_FALSE(w.active());
    EXPECT_FALSE(t.active());
    uv_close(reinterpret_cast<uv_handle_t*>(&once), nullptr);
  }
  // The program's loop goes on: its timer still runs.
  const int ticks = ticks_;
  EXPECT_TRUE(uv_run_until([&] { return ticks_ >= ticks + 3; }));
  // Nothing of the Reactor's keeps the loop alive once the program's timer is closed.
  uv_close(reinterpret_cast<uv_handle_t*>(&timer_), nullptr);
  EXPECT_EQ(uv_run(&loop_, UV_RUN_DEFAULT), 0) << "uv_run(DEFAULT) did not end";
  // TearDown checks that uv_loop_close() succeeds and that no fd leaked.
}

TEST_F(UvEmbedTest, NullLoopIsRefused) {
  EXPECT_THROW(Reactor(static_cast<uv_loop_t*>(nullptr)), std::invalid_argument);
}

}  // namespace
