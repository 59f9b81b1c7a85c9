// SPDX-License-Identifier: MIT
// An exception thrown by a callback propagates out of run_once()/run(), and the loop stays
// usable: the watcher that threw keeps its handler, later posted tasks still run once, and a
// repeating timer keeps repeating.
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <stdexcept>
#include <vector>

#include "reactor/core/reactor.hpp"
#include "tests/support/backends.hpp"
#include "tests/support/fds.hpp"

namespace {

using namespace std::chrono_literals;
using reactor::Interest;
using reactor::IoEvents;
using reactor::Reactor;
using reactor::test::FdLeakCheck;
using reactor::test::SocketPair;

class ExceptionTest : public reactor::test::BackendTest {};

TEST_P(ExceptionTest, ThrowingWatcherKeepsItsHandler) {
  FdLeakCheck leaks;
  Reactor loop(backend());
  SocketPair p;
  ASSERT_EQ(::write(p.b.get(), "x", 1), 1);
  int calls = 0;
  reactor::IoWatcher w = loop.watch(p.a.get(), Interest::read, [&](IoEvents) {
    if (++calls == 1) throw std::runtime_error("first call throws");
    char c;
    ASSERT_EQ(::read(p.a.get(), &c, 1), 1);
  });
  EXPECT_THROW(loop.run_once(100ms), std::runtime_error);
  EXPECT_TRUE(w.active());
  loop.run_once(100ms);  // level-triggered: still readable, and the handler is still there
  EXPECT_EQ(calls, 2);
  loop.run_once(0ms);  // drained: nothing more
  EXPECT_EQ(calls, 2);
}

TEST_P(ExceptionTest, TasksAfterAThrowingTaskStillRunOnceInOrder) {
  FdLeakCheck leaks;
  Reactor loop(backend());
  std::vector<int> ran;
  loop.post([&] { ran.push_back(1); });
  loop.post([&] { throw std::runtime_error("task 2 throws"); });
  loop.post([&] { ran.push_back(3); });
  loop.post([&] { ran.push_back(4); });
  EXPECT_THROW(loop.run_once(100ms), std::runtime_error);
  EXPECT_EQ(ran, (std::vector<int>{1}));
  loop.run_once(100ms);
  EXPECT_EQ(ran, (std::vector<int>{1, 3, 4}));
  loop.run_once(0ms);
  EXPECT_EQ(ran, (std::vector<int>{1, 3, 4}));
}

TEST_P(ExceptionTest, ThrowingRepeatingTimerKeepsRepeating) {
  FdLeakCheck leaks;
  Reactor loop(backend());
  int fired = 0;
  reactor::Timer t = loop.every(1ms, [&] {
    if (++fired == 1) throw std::runtime_error("first tick throws");
  });
  EXPECT_THROW(
      {
        for (int i = 0; i < 100 && fired == 0; ++i) loop.run_once(50ms);
      },
      std::runtime_error);
  EXPECT_TRUE(t.active());
  for (int i = 0; i < 100 && fired < 3; ++i) loop.run_once(50ms);
  EXPECT_GE(fired, 3);
}

TEST_P(ExceptionTest, ThrowFromRunLeavesTheLoopRunnable) {
  FdLeakCheck leaks;
  Reactor loop(backend());
  loop.post([] { throw std::runtime_error("out of run()"); });
  EXPECT_THROW(loop.run(), std::runtime_error);
  bool ran = false;
  loop.post([&] {
    ran = true;
    loop.stop();
  });
  loop.run();
  EXPECT_TRUE(ran);
}

REACTOR_INSTANTIATE_ALL_BACKENDS(ExceptionTest);

}  // namespace
