// SPDX-License-Identifier: MIT
// Close and reuse the number, many ready and one stops the rest, no junk after close with
// a duplicated descriptor.
#include <fcntl.h>
#include <unistd.h>

#include <chrono>
#include <cstddef>
#include <numeric>
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
using reactor::test::run_for;
using reactor::test::run_until;
using reactor::test::send_all;
using reactor::test::SocketPair;
using reactor::test::write_byte;

class FdReuseTest : public reactor::test::BackendTest {
 protected:
  void SetUp() override { reactor::test::warm_up(backend()); }
};

// ---------------------------------------------------------------------------------------
// Close and reuse: close both ends of a watched socketpair, dup2 a fresh pair onto the same
// numbers, unwatch, watch the new pair: the new pair gets exactly its own events.

TEST_P(FdReuseTest, CloseAndReuseNumberGetsOnlyNewEvents) {
  FdLeakCheck leaks;
  Reactor loop(backend());
  SocketPair fresh;  // made first, so that its numbers differ from the old pair's
  SocketPair old_pair;
  const int x = old_pair.a.get();
  const int y = old_pair.b.get();
  int old_calls = 0;
  IoWatcher wx = loop.watch(x, Interest::read, [&](IoEvents) { ++old_calls; });
  IoWatcher wy = loop.watch(y, Interest::read, [&](IoEvents) { ++old_calls; });
  // Both old ends readable, so the kernel has events pending for them when they close.
  ASSERT_TRUE(write_byte(x));
  ASSERT_TRUE(write_byte(y));
  loop.run_once(100ms);
  ASSERT_EQ(old_calls, 2);

  // Close both ends behind the reactor's back; the fresh pair takes over the numbers.
  ASSERT_EQ(::close(old_pair.a.release()), 0);
  ASSERT_EQ(::close(old_pair.b.release()), 0);
  ASSERT_EQ(::dup2(fresh.a.get(), x), x);
  Fd new_x(x);
  ASSERT_EQ(::dup2(fresh.b.get(), y), y);
  Fd new_y(y);
  fresh.a.reset();
  fresh.b.reset();

  // Now unwatch the old registrations and watch the new pair.
  wx.stop();
  wy.stop();
  EXPECT_EQ(loop.watcher_count(), 0u);
  int x_calls = 0;
  int y_calls = 0;
  std::string got_x, got_y;
  std::error_code ec;
  IoWatcher nx = loop.watch(
      x, Interest::read,
      [&](IoEvents) {
        ++x_calls;
        got_x += drain(x);
      },
      ec);
  ASSERT_FALSE(ec) << "watching the reused number " << x << ": " << ec.message();
  IoWatcher ny = loop.watch(
      y, Interest::read,
      [&](IoEvents) {
        ++y_calls;
        got_y += drain(y);
      },
      ec);
  ASSERT_FALSE(ec) << "watching the reused number " << y << ": " << ec.message();

  // The new pair has nothing to read: no event at all.
  for (int i = 0; i < 3; ++i) loop.run_once(0ms);
  loop.run_once(50ms);
  EXPECT_EQ(x_calls, 0) << "the new x got an event that belongs to the old socket";
  EXPECT_EQ(y_calls, 0) << "the new y got an event that belongs to the old socket";

  ASSERT_TRUE(send_all(y, "ping"));
  EXPECT_TRUE(run_until(
      loop, [&] { return x_calls > 0; }, 1s, 100ms));
  for (int i = 0; i < 2; ++i) loop.run_once(0ms);
  EXPECT_EQ(x_calls, 1);
  EXPECT_EQ(got_x, "ping");
  EXPECT_EQ(y_calls, 0);

  ASSERT_TRUE(send_all(x, "pong"));
  EXPECT_TRUE(run_until(
      loop, [&] { return y_calls > 0; }, 1s, 100ms));
  for (int i = 0; i < 2; ++i) loop.run_once(0ms);
  EXPECT_EQ(y_calls, 1);
  EXPECT_EQ(got_y, "pong");
  EXPECT_EQ(x_calls, 1);
  EXPECT_EQ(old_calls, 2) << "an old handler ran after its fd was closed and unwatched";
}

// The same within one batch: two fds are ready; whichever callback runs first stops and
// closes the other, puts a fresh socket on its number and watches that. The other's event,
// still in the batch, must reach neither the old handler nor the new one.
TEST_P(FdReuseTest, NumberReusedInsideBatchGetsNoStaleEvent) {
  FdLeakCheck leaks;
  Reactor loop(backend());
  SocketPair fresh;
  SocketPair p[2];
  IoWatcher w[2];
  int calls[2] = {0, 0};
  int first = -1;
  int victim = -1;  // the number closed and reused inside the callback
  Fd reused;
  IoWatcher wn;
  std::error_code rewatch_error;
  int new_calls = 0;
  int new_junk = 0;  // called as readable with nothing to read
  for (int i = 0; i < 2; ++i) {
    ASSERT_TRUE(write_byte(p[i].b.get()));
    w[i] = loop.watch(p[i].a.get(), Interest::read, [&, i](IoEvents) {
      ++calls[i];
      if (first >= 0) return;
      first = i;
      const int num = p[1 - i].a.get();
      victim = num;
      w[1 - i].stop();
      p[1 - i].a.reset();
      reused.reset(::dup2(fresh.a.get(), num));
      wn = loop.watch(
          num, Interest::read,
          [&, num](IoEvents ev) {
            ++new_calls;
            char c;
            if (ev.readable() && ::read(num, &c, 1) != 1) ++new_junk;
          },
          rewatch_error);
    });
  }
  loop.run_once(100ms);
  ASSERT_GE(first, 0);
  ASSERT_FALSE(rewatch_error) << rewatch_error.message();
  EXPECT_EQ(reused.get(), victim);
  EXPECT_EQ(calls[first], 1);
  EXPECT_EQ(calls[1 - first], 0) << "a stopped watcher got its event from the same batch";
  EXPECT_EQ(new_calls, 0) << "the new watcher on the reused number got the old event";

  for (int i = 0; i < 2; ++i) loop.run_once(0ms);
  EXPECT_EQ(new_calls, 0) << "the new (empty) socket was reported";
  ASSERT_TRUE(write_byte(fresh.b.get()));
  EXPECT_TRUE(run_until(
      loop, [&] { return new_calls > 0; }, 1s, 100ms));
  EXPECT_EQ(new_calls, 1);
  EXPECT_EQ(new_junk, 0);
  EXPECT_EQ(calls[1 - first], 0);
}

// ---------------------------------------------------------------------------------------
// Many ready: 1,000+ sockets ready in one wait; the first callback stops all the others: none of
// them is called. Twice in one loop, the second time with more fds, so the slot table and
// the event array have to grow.

constexpr std::size_t kManyFirst = 1100;
constexpr std::size_t kManySecond = 1600;
constexpr rlim_t kManyFdsNeeded = 2 * kManySecond + 64;

void first_stops_the_rest(Reactor& loop, std::size_t n) {
  std::vector<SocketPair> pairs(n);
  std::vector<IoWatcher> watchers(n);
  std::vector<int> calls(n, 0);
  std::size_t first = n;
  for (std::size_t i = 0; i < n; ++i) {
    ASSERT_TRUE(write_byte(pairs[i].b.get()));
    watchers[i] = loop.watch(pairs[i].a.get(), Interest::read, [&, i](IoEvents) {
      ++calls[i];
      if (first != n) return;
      first = i;
      for (std::size_t j = 0; j < n; ++j) {
        if (j != i) watchers[j].stop();
      }
    });
  }
  ASSERT_EQ(loop.watcher_count(), n);
  loop.run_once(2s);
  ASSERT_LT(first, n) << "nothing was called";
  EXPECT_EQ(std::accumulate(calls.begin(), calls.end(), 0), 1)
      << "stopped watchers were called later in the batch (n = " << n << ")";
  EXPECT_EQ(calls[first], 1);
  EXPECT_EQ(loop.watcher_count(), 1u);

  // The survivor is still level-triggered; the others stay silent.
  loop.run_once(2s);
  EXPECT_EQ(calls[first], 2);
  EXPECT_EQ(std::accumulate(calls.begin(), calls.end(), 0), 2);
  watchers.clear();
  EXPECT_EQ(loop.watcher_count(), 0u);
}

TEST_P(FdReuseTest, ManyReadyFirstStopsTheRest) {
  reactor::test::ScopedFdLimit fd_limit;
  if (!fd_limit.raise_to_hard(kManyFdsNeeded)) GTEST_SKIP() << "RLIMIT_NOFILE too low";
  FdLeakCheck leaks;
  Reactor loop(backend());
  first_stops_the_rest(loop, kManyFirst);
  if (HasFatalFailure()) return;
  first_stops_the_rest(loop, kManySecond);
}

// The same sizes without stopping: every ready fd is delivered exactly once in one
// iteration, so nothing ready is left out of a batch however large.
TEST_P(FdReuseTest, ManyReadyAllDeliveredInOneIteration) {
  reactor::test::ScopedFdLimit fd_limit;
  if (!fd_limit.raise_to_hard(kManyFdsNeeded)) GTEST_SKIP() << "RLIMIT_NOFILE too low";
  FdLeakCheck leaks;
  Reactor loop(backend());
  for (std::size_t n : {kManyFirst, kManySecond}) {
    std::vector<SocketPair> pairs(n);
    std::vector<IoWatcher> watchers(n);
    std::vector<int> calls(n, 0);
    for (std::size_t i = 0; i < n; ++i) {
      ASSERT_TRUE(write_byte(pairs[i].b.get()));
      watchers[i] = loop.watch(pairs[i].a.get(), Interest::read, [&, i](IoEvents) { ++calls[i]; });
    }
    const std::size_t ran = loop.run_once(2s);
    std::size_t once = 0;
    for (int c : calls) once += c == 1 ? 1 : 0;
    EXPECT_EQ(once, n) << "not every ready fd was delivered exactly once in one iteration";
    EXPECT_EQ(ran, n);
  }
}

// ---------------------------------------------------------------------------------------
// A duplicated descriptor: the watched fd is also open elsewhere (dup). The peer writes; the
// reactor unwatches and the fd is closed; the peer writes again. No callback after the close, and
// the idle loop does not spin (<= 20 iterations a second). epoll keeps a registration alive while
// any duplicate of the file is open, so unwatching must deregister before the close.

TEST_P(FdReuseTest, DuplicatedFdClosedAfterUnwatchIsSilent) {
  FdLeakCheck leaks;
  Reactor loop(backend());
  SocketPair p;
  Fd dupe(::dup(p.a.get()));
  ASSERT_GE(dupe.get(), 0);
  int calls = 0;
  bool closed = false;
  int calls_after_close = 0;
  IoWatcher w = loop.watch(p.a.get(), Interest::read, [&](IoEvents) {
    ++calls;
    if (closed) ++calls_after_close;
  });
  ASSERT_TRUE(write_byte(p.b.get()));
  EXPECT_TRUE(run_until(
      loop, [&] { return calls > 0; }, 1s, 100ms));  // data left unread

  w.stop();
  p.a.reset();
  closed = true;
  ASSERT_TRUE(write_byte(p.b.get()));

  const auto stats = run_for(loop, 1000ms, 100ms);
  EXPECT_EQ(calls_after_close, 0);
  EXPECT_LE(stats.iterations, 20u) << "the idle loop spins after unwatch+close with a dup open ("
                                   << stats.calls << " run_once calls in ~1 s)";
  EXPECT_GE(stats.calls, 1u);
  EXPECT_EQ(loop.watcher_count(), 0u);
  EXPECT_EQ(drain(dupe.get()), "xx") << "the data is still there for the duplicate";
}

// The same with the unwatch and close done by the watcher's own callback.
TEST_P(FdReuseTest, DuplicatedFdClosedInOwnCallbackIsSilent) {
  FdLeakCheck leaks;
  Reactor loop(backend());
  SocketPair p;
  Fd dupe(::dup(p.a.get()));
  ASSERT_GE(dupe.get(), 0);
  int calls = 0;
  IoWatcher w;
  w = loop.watch(p.a.get(), Interest::read, [&](IoEvents) {
    ++calls;
    w.stop();
    p.a.reset();
  });
  ASSERT_TRUE(write_byte(p.b.get()));
  EXPECT_TRUE(run_until(
      loop, [&] { return calls > 0; }, 1s, 100ms));
  ASSERT_EQ(calls, 1);
  ASSERT_TRUE(write_byte(p.b.get()));

  const auto stats = run_for(loop, 1000ms, 100ms);
  EXPECT_EQ(calls, 1) << "callback after the fd was unwatched and closed";
  EXPECT_LE(stats.iterations, 20u) << "the idle loop spins after unwatch+close with a dup open ("
                                   << stats.calls << " run_once calls in ~1 s)";
  EXPECT_GE(stats.calls, 1u);
  EXPECT_EQ(drain(dupe.get()), "xx");
}

REACTOR_INSTANTIATE_ALL_BACKENDS(FdReuseTest);

}  // namespace
