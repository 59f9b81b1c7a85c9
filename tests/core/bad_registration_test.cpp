// SPDX-License-Identifier: MIT
// Bad registrations, an fd closed behind the reactor's back then modified, and an fd closed
// behind the reactor's back (one notification or one error, never a spin).
#include <fcntl.h>
#include <unistd.h>

#include <chrono>
#include <climits>
#include <cstdio>
#include <memory>
#include <string>
#include <system_error>

#include "reactor/core/reactor.hpp"
#include "tests/support/backends.hpp"
#include "tests/support/errors.hpp"
#include "tests/support/fds.hpp"
#include "tests/support/io.hpp"
#include "tests/support/loop.hpp"

namespace {

using namespace std::chrono_literals;
using namespace reactor::test;
using reactor::Interest;
using reactor::IoEvents;
using reactor::IoHandler;
using reactor::IoWatcher;
using reactor::Reactor;
using reactor::test::Fd;
using reactor::test::FdLeakCheck;
using reactor::test::IsErrc;
using reactor::test::run_for;
using reactor::test::SocketPair;
using reactor::test::Tally;
using reactor::test::ThrowsErrc;
using reactor::test::write_byte;

class BadRegistrationTest : public reactor::test::BackendTest {
 protected:
  void SetUp() override { reactor::test::warm_up(backend()); }
};

bool is_open(int fd) { return ::fcntl(fd, F_GETFD) != -1; }

/// Expects both forms of watch() to refuse `fd` with `expected`, leaving the registry as it
/// was and returning an empty watcher.
void expect_refused(Reactor& loop, int fd, Interest interest, std::errc expected) {
  const std::size_t before = loop.watcher_count();
  int calls = 0;
  std::error_code ec = std::make_error_code(std::errc::io_error);  // must be overwritten
  IoWatcher w = loop.watch(
      fd, interest, [&](IoEvents) { ++calls; }, ec);
  EXPECT_TRUE(IsErrc(ec, expected)) << "error_code form, fd " << fd;
  EXPECT_FALSE(w.active()) << "fd " << fd;
  EXPECT_EQ(w.fd(), -1) << "a refused watch must return an empty watcher";
  EXPECT_EQ(loop.watcher_count(), before) << "fd " << fd;
  EXPECT_TRUE(
      ThrowsErrc([&] { (void)loop.watch(fd, interest, [&](IoEvents) { ++calls; }); }, expected))
      << "throwing form, fd " << fd;
  EXPECT_EQ(loop.watcher_count(), before) << "fd " << fd;
  loop.run_once(0ms);
  EXPECT_EQ(calls, 0);
}

// ---------------------------------------------------------------------------------------
// Bad registrations

TEST_P(BadRegistrationTest, NegativeFdIsInvalidArgument) {
  FdLeakCheck leaks;
  Reactor loop(backend());
  for (int fd : {-1, -2, INT_MIN})
    expect_refused(loop, fd, Interest::read, std::errc::invalid_argument);
  EXPECT_EQ(loop.watcher_count(), 0u);
}

TEST_P(BadRegistrationTest, ClosedFdIsBadDescriptor) {
  FdLeakCheck leaks;
  Reactor loop(backend());
  int closed_fd = -1;
  {
    SocketPair p;
    closed_fd = p.a.get();
  }
  ASSERT_FALSE(is_open(closed_fd));
  expect_refused(loop, closed_fd, Interest::read, std::errc::bad_file_descriptor);
  expect_refused(loop, closed_fd, Interest::write, std::errc::bad_file_descriptor);
  // A number far above anything open (and above FD_SETSIZE).
  const int never_opened = 9999;
  ASSERT_FALSE(is_open(never_opened));
  expect_refused(loop, never_opened, Interest::read, std::errc::bad_file_descriptor);

  // The failed number holds no registration: a socket that gets it can be watched.
  SocketPair p;
  Tally t;
  std::error_code ec;
  IoWatcher w = loop.watch(p.a.get(), Interest::read, t.handler(), ec);
  ASSERT_FALSE(ec) << ec.message() << " (fd " << p.a.get() << ", closed one was " << closed_fd
                   << ")";
  ASSERT_TRUE(write_byte(p.b.get()));
  loop.run_once(100ms);
  EXPECT_EQ(t.readable, 1);
}

TEST_P(BadRegistrationTest, RegularFileIsNotPermitted) {
  FdLeakCheck leaks;
  Reactor loop(backend());
  std::unique_ptr<FILE, int (*)(FILE*)> file(std::tmpfile(), &std::fclose);
  ASSERT_NE(file, nullptr);
  const int fd = ::fileno(file.get());
  expect_refused(loop, fd, Interest::read, std::errc::operation_not_permitted);
  expect_refused(loop, fd, Interest::write, std::errc::operation_not_permitted);
  expect_refused(loop, fd, Interest::none, std::errc::operation_not_permitted);
}

TEST_P(BadRegistrationTest, DirectoryIsNotPermitted) {
  FdLeakCheck leaks;
  Reactor loop(backend());
  Fd dir(::open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  ASSERT_GE(dir.get(), 0);
  expect_refused(loop, dir.get(), Interest::read, std::errc::operation_not_permitted);
}

TEST_P(BadRegistrationTest, SameFdTwiceExistsAndOriginalKeepsWorking) {
  FdLeakCheck leaks;
  Reactor loop(backend());
  SocketPair p;
  ASSERT_TRUE(write_byte(p.b.get()));  // readable and writable
  Tally first, second;
  IoWatcher w1 = loop.watch(p.a.get(), Interest::read, first.handler());
  ASSERT_EQ(loop.watcher_count(), 1u);

  std::error_code ec;
  {
    IoWatcher w2 = loop.watch(p.a.get(), Interest::write, second.handler(), ec);
    EXPECT_TRUE(IsErrc(ec, std::errc::file_exists));
    EXPECT_FALSE(w2.active());
    EXPECT_TRUE(
        ThrowsErrc([&] { (void)loop.watch(p.a.get(), Interest::read_write, second.handler()); },
                   std::errc::file_exists));
  }  // destroying the refused handles must not unwatch the original
  EXPECT_EQ(loop.watcher_count(), 1u);
  EXPECT_TRUE(w1.active());
  EXPECT_EQ(w1.interest(), Interest::read) << "the refused watch changed the interest";

  for (int i = 0; i < 3; ++i) loop.run_once(100ms);
  EXPECT_EQ(first.calls, 3);
  EXPECT_EQ(first.readable, 3);
  EXPECT_EQ(first.writable, 0) << "the refused watch's write interest leaked in";
  EXPECT_EQ(second.calls, 0);

  // Once the original stops, the fd can be watched again.
  w1.stop();
  IoWatcher w3 = loop.watch(p.a.get(), Interest::read, second.handler(), ec);
  ASSERT_FALSE(ec) << ec.message();
  loop.run_once(100ms);
  EXPECT_EQ(second.calls, 1);
  EXPECT_EQ(first.calls, 3);
}

TEST_P(BadRegistrationTest, FailuresLeaveOtherWatchersServed) {
  FdLeakCheck leaks;
  Reactor loop(backend());
  SocketPair live;
  ASSERT_TRUE(write_byte(live.b.get()));
  Tally t;
  IoWatcher w = loop.watch(live.a.get(), Interest::read, t.handler());

  std::unique_ptr<FILE, int (*)(FILE*)> file(std::tmpfile(), &std::fclose);
  ASSERT_NE(file, nullptr);
  int closed_fd = -1;
  {
    SocketPair gone;
    closed_fd = gone.b.get();
  }
  for (int round = 0; round < 3; ++round) {
    std::error_code ec;
    (void)loop.watch(-1, Interest::read, t.handler(), ec);
    EXPECT_TRUE(IsErrc(ec, std::errc::invalid_argument));
    (void)loop.watch(closed_fd, Interest::read, t.handler(), ec);
    EXPECT_TRUE(IsErrc(ec, std::errc::bad_file_descriptor));
    (void)loop.watch(::fileno(file.get()), Interest::read, t.handler(), ec);
    EXPECT_TRUE(IsErrc(ec, std::errc::operation_not_permitted));
    (void)loop.watch(live.a.get(), Interest::read, t.handler(), ec);
    EXPECT_TRUE(IsErrc(ec, std::errc::file_exists));
    (void)loop.watch(live.b.get(), Interest::read, IoHandler{}, ec);
    EXPECT_TRUE(IsErrc(ec, std::errc::invalid_argument));
    EXPECT_EQ(loop.watcher_count(), 1u);
    loop.run_once(100ms);
    EXPECT_EQ(t.calls, round + 1) << "the live watcher was not served after failures";
  }
  EXPECT_EQ(t.readable, 3);
}

TEST_P(BadRegistrationTest, SuccessClearsErrorCode) {
  FdLeakCheck leaks;
  Reactor loop(backend());
  SocketPair p;
  std::error_code ec = std::make_error_code(std::errc::io_error);
  IoWatcher w = loop.watch(
      p.a.get(), Interest::read, [](IoEvents) {}, ec);
  EXPECT_FALSE(ec) << ec.message();
  EXPECT_TRUE(w.active());
  EXPECT_EQ(w.fd(), p.a.get());
}

// ---------------------------------------------------------------------------------------
// Closed behind its back, then modified: close() behind the reactor's back, then change the
// interest and run. Either the change is refused (EBADF) or the watcher is reported dead
// (IoEvents::invalid, once); another fd keeps being served in the same loop.

TEST_P(BadRegistrationTest, ClosedBehindBackThenModified) {
  FdLeakCheck leaks;
  Reactor loop(backend());
  SocketPair dead, live;
  ASSERT_TRUE(write_byte(live.b.get()));
  Tally d, l;
  IoWatcher wd = loop.watch(dead.a.get(), Interest::read, d.handler());
  IoWatcher wl = loop.watch(live.a.get(), Interest::read, l.handler());
  loop.run_once(100ms);
  ASSERT_EQ(l.calls, 1);
  ASSERT_EQ(d.calls, 0);

  ASSERT_EQ(::close(dead.a.release()), 0);
  const std::error_code ec = wd.set_interest(Interest::read_write);
  constexpr int kIterations = 10;
  for (int i = 0; i < kIterations; ++i) loop.run_once(50ms);  // `live` is always ready

  EXPECT_EQ(l.calls, 1 + kIterations) << "the other fd was not served every iteration";
  EXPECT_LE(d.calls, 1) << "the closed fd was reported more than once";
  EXPECT_EQ(d.invalid, d.calls) << "the closed fd was reported as something but invalid";
  if (ec) {
    EXPECT_TRUE(IsErrc(ec, std::errc::bad_file_descriptor));
  } else {
    EXPECT_EQ(d.invalid, 1) << "set_interest succeeded and no invalid notification came";
  }
  if (d.invalid == 1) {
    EXPECT_FALSE(wd.active()) << "reported invalid but still active";
    EXPECT_EQ(loop.watcher_count(), 1u);
  }
  wd.stop();  // safe whatever happened
  EXPECT_FALSE(wd.active());
  EXPECT_EQ(loop.watcher_count(), 1u);
  loop.run_once(50ms);
  EXPECT_EQ(l.calls, 2 + kIterations);
}

// ---------------------------------------------------------------------------------------
// Closed behind its back: a watched fd closed behind the reactor's back is reported at most once
// (select: EBADF, poll: POLLNVAL; epoll and libuv never see it), and the loop never spins on it.

TEST_P(BadRegistrationTest, ClosedBehindBackReportedAtMostOnce) {
  FdLeakCheck leaks;
  Reactor loop(backend());
  SocketPair p;
  Tally t;
  IoWatcher w = loop.watch(p.a.get(), Interest::read, t.handler());
  loop.run_once(0ms);
  ASSERT_EQ(t.calls, 0);

  ASSERT_EQ(::close(p.a.release()), 0);
  const auto stats = run_for(loop, 300ms, 50ms);
  EXPECT_LE(stats.iterations, 12u)
      << "the loop spins on a closed fd (" << stats.calls << " run_once calls in ~300 ms)";
  EXPECT_EQ(t.invalid, t.calls) << "the closed fd was reported as something but invalid";
  const std::string& name = backend();
  if (name == "select" || name == "poll") {
    EXPECT_EQ(t.calls, 1) << name << " can see a closed fd: exactly one notification";
    EXPECT_EQ(t.invalid, 1);
    EXPECT_FALSE(w.active()) << "reported invalid but still active";
    EXPECT_EQ(loop.watcher_count(), 0u);
  } else if (name == "epoll" || name == "uv") {
    EXPECT_EQ(t.calls, 0) << name << " drops a closed fd silently";
  } else {
    EXPECT_LE(t.calls, 1);
  }
  w.stop();
  EXPECT_FALSE(w.active());
  EXPECT_EQ(loop.watcher_count(), 0u);
}

// Write interest on an fd that was ready every iteration until it was closed.
TEST_P(BadRegistrationTest, ClosedBehindBackWhileWritableReportedAtMostOnce) {
  FdLeakCheck leaks;
  Reactor loop(backend());
  SocketPair p, live;
  Tally t, l;
  IoWatcher w = loop.watch(p.a.get(), Interest::write, t.handler());
  IoWatcher wl = loop.watch(live.a.get(), Interest::read, l.handler());
  for (int i = 0; i < 2; ++i) loop.run_once(100ms);
  ASSERT_EQ(t.calls, 2);
  ASSERT_EQ(t.writable, 2);

  ASSERT_EQ(::close(p.a.release()), 0);
  const auto stats = run_for(loop, 300ms, 50ms);
  EXPECT_LE(stats.iterations, 12u)
      << "the loop spins on a closed fd (" << stats.calls << " run_once calls in ~300 ms)";
  const int after_close = t.calls - 2;
  EXPECT_LE(after_close, 1) << "the closed fd was reported more than once";
  EXPECT_EQ(t.invalid, after_close) << "the closed fd was reported as something but invalid";
  if (backend() == "select" || backend() == "poll") {
    EXPECT_EQ(t.invalid, 1);
  }
  if (backend() == "epoll" || backend() == "uv") {
    EXPECT_EQ(after_close, 0);
  }

  // The other fd is served as usual.
  ASSERT_TRUE(write_byte(live.b.get()));
  for (int i = 0; i < 3; ++i) loop.run_once(100ms);
  EXPECT_EQ(l.calls, 3);
  EXPECT_EQ(t.calls, 2 + after_close);
}

TEST_P(BadRegistrationTest, ClosedBehindBackWhilePausedDoesNotSpin) {
  FdLeakCheck leaks;
  Reactor loop(backend());
  SocketPair p;
  Tally t;
  IoWatcher w = loop.watch(p.a.get(), Interest::none, t.handler());
  ASSERT_EQ(::close(p.a.release()), 0);
  const auto stats = run_for(loop, 300ms, 50ms);
  EXPECT_LE(stats.iterations, 12u) << "the loop spins on a closed, paused fd";
  EXPECT_LE(t.calls, 1);
  EXPECT_EQ(t.invalid, t.calls);
  w.stop();
  EXPECT_EQ(loop.watcher_count(), 0u);
}

REACTOR_INSTANTIATE_ALL_BACKENDS(BadRegistrationTest);

}  // namespace
