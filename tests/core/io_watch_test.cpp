// SPDX-License-Identifier: MIT
// The I/O watcher contract of reactor.hpp / io_watcher.hpp / backend.hpp, clause by clause,
// on every backend: level triggering, what each Interest delivers, Interest::none, stopping
// and destroying watchers from callbacks, no callback from inside a call into the library,
// peer close, a full socket, moved-from and orphaned watchers, an empty handler.
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <system_error>
#include <utility>

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
using reactor::test::drain;
using reactor::test::FdLeakCheck;
using reactor::test::IsErrc;
using reactor::test::run_for;
using reactor::test::run_until;
using reactor::test::send_all;
using reactor::test::SocketPair;
using reactor::test::Tally;
using reactor::test::ThrowsErrc;
using reactor::test::write_byte;

class IoWatchTest : public reactor::test::BackendTest {
 protected:
  void SetUp() override { reactor::test::warm_up(backend()); }
};

// ---------------------------------------------------------------------------------------
// Level triggering

TEST_P(IoWatchTest, UnreadDataIsReportedEveryIteration) {
  FdLeakCheck leaks;
  Reactor loop(backend());
  SocketPair p;
  ASSERT_TRUE(write_byte(p.b.get()));
  Tally t;
  IoWatcher w = loop.watch(p.a.get(), Interest::read, t.handler());
  for (int i = 0; i < 5; ++i) loop.run_once(100ms);
  EXPECT_EQ(t.calls, 5);
  EXPECT_EQ(t.readable, 5);
  EXPECT_EQ(t.writable, 0);
}

TEST_P(IoWatchTest, PartialReadsAreReportedUntilDrained) {
  FdLeakCheck leaks;
  Reactor loop(backend());
  SocketPair p;
  ASSERT_TRUE(send_all(p.b.get(), "0123456789"));
  int calls = 0;
  std::string got;
  IoWatcher w = loop.watch(p.a.get(), Interest::read, [&](IoEvents ev) {
    ++calls;
    char c;
    if (ev.readable() && ::read(p.a.get(), &c, 1) == 1) got += c;  // one byte per callback
  });
  for (int i = 0; i < 20; ++i) loop.run_once(0ms);
  EXPECT_EQ(got, "0123456789");
  EXPECT_EQ(calls, 10) << "one callback per byte, then silence once drained";
}

TEST_P(IoWatchTest, WritableIsReportedEveryIteration) {
  FdLeakCheck leaks;
  Reactor loop(backend());
  SocketPair p;
  Tally t;
  IoWatcher w = loop.watch(p.a.get(), Interest::write, t.handler());
  for (int i = 0; i < 5; ++i) loop.run_once(100ms);
  EXPECT_EQ(t.calls, 5);
  EXPECT_EQ(t.writable, 5);
  EXPECT_EQ(t.readable, 0);
}

// ---------------------------------------------------------------------------------------
// Interest bits

TEST_P(IoWatchTest, EachInterestDeliversItsOwnBits) {
  FdLeakCheck leaks;
  Reactor loop(backend());
  // Three sockets, each readable (a byte waiting) and writable (empty send buffer).
  SocketPair pr, pw, prw;
  for (SocketPair* p : {&pr, &pw, &prw}) ASSERT_TRUE(write_byte(p->b.get()));
  Tally r, w, rw;
  IoWatcher wr = loop.watch(pr.a.get(), Interest::read, r.handler());
  IoWatcher ww = loop.watch(pw.a.get(), Interest::write, w.handler());
  IoWatcher wrw = loop.watch(prw.a.get(), Interest::read_write, rw.handler());
  EXPECT_EQ(wr.interest(), Interest::read);
  EXPECT_EQ(ww.interest(), Interest::write);
  EXPECT_EQ(wrw.interest(), Interest::read_write);
  loop.run_once(100ms);
  EXPECT_EQ(r.calls, 1);
  EXPECT_EQ(r.readable, 1);
  EXPECT_EQ(r.writable, 0) << "write readiness reported without write interest";
  EXPECT_EQ(w.calls, 1);
  EXPECT_EQ(w.writable, 1);
  EXPECT_EQ(w.readable, 0) << "read readiness reported without read interest";
  EXPECT_EQ(rw.calls, 1);
  EXPECT_EQ(rw.readable, 1);
  EXPECT_EQ(rw.writable, 1);
}

TEST_P(IoWatchTest, ReadInterestOnIdleSocketIsSilent) {
  FdLeakCheck leaks;
  Reactor loop(backend());
  SocketPair p;  // writable, nothing to read
  Tally t;
  IoWatcher w = loop.watch(p.a.get(), Interest::read, t.handler());
  for (int i = 0; i < 3; ++i) loop.run_once(0ms);
  loop.run_once(20ms);
  EXPECT_EQ(t.calls, 0);
  ASSERT_TRUE(write_byte(p.b.get()));
  EXPECT_TRUE(run_until(
      loop, [&] { return t.calls > 0; }, 5s, 100ms));
  EXPECT_EQ(t.readable, 1);
  EXPECT_EQ(t.writable, 0);
}

TEST_P(IoWatchTest, SetInterestChangesTheBits) {
  FdLeakCheck leaks;
  Reactor loop(backend());
  SocketPair p;
  ASSERT_TRUE(write_byte(p.b.get()));  // readable and writable from here on
  Tally t;
  IoWatcher w = loop.watch(p.a.get(), Interest::read, t.handler());
  loop.run_once(100ms);
  EXPECT_EQ(t.calls, 1);
  EXPECT_EQ(t.readable, 1);
  EXPECT_EQ(t.writable, 0);

  t = {};
  EXPECT_FALSE(w.set_interest(Interest::write));
  EXPECT_EQ(w.interest(), Interest::write);
  loop.run_once(100ms);
  EXPECT_EQ(t.calls, 1);
  EXPECT_EQ(t.readable, 0);
  EXPECT_EQ(t.writable, 1);

  t = {};
  EXPECT_FALSE(w.set_interest(Interest::read_write));
  EXPECT_EQ(w.interest(), Interest::read_write);
  loop.run_once(100ms);
  EXPECT_EQ(t.calls, 1);
  EXPECT_EQ(t.readable, 1);
  EXPECT_EQ(t.writable, 1);

  t = {};
  EXPECT_FALSE(w.set_interest(Interest::read));
  loop.run_once(100ms);
  EXPECT_EQ(t.calls, 1);
  EXPECT_EQ(t.readable, 1);
  EXPECT_EQ(t.writable, 0);
}

// ---------------------------------------------------------------------------------------
// Interest::none

TEST_P(IoWatchTest, NoneDeliversNothingAndResumes) {
  FdLeakCheck leaks;
  Reactor loop(backend());
  SocketPair p;
  ASSERT_TRUE(write_byte(p.b.get()));
  Tally t;
  IoWatcher w = loop.watch(p.a.get(), Interest::none, t.handler());
  EXPECT_TRUE(w.active());
  EXPECT_EQ(w.interest(), Interest::none);
  EXPECT_EQ(loop.watcher_count(), 1u);
  for (int i = 0; i < 3; ++i) loop.run_once(0ms);
  loop.run_once(20ms);
  EXPECT_EQ(t.calls, 0) << "watched with Interest::none";

  EXPECT_FALSE(w.set_interest(Interest::read));
  loop.run_once(100ms);
  EXPECT_EQ(t.calls, 1) << "set_interest(read) did not re-enable";

  EXPECT_FALSE(w.set_interest(Interest::none));
  EXPECT_TRUE(w.active());
  for (int i = 0; i < 3; ++i) loop.run_once(0ms);
  loop.run_once(20ms);
  EXPECT_EQ(t.calls, 1) << "set_interest(none) did not silence";

  EXPECT_FALSE(w.set_interest(Interest::read_write));
  loop.run_once(100ms);
  EXPECT_EQ(t.calls, 2);
  EXPECT_EQ(t.readable, 2);
  EXPECT_EQ(t.writable, 1);
}

// A paused reader on a dead socket: the kernel reports hang-up whether asked or not (epoll
// and poll always report HUP/ERR); Interest::none must still deliver nothing and the loop
// must block rather than spin.
TEST_P(IoWatchTest, PausedReaderOnDeadSocketDoesNotSpin) {
  FdLeakCheck leaks;
  Reactor loop(backend());
  SocketPair p;
  Tally t;
  bool reading = false;
  ssize_t last_read = -2;
  IoWatcher w = loop.watch(p.a.get(), Interest::read_write, [&](IoEvents ev) {
    t.add(ev);
    char c;
    if (reading) last_read = ::read(p.a.get(), &c, 1);
  });
  p.b.reset();  // the peer is gone: readable (EOF), writable (EPIPE), hang-up
  EXPECT_TRUE(run_until(
      loop, [&] { return t.calls > 0; }, 5s, 100ms));
  ASSERT_EQ(t.calls, 1);

  ASSERT_FALSE(w.set_interest(Interest::none));
  const auto stats = run_for(loop, 300ms, 50ms);
  EXPECT_EQ(t.calls, 1) << "callback with Interest::none on a dead socket";
  EXPECT_LE(stats.iterations, 10u)
      << "the loop spins on a paused dead socket (" << stats.calls << " run_once calls in ~300 ms)";
  EXPECT_GE(stats.calls, 1u);

  // Re-enabled, the EOF is there to be read.
  reading = true;
  ASSERT_FALSE(w.set_interest(Interest::read));
  EXPECT_TRUE(run_until(
      loop, [&] { return t.calls > 1; }, 5s, 100ms));
  EXPECT_EQ(t.calls, 2);
  EXPECT_EQ(t.readable, 2);
  EXPECT_EQ(last_read, 0);
}

TEST_P(IoWatchTest, WatchedWithNoneOnDeadSocketDoesNotSpin) {
  FdLeakCheck leaks;
  Reactor loop(backend());
  SocketPair p;
  p.b.reset();
  Tally t;
  IoWatcher w = loop.watch(p.a.get(), Interest::none, t.handler());
  const auto stats = run_for(loop, 300ms, 50ms);
  EXPECT_EQ(t.calls, 0);
  EXPECT_LE(stats.iterations, 10u)
      << "the loop spins on a silent dead socket (" << stats.calls << " run_once calls in ~300 ms)";
  EXPECT_TRUE(w.active());
}

// ---------------------------------------------------------------------------------------
// Stopping and destroying from callbacks

TEST_P(IoWatchTest, StopInsideOwnCallbackEndsCalls) {
  FdLeakCheck leaks;
  Reactor loop(backend());
  SocketPair p;
  ASSERT_TRUE(write_byte(p.b.get()));  // stays unread: level-triggered would call again
  int calls = 0;
  bool active_after_stop = true;
  IoWatcher w;
  w = loop.watch(p.a.get(), Interest::read, [&](IoEvents) {
    ++calls;
    w.stop();
    active_after_stop = w.active();
    w.stop();  // idempotent
  });
  loop.run_once(100ms);
  for (int i = 0; i < 3; ++i) loop.run_once(0ms);
  loop.run_once(20ms);
  EXPECT_EQ(calls, 1);
  EXPECT_FALSE(active_after_stop);
  EXPECT_FALSE(w.active());
  EXPECT_EQ(w.interest(), Interest::none);
  // A misuse: with the debug checks it aborts instead (DebugChecksDeathTest covers that).
  if constexpr (!reactor::kDebugChecks) {
    EXPECT_TRUE(IsErrc(w.set_interest(Interest::read), std::errc::bad_file_descriptor));
  }
  EXPECT_EQ(loop.watcher_count(), 0u);
}

TEST_P(IoWatchTest, DestroyInsideOwnCallbackIsSafe) {
  FdLeakCheck leaks;
  Reactor loop(backend());
  SocketPair p;
  ASSERT_TRUE(write_byte(p.b.get()));
  auto owned = std::make_shared<int>(42);
  const std::weak_ptr<int> watch_owned = owned;
  int calls = 0;
  int seen_after_destroy = 0;
  std::optional<IoWatcher> w;
  w.emplace(loop.watch(p.a.get(), Interest::read, [&, owned](IoEvents) {
    ++calls;
    w.reset();  // destroys the handle whose handler is running
    // The running handler and what it captured must still be alive here.
    seen_after_destroy = *owned;
  }));
  owned.reset();  // only the handler holds it now
  loop.run_once(100ms);
  for (int i = 0; i < 3; ++i) loop.run_once(0ms);
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(seen_after_destroy, 42);
  EXPECT_FALSE(w.has_value());
  EXPECT_EQ(loop.watcher_count(), 0u);
  EXPECT_TRUE(watch_owned.expired()) << "the handler of a destroyed watcher is still kept";
}

// Whichever of two ready watchers runs first stops the other: the other is not called, in
// this batch or later.
TEST_P(IoWatchTest, StoppingAnotherReadyWatcherSkipsIt) {
  FdLeakCheck leaks;
  Reactor loop(backend());
  SocketPair p[2];
  IoWatcher w[2];
  int calls[2] = {0, 0};
  for (int i = 0; i < 2; ++i) {
    ASSERT_TRUE(write_byte(p[i].b.get()));
    w[i] = loop.watch(p[i].a.get(), Interest::read, [&, i](IoEvents) {
      ++calls[i];
      w[1 - i].stop();
    });
  }
  loop.run_once(100ms);
  EXPECT_EQ(calls[0] + calls[1], 1) << "calls: " << calls[0] << ", " << calls[1];
  const int winner = calls[0] == 1 ? 0 : 1;
  for (int i = 0; i < 3; ++i) loop.run_once(100ms);
  EXPECT_EQ(calls[1 - winner], 0);
  EXPECT_EQ(calls[winner], 4) << "the survivor is still level-triggered";
  EXPECT_FALSE(w[1 - winner].active());
  EXPECT_EQ(loop.watcher_count(), 1u);
}

// Same, but the first callback destroys the other watcher and closes its fd.
TEST_P(IoWatchTest, DestroyingAndClosingAnotherReadyWatcherSkipsIt) {
  FdLeakCheck leaks;
  Reactor loop(backend());
  SocketPair p[2];
  std::optional<IoWatcher> w[2];
  int calls[2] = {0, 0};
  for (int i = 0; i < 2; ++i) {
    ASSERT_TRUE(write_byte(p[i].b.get()));
    w[i].emplace(loop.watch(p[i].a.get(), Interest::read, [&, i](IoEvents) {
      ++calls[i];
      if (w[1 - i]) {
        w[1 - i].reset();
        p[1 - i].a.reset();
      }
    }));
  }
  loop.run_once(100ms);
  EXPECT_EQ(calls[0] + calls[1], 1) << "calls: " << calls[0] << ", " << calls[1];
  for (int i = 0; i < 3; ++i) loop.run_once(100ms);
  EXPECT_EQ(calls[0] + calls[1], 4);
  EXPECT_TRUE(calls[0] == 0 || calls[1] == 0);
  EXPECT_EQ(loop.watcher_count(), 1u);
}

// Stop, then watch the same fd again, inside the old watcher's callback: from then on only
// the new handler runs, with the new interest, starting with the next iteration.
TEST_P(IoWatchTest, StopAndRewatchInCallbackRoutesToNewHandler) {
  FdLeakCheck leaks;
  Reactor loop(backend());
  SocketPair p;
  ASSERT_TRUE(write_byte(p.b.get()));  // readable and writable
  int old_calls = 0;
  Tally fresh;
  std::error_code rewatch_error;
  IoWatcher w;
  w = loop.watch(p.a.get(), Interest::read, [&](IoEvents) {
    ++old_calls;
    w.stop();
    w = loop.watch(p.a.get(), Interest::write, fresh.handler(), rewatch_error);
  });
  loop.run_once(100ms);
  EXPECT_EQ(old_calls, 1);
  ASSERT_FALSE(rewatch_error) << rewatch_error.message();
  EXPECT_EQ(fresh.calls, 0) << "the new watcher got an event from the batch polled before it";
  EXPECT_TRUE(w.active());
  EXPECT_EQ(w.interest(), Interest::write);

  for (int i = 0; i < 3; ++i) loop.run_once(100ms);
  EXPECT_EQ(old_calls, 1);
  EXPECT_EQ(fresh.calls, 3);
  EXPECT_EQ(fresh.writable, 3);
  EXPECT_EQ(fresh.readable, 0) << "the new watcher asked for writes only";
  EXPECT_EQ(loop.watcher_count(), 1u);
}

// ---------------------------------------------------------------------------------------
// Fresh stack: no callback runs inside watch() or set_interest().

TEST_P(IoWatchTest, NoCallbackInsideWatchOrSetInterest) {
  FdLeakCheck leaks;
  Reactor loop(backend());
  SocketPair pa, pb;
  ASSERT_TRUE(write_byte(pa.b.get()));
  ASSERT_TRUE(write_byte(pb.b.get()));
  bool inside = false;
  int reentered = 0;
  int calls_a = 0;
  int calls_b = 0;
  IoWatcher wa;
  IoWatcher wb;

  inside = true;
  wa = loop.watch(pa.a.get(), Interest::read, [&](IoEvents) {
    reentered += inside ? 1 : 0;
    ++calls_a;
    if (calls_a == 1) {
      // From inside a callback, register a ready fd and change interests.
      inside = true;
      wb = loop.watch(pb.a.get(), Interest::read, [&](IoEvents) {
        reentered += inside ? 1 : 0;
        ++calls_b;
      });
      EXPECT_FALSE(wb.set_interest(Interest::read_write));
      EXPECT_FALSE(wa.set_interest(Interest::read_write));
      EXPECT_FALSE(wa.set_interest(Interest::read));
      inside = false;
    }
  });
  inside = false;
  EXPECT_EQ(calls_a, 0) << "callback ran inside watch()";

  inside = true;
  EXPECT_FALSE(wa.set_interest(Interest::read_write));
  EXPECT_FALSE(wa.set_interest(Interest::read));
  inside = false;
  EXPECT_EQ(calls_a, 0) << "callback ran inside set_interest()";

  loop.run_once(100ms);
  EXPECT_EQ(calls_a, 1);
  EXPECT_EQ(calls_b, 0) << "a watcher made during dispatch ran in the batch polled before it";
  loop.run_once(100ms);
  EXPECT_EQ(calls_a, 2);
  EXPECT_EQ(calls_b, 1);
  EXPECT_EQ(reentered, 0);
}

// ---------------------------------------------------------------------------------------
// Peer close and a full socket

TEST_P(IoWatchTest, PeerCloseReportsReadableAndEof) {
  FdLeakCheck leaks;
  Reactor loop(backend());
  SocketPair p;
  ASSERT_TRUE(send_all(p.b.get(), "bye"));
  p.b.reset();
  Tally t;
  std::string got;
  ssize_t last_read = -2;
  IoWatcher w;
  w = loop.watch(p.a.get(), Interest::read, [&](IoEvents ev) {
    t.add(ev);
    char buf[16];
    last_read = ::read(p.a.get(), buf, sizeof buf);
    if (last_read > 0) got.append(buf, static_cast<std::size_t>(last_read));
    if (last_read == 0) w.stop();
  });
  EXPECT_TRUE(run_until(
      loop, [&] { return !w.active(); }, 1s, 100ms));
  EXPECT_EQ(got, "bye");
  EXPECT_EQ(last_read, 0);
  EXPECT_EQ(t.calls, 2) << "data, then end of file";
  EXPECT_EQ(t.readable, 2);
  EXPECT_EQ(t.writable, 0);
  EXPECT_EQ(t.invalid, 0);
}

TEST_P(IoWatchTest, PeerCloseReportsWritableToWriter) {
  FdLeakCheck leaks;
  Reactor loop(backend());
  SocketPair p;
  p.b.reset();
  Tally t;
  int send_errno = 0;
  IoWatcher w;
  w = loop.watch(p.a.get(), Interest::write, [&](IoEvents ev) {
    t.add(ev);
    const char c = 'x';
    if (::send(p.a.get(), &c, 1, MSG_NOSIGNAL) < 0) send_errno = errno;
    w.stop();
  });
  EXPECT_TRUE(run_until(
      loop, [&] { return t.calls > 0; }, 1s, 100ms));
  EXPECT_EQ(t.calls, 1);
  EXPECT_EQ(t.writable, 1) << "a dead socket is reported to a writer as writable";
  EXPECT_EQ(t.readable, 0);
  EXPECT_EQ(send_errno, EPIPE);
}

TEST_P(IoWatchTest, FullSocketIsNotWritableUntilDrained) {
  FdLeakCheck leaks;
  Reactor loop(backend());
  SocketPair p;
  Tally t;
  IoWatcher w = loop.watch(p.a.get(), Interest::write, t.handler());
  loop.run_once(100ms);
  ASSERT_EQ(t.writable, 1);

  ASSERT_GT(reactor::test::fill(p.a.get()), 0u);
  const int before = t.calls;
  for (int i = 0; i < 3; ++i) loop.run_once(0ms);
  loop.run_once(50ms);
  EXPECT_EQ(t.calls, before) << "a full socket was reported writable";

  EXPECT_FALSE(drain(p.b.get()).empty());
  EXPECT_TRUE(run_until(
      loop, [&] { return t.calls > before; }, 1s, 100ms));
  EXPECT_EQ(t.writable, before + 1);
}

// ---------------------------------------------------------------------------------------
// Handle lifetime

TEST_P(IoWatchTest, MovedFromWatcherIsEmpty) {
  FdLeakCheck leaks;
  Reactor loop(backend());
  SocketPair p, q;
  ASSERT_TRUE(write_byte(p.b.get()));
  ASSERT_TRUE(write_byte(q.b.get()));
  Tally tp, tq;
  IoWatcher w1 = loop.watch(p.a.get(), Interest::read, tp.handler());
  IoWatcher w2 = std::move(w1);
  EXPECT_FALSE(w1.active());  // NOLINT(bugprone-use-after-move): the point of the test
  EXPECT_EQ(w1.fd(), -1);
  EXPECT_EQ(w1.interest(), Interest::none);
  // A misuse: with the debug checks it aborts instead (DebugChecksDeathTest covers that).
  if constexpr (!reactor::kDebugChecks) {
    EXPECT_TRUE(IsErrc(w1.set_interest(Interest::read), std::errc::bad_file_descriptor));
  }
  w1.stop();  // must not touch the registration now in w2
  EXPECT_TRUE(w2.active());
  EXPECT_EQ(w2.fd(), p.a.get());
  EXPECT_EQ(w2.interest(), Interest::read);
  EXPECT_EQ(loop.watcher_count(), 1u);
  loop.run_once(100ms);
  EXPECT_EQ(tp.calls, 1);

  // Move-assigning over an active watcher stops the registration it held.
  IoWatcher w3 = loop.watch(q.a.get(), Interest::read, tq.handler());
  EXPECT_EQ(loop.watcher_count(), 2u);
  w2 = std::move(w3);
  EXPECT_EQ(loop.watcher_count(), 1u);
  EXPECT_FALSE(w3.active());  // NOLINT(bugprone-use-after-move)
  EXPECT_EQ(w2.fd(), q.a.get());
  for (int i = 0; i < 2; ++i) loop.run_once(100ms);
  EXPECT_EQ(tp.calls, 1) << "the overwritten registration still delivers";
  EXPECT_EQ(tq.calls, 2);
}

TEST_P(IoWatchTest, WatcherOutlivingReactorIsInert) {
  FdLeakCheck leaks;
  SocketPair p;
  ASSERT_TRUE(write_byte(p.b.get()));
  Tally t;
  IoWatcher w;
  {
    Reactor loop(backend());
    w = loop.watch(p.a.get(), Interest::read, t.handler());
    EXPECT_TRUE(w.active());
  }
  EXPECT_FALSE(w.active());
  EXPECT_EQ(w.interest(), Interest::none);
  EXPECT_TRUE(IsErrc(w.set_interest(Interest::read), std::errc::bad_file_descriptor));
  w.stop();
  w.stop();
  IoWatcher moved = std::move(w);
  EXPECT_FALSE(moved.active());
  EXPECT_EQ(t.calls, 0);

  // The fd is registered nowhere now: a new loop can watch it.
  Reactor loop2(backend());
  Tally t2;
  IoWatcher w2 = loop2.watch(p.a.get(), Interest::read, t2.handler());
  loop2.run_once(100ms);
  EXPECT_EQ(t2.calls, 1);
  EXPECT_EQ(t.calls, 0);
}  // `moved` is destroyed after its loop: must be safe

TEST_P(IoWatchTest, EmptyHandlerIsInvalidArgument) {
  FdLeakCheck leaks;
  Reactor loop(backend());
  SocketPair p;
  std::error_code ec;
  IoWatcher w = loop.watch(p.a.get(), Interest::read, IoHandler{}, ec);
  EXPECT_TRUE(IsErrc(ec, std::errc::invalid_argument));
  EXPECT_FALSE(w.active());
  void (*null_function)(IoEvents) = nullptr;
  EXPECT_TRUE(ThrowsErrc([&] { (void)loop.watch(p.a.get(), Interest::read, null_function); },
                         std::errc::invalid_argument));
  EXPECT_EQ(loop.watcher_count(), 0u);

  // Nothing was left registered: a proper watch of the same fd succeeds and works.
  Tally t;
  w = loop.watch(p.a.get(), Interest::write, t.handler(), ec);
  ASSERT_FALSE(ec) << ec.message();
  loop.run_once(100ms);
  EXPECT_EQ(t.writable, 1);
}

REACTOR_INSTANTIATE_ALL_BACKENDS(IoWatchTest);

}  // namespace
