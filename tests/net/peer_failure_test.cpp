// SPDX-License-Identifier: MIT
// What a misbehaving or vanishing peer does to a connection, on every backend and every
// stream transport: connect failures, peer close and reset (and SIGPIPE), close with more
// events pending.
#include <gtest/gtest.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/socket.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "reactor/core/reactor.hpp"
#include "reactor/net/buffer.hpp"
#include "reactor/net/connection.hpp"
#include "reactor/net/connector.hpp"
#include "reactor/net/socket.hpp"
#include "tests/support/backends.hpp"
#include "tests/support/errors.hpp"
#include "tests/support/fds.hpp"
#include "tests/support/io.hpp"
#include "tests/support/loop.hpp"
#include "tests/support/patterns.hpp"
#include "tests/support/signals.hpp"
#include "tests/support/sockets.hpp"
#include "tests/support/time.hpp"

namespace {

using namespace std::chrono_literals;
using namespace reactor::test;
using reactor::Address;
using reactor::Buffer;
using reactor::CloseReason;
using reactor::Connection;
using reactor::Connector;
using reactor::Reactor;
using reactor::Socket;
using reactor::test::Fd;

constexpr std::size_t kKiB = 1024;
constexpr std::size_t kMiB = 1024 * 1024;
constexpr std::size_t npos = std::string_view::npos;

class PeerFailureTest : public reactor::test::BackendTest {};

// ---------------------------------------------------------------------------------------
// Connect failures

/// What a Connector's handler reported.
struct ConnectOutcome {
  int calls = 0;
  std::error_code error;
  bool had_socket = false;
  bool socket_connected = false;  ///< getpeername() succeeded on the socket handed over
  bool inside_call = false;       ///< set around connect()/cancel(): the handler must never see it
  int ran_inside_call = 0;
  SteadyClock::time_point when{};

  Connector::Handler handler() {
    return [this](std::error_code ec, Socket s) {
      if (inside_call) ++ran_inside_call;
      ++calls;
      error = ec;
      had_socket = static_cast<bool>(s);
      if (s) {
        std::error_code peer_ec;
        s.peer_address(peer_ec);
        socket_connected = !peer_ec;
      }
      when = SteadyClock::now();
    };
  }
};

// The target is bound but not listening: a closed port (or Unix name) that nobody else can
// take meanwhile. The handler runs once, from the loop, with ECONNREFUSED and no socket; the
// Connector is released afterwards even though we dropped our handle at once.
void refused_part(const std::string& backend, Transport t) {
  Reactor loop(backend);
  Fd closed = raw_bound_socket(t);
  const Address target = bound_address(closed.get());
  ConnectOutcome out;
  out.inside_call = true;
  std::weak_ptr<Connector> weak = Connector::connect(loop, target, out.handler(), 5s);
  out.inside_call = false;
  EXPECT_EQ(out.calls, 0) << "the handler ran inside connect()";
  EXPECT_TRUE(run_until(
      loop, [&] { return out.calls > 0; }, 5000ms));
  run_iterations(loop, 10);
  EXPECT_EQ(out.calls, 1);
  EXPECT_EQ(out.ran_inside_call, 0);
  EXPECT_TRUE(IsErrc(out.error, std::errc::connection_refused));
  EXPECT_FALSE(out.had_socket);
  EXPECT_TRUE(weak.expired()) << "the Connector outlived its handler";
}

TEST_P(PeerFailureTest, ConnectRefusedReportsOnce) {
  for_each_transport([&](Transport t) { refused_part(backend(), t); });
}

/// A listener that never accepts, with listen(fd, 0), and filler connections until a new
/// connect can no longer complete (TCP: its SYN is dropped and it stays in SYN_SENT; Unix: a
/// non-blocking connect says EAGAIN).
struct FullBacklog {
  Fd listener;
  std::vector<Fd> fillers;
  Address address;

  /// False when the kernel never filled the queue within bounds.
  bool fill(Transport t) {
    listener = raw_bound_socket(t);
    if (::listen(listener.get(), 0) != 0) throw_errno("listen");
    address = bound_address(listener.get());
    for (int i = 0; i < 32; ++i) {
      Fd f(::socket(address.domain(), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
      if (f.get() < 0) throw_errno("socket");
      const int rc = ::connect(f.get(), address.native(), address.native_size());
      const int e = rc == 0 ? 0 : errno;
      if (t == Transport::unix_stream) {
        if (e == EAGAIN) return true;
        if (e != 0) throw std::system_error(e, std::generic_category(), "connect");
        fillers.push_back(std::move(f));
        continue;
      }
      if (e != 0 && e != EINPROGRESS)
        throw std::system_error(e, std::generic_category(), "connect");
      const int fd = f.get();
      fillers.push_back(std::move(f));
      // A connect whose handshake completes fills a slot; one whose SYN is dropped stays in
      // SYN_SENT (the next SYN goes out after a second).
      if (!wait_for([&] { return tcp_state(fd) == TCP_ESTABLISHED; }, 100ms) &&
          tcp_state(fd) == TCP_SYN_SENT) {
        return true;
      }
    }
    return false;
  }
};

// With a 100 ms timeout against a full backlog, the handler runs once with ETIMEDOUT, not
// early, and the loop sleeps meanwhile. (For Unix a full backlog makes connect() fail with
// EAGAIN at once; that error, or ETIMEDOUT, is fine, but never "connected".)
void backlog_timeout_part(const std::string& backend, Transport t) {
  FullBacklog full;
  if (!full.fill(t)) {
    GTEST_SKIP() << name(t) << ": the kernel never filled a listen(fd, 0) backlog";
  }
  Reactor loop(backend);
  ConnectOutcome out;
  const auto t0 = SteadyClock::now();
  const std::uint64_t i0 = loop.iterations();
  out.inside_call = true;
  auto connector = Connector::connect(loop, full.address, out.handler(), 100ms);
  out.inside_call = false;
  EXPECT_TRUE(run_until(
      loop, [&] { return out.calls > 0; }, 5000ms));
  const std::uint64_t iterations = loop.iterations() - i0;
  run_iterations(loop, 10);
  EXPECT_EQ(out.calls, 1);
  EXPECT_EQ(out.ran_inside_call, 0);
  EXPECT_FALSE(connector->pending());
  if (t == Transport::unix_stream) {
    EXPECT_TRUE(
        IsOneOf(out.error, {std::errc::timed_out, std::errc::resource_unavailable_try_again}))
        << "a connect to a full Unix backlog was reported as "
        << (out.error ? out.error.message() : std::string("connected"))
        << (out.error              ? ""
            : out.socket_connected ? " (it is)"
                                   : " (it is not: getpeername fails)");
    return;
  }
  EXPECT_TRUE(IsErrc(out.error, std::errc::timed_out));
  EXPECT_FALSE(out.had_socket);
  const auto waited = out.when - t0;
  std::printf("[ info     ] %s: timed out after %.1f ms, %llu iterations\n", name(t),
              std::chrono::duration<double, std::milli>(waited).count(),
              static_cast<unsigned long long>(iterations));
  EXPECT_GE(waited, 100ms) << "timed out early";
  EXPECT_LT(waited, 3s);
  EXPECT_LE(iterations, 100u) << "the loop spun while connecting";
}

TEST_P(PeerFailureTest, ConnectTimesOutOnFullBacklog) {
  for_each_transport([&](Transport t) { backlog_timeout_part(backend(), t); });
}

// cancel() while connecting: the handler runs once with ECANCELED, from the loop (not inside
// cancel()); cancel() again and after the outcome are no-ops. First right after connect()
// (every transport), then with the connect stuck on a full backlog after a few iterations.
void cancel_part(const std::string& backend, Transport t) {
  Reactor loop(backend);
  {
    SCOPED_TRACE("cancel right after connect()");
    Fd listener = raw_bound_socket(t);
    ASSERT_EQ(::listen(listener.get(), 4), 0);
    ConnectOutcome out;
    out.inside_call = true;
    auto connector = Connector::connect(loop, bound_address(listener.get()), out.handler(), 5s);
    connector->cancel();
    EXPECT_FALSE(connector->pending());
    connector->cancel();
    out.inside_call = false;
    EXPECT_EQ(out.calls, 0) << "the handler ran inside connect() or cancel()";
    EXPECT_TRUE(run_until(
        loop, [&] { return out.calls > 0; }, 5000ms));
    connector->cancel();
    run_iterations(loop, 10);
    EXPECT_EQ(out.calls, 1);
    EXPECT_EQ(out.ran_inside_call, 0);
    EXPECT_TRUE(IsErrc(out.error, std::errc::operation_canceled))
        << "cancel() before the handler ran did not cancel";
    EXPECT_FALSE(out.had_socket);
  }
  if (t == Transport::unix_stream) return;  // a Unix connect never stays in progress
  {
    SCOPED_TRACE("cancel while the connect is stuck");
    FullBacklog full;
    if (!full.fill(t)) {
      GTEST_SKIP() << name(t) << ": the kernel never filled a listen(fd, 0) backlog";
    }
    ConnectOutcome out;
    auto connector = Connector::connect(loop, full.address, out.handler());
    run_iterations(loop, 5, 10ms);
    EXPECT_EQ(out.calls, 0) << "connected to a full backlog?";
    EXPECT_TRUE(connector->pending());
    out.inside_call = true;
    connector->cancel();
    connector->cancel();
    out.inside_call = false;
    EXPECT_EQ(out.calls, 0) << "the handler ran inside cancel()";
    EXPECT_FALSE(connector->pending());
    EXPECT_TRUE(run_until(
        loop, [&] { return out.calls > 0; }, 5000ms));
    run_iterations(loop, 10);
    EXPECT_EQ(out.calls, 1);
    EXPECT_EQ(out.ran_inside_call, 0);
    EXPECT_TRUE(IsErrc(out.error, std::errc::operation_canceled));
    EXPECT_FALSE(out.had_socket);
  }
}

TEST_P(PeerFailureTest, CancelWhileConnectingReportsCanceledOnce) {
  for_each_transport([&](Transport t) { cancel_part(backend(), t); });
}

// A connect that succeeds: the connect handler runs once, and before any close callback of
// the Connection built on its socket (the peer closes at once).
void connect_then_close_part(const std::string& backend, Transport t) {
  Reactor loop(backend);
  Fd listener = raw_bound_socket(t);
  ASSERT_EQ(::listen(listener.get(), 4), 0);
  std::vector<std::string> events;
  std::shared_ptr<Connection> conn;
  Recorder rec;
  Connector::connect(
      loop, bound_address(listener.get()),
      [&](std::error_code ec, Socket s) {
        events.push_back("connect");
        EXPECT_FALSE(ec) << ec.message();
        if (ec) return;
        conn = Connection::make(loop, std::move(s));
        rec.attach(*conn);
        conn->on_close([&](Connection&, CloseReason r, std::error_code e) {
          events.push_back("close");
          rec.record_close(r, e);
        });
        conn->start();
      },
      5s);
  Fd accepted;
  EXPECT_TRUE(run_until(loop, [&] {
    if (accepted.get() < 0)
      accepted.reset(::accept4(listener.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC));
    return accepted.get() >= 0 && !events.empty();
  }));
  ASSERT_GE(accepted.get(), 0);
  accepted.reset();  // the peer closes
  EXPECT_TRUE(run_until(loop, [&] { return rec.closed(); }));
  run_iterations(loop, 5);
  EXPECT_EQ(events, (std::vector<std::string>{"connect", "close"}));
  EXPECT_EQ(rec.reason, CloseReason::eof) << to_string(rec.reason);
}

TEST_P(PeerFailureTest, ConnectRunsOnceBeforeClose) {
  for_each_transport([&](Transport t) { connect_then_close_part(backend(), t); });
}

// ---------------------------------------------------------------------------------------
// Peer close and reset

// The peer sends and closes: all data, then on_close(eof) once, nothing after.
void peer_close_part(const std::string& backend, Transport t) {
  Reactor loop(backend);
  StreamPair pair = make_stream_pair(t, PeerMode::nonblocking);
  auto c = Connection::make(loop, std::move(pair.ours));
  Recorder rec;
  rec.attach(*c);
  c->start();
  ASSERT_TRUE(send_all(pair.peer.get(), "goodbye"));
  pair.peer.reset();
  EXPECT_TRUE(run_until(loop, [&] { return rec.closed(); }));
  run_iterations(loop, 10);
  EXPECT_EQ(rec.data, "goodbye");
  EXPECT_EQ(rec.closes, 1);
  EXPECT_EQ(rec.reason, CloseReason::eof) << to_string(rec.reason);
  EXPECT_FALSE(rec.error) << rec.error.message();
  EXPECT_EQ(rec.calls_after_close, 0);
  EXPECT_TRUE(IsErrc(c->send("late"), std::errc::broken_pipe));
}

TEST_P(PeerFailureTest, PeerCloseReportsEofOnce) {
  for_each_transport([&](Transport t) { peer_close_part(backend(), t); });
}

// Makes the peer's close a reset: for TCP SO_LINGER {1, 0}; for Unix, the peer closes with
// input it never read, which gives us ECONNRESET. `ours` must have sent the peer something
// first for Unix (see send_unread()).
void peer_reset(Fd& peer) { reset_close(peer); }

// What a Unix peer leaves unread so that its close resets us.
constexpr std::string_view kUnread = "never read by the peer";

// The peer streams 4 MiB while we read, then resets: on_close(reset) once with ECONNRESET,
// what arrived is an in-order prefix, nothing after.
void reset_while_reading_part(const std::string& backend, Transport t) {
  Reactor loop(backend);
  StreamPair pair = make_stream_pair(t, PeerMode::blocking);
  auto c = Connection::make(loop, std::move(pair.ours));
  Recorder rec;
  rec.attach(*c);
  c->start();
  ASSERT_FALSE(c->send(kUnread));
  ASSERT_EQ(c->queued(), 0u);

  Fd peer_fd = std::move(pair.peer);
  const int raw_peer = peer_fd.get();
  std::atomic<bool> sent{false};
  PeerThread peer(raw_peer, [&] {
    sent.store(send_all(raw_peer, pattern(0, 4 * kMiB)));
    peer_reset(peer_fd);
  });
  EXPECT_TRUE(run_until(
      loop, [&] { return rec.closed(); }, 20000ms))
      << rec.data.size() << " bytes read, no close";
  peer.join();
  run_iterations(loop, 10);
  EXPECT_TRUE(sent.load());
  EXPECT_GT(rec.data.size(), 0u);
  EXPECT_LE(rec.data.size(), 4 * kMiB);
  EXPECT_EQ(pattern_mismatch(rec.data), npos);
  EXPECT_EQ(rec.closes, 1);
  EXPECT_EQ(rec.reason, CloseReason::reset) << to_string(rec.reason);
  EXPECT_TRUE(IsErrc(rec.error, std::errc::connection_reset));
  EXPECT_EQ(rec.calls_after_close, 0);
}

TEST_P(PeerFailureTest, PeerResetWhileReadingReportsResetOnce) {
  for_each_transport([&](Transport t) { reset_while_reading_part(backend(), t); });
}

// Resets the peer and waits until our end has seen it (TCP: our socket is in TCP_CLOSE).
void reset_and_wait(Transport t, Fd& peer, int ours) {
  peer_reset(peer);
  if (t != Transport::unix_stream) {
    EXPECT_TRUE(wait_for([&] { return tcp_state(ours) == TCP_CLOSE; }))
        << "the reset never arrived (state " << tcp_state(ours) << ")";
  }
}

// We keep writing to a connection whose peer has reset, with SIGPIPE at its default action
// (which would kill the process): the first failing send() returns ECONNRESET or EPIPE,
// on_close(reset) runs once from the loop, every later send() fails with EPIPE, the process
// lives and SIGPIPE's disposition is what it was.
void write_after_reset_part(const std::string& backend, Transport t) {
  reactor::test::ScopedDisposition pipe(SIGPIPE);
  const struct sigaction before = pipe.install(SIG_DFL);
  {
    Reactor loop(backend);
    StreamPair pair = make_stream_pair(t, PeerMode::nonblocking);
    auto c = Connection::make(loop, std::move(pair.ours));
    Recorder rec;
    rec.attach(*c);
    c->start();
    ASSERT_FALSE(c->send(kUnread));
    ASSERT_EQ(c->queued(), 0u);
    std::this_thread::sleep_for(5ms);
    reset_and_wait(t, pair.peer, c->fd());

    // Without running the loop: the write path finds the reset first.
    std::error_code first;
    int sends = 0;
    for (; sends < 100 && !first; ++sends) first = c->send(pattern(0, 1000));
    EXPECT_TRUE(IsOneOf(first, {std::errc::connection_reset, std::errc::broken_pipe}))
        << "after " << sends << " sends";
    EXPECT_EQ(rec.closes, 0) << "on_close ran inside send()";
    for (int i = 0; i < 10; ++i) {
      EXPECT_TRUE(IsErrc(c->send("again"), std::errc::broken_pipe));
    }
    EXPECT_TRUE(run_until(loop, [&] { return rec.closed(); }));
    // Keep writing from the loop for a while.
    int late_ok = 0;
    for (int i = 0; i < 20; ++i) {
      loop.run_once(1ms);
      if (!c->send("from the loop")) ++late_ok;
    }
    EXPECT_EQ(late_ok, 0) << "sends succeeded on a reset connection";
    EXPECT_EQ(rec.closes, 1);
    EXPECT_EQ(rec.reason, CloseReason::reset) << to_string(rec.reason);
    EXPECT_TRUE(IsOneOf(rec.error, {std::errc::connection_reset, std::errc::broken_pipe}));
    EXPECT_EQ(rec.calls_after_close, 0);
  }
  const struct sigaction after = reactor::test::query_disposition(SIGPIPE);
  EXPECT_TRUE(reactor::test::same_disposition(before, after))
      << "SIGPIPE's disposition was changed behind the user's back";
}

TEST_P(PeerFailureTest, WritingToResetPeerFailsOnceWithoutSigpipe) {
  for_each_transport([&](Transport t) { write_after_reset_part(backend(), t); });
}

// The same while the loop is flushing a queue into the peer that resets: the flush fails,
// on_close(reset) once, SIGPIPE never raised nor touched.
void flush_into_reset_part(const std::string& backend, Transport t) {
  reactor::test::ScopedDisposition pipe(SIGPIPE);
  const struct sigaction before = pipe.install(SIG_DFL);
  {
    Reactor loop(backend);
    StreamPair pair = make_stream_pair(t, PeerMode::nonblocking);
    ASSERT_FALSE(pair.ours.set_send_buffer(4096));
    auto c = Connection::make(loop, std::move(pair.ours));
    Recorder rec;
    rec.attach(*c);
    c->start();
    ASSERT_FALSE(c->send(kUnread));
    std::this_thread::sleep_for(5ms);
    ASSERT_FALSE(c->send(pattern(0, 4 * kMiB)));
    ASSERT_GT(c->queued(), 0u);
    run_iterations(loop, 3);
    peer_reset(pair.peer);
    EXPECT_TRUE(run_until(loop, [&] { return rec.closed(); }));
    run_iterations(loop, 10);
    EXPECT_EQ(rec.closes, 1);
    EXPECT_EQ(rec.reason, CloseReason::reset) << to_string(rec.reason);
    EXPECT_TRUE(IsOneOf(rec.error, {std::errc::connection_reset, std::errc::broken_pipe}));
    EXPECT_EQ(rec.calls_after_close, 0);
    EXPECT_TRUE(IsErrc(c->send("late"), std::errc::broken_pipe));
  }
  EXPECT_TRUE(reactor::test::same_disposition(before, reactor::test::query_disposition(SIGPIPE)));
}

TEST_P(PeerFailureTest, FlushIntoResetPeerFailsOnce) {
  for_each_transport([&](Transport t) { flush_into_reset_part(backend(), t); });
}

// ---------------------------------------------------------------------------------------
// Close with more events pending

// Before the connection starts, the peer sends data and resets, so the fd reports readable,
// error and hang-up together. on_data closes (or aborts, or closes and drops the last
// reference): nothing else is delivered, on_close(local) once. Without closing in on_data:
// the data once, then on_close(reset) once.
enum class OnData { close, abort, close_and_drop, keep };

const char* describe(OnData what) {
  switch (what) {
    case OnData::close:
      return "on_data closes";
    case OnData::abort:
      return "on_data aborts";
    case OnData::close_and_drop:
      return "on_data closes and drops the last reference";
    case OnData::keep:
      return "on_data keeps the connection";
  }
  return "?";
}

void pending_events_part(const std::string& backend, Transport t, OnData what) {
  SCOPED_TRACE(describe(what));
  Reactor loop(backend);
  StreamPair pair = make_stream_pair(t, PeerMode::nonblocking);
  const int ours = pair.ours.fd();
  // For Unix, the peer must have unread input for its close to reset us.
  ASSERT_EQ(::send(ours, kUnread.data(), kUnread.size(), MSG_NOSIGNAL),
            static_cast<ssize_t>(kUnread.size()));
  std::this_thread::sleep_for(5ms);
  ASSERT_TRUE(send_all(pair.peer.get(), "last words"));
  reset_and_wait(t, pair.peer, ours);
  ASSERT_TRUE(wait_for([&] { return unread_bytes(ours) >= 10; }))
      << "the data did not survive the reset";

  // The precondition, seen by the backend itself: readable, and (where the mechanism can
  // tell; select cannot) hang-up or error, in one report.
  {
    Reactor probe(backend);
    reactor::IoEvents seen;
    reactor::IoWatcher w =
        probe.watch(ours, reactor::Interest::read, [&](reactor::IoEvents e) { seen = e; });
    probe.run_once(100ms);
    w.stop();
    ASSERT_TRUE(seen.readable()) << "the fd is not readable";
    if (backend != "select") {
      ASSERT_TRUE(seen.hangup_or_error()) << "no hang-up or error reported with the data";
    }
  }

  auto c = Connection::make(loop, std::move(pair.ours));
  std::weak_ptr<Connection> weak = c;
  Recorder rec;
  rec.attach(*c);
  c->on_data([&](Connection& conn, Buffer& in) {
    rec.record_data(in);
    switch (what) {
      case OnData::close:
        conn.close();
        break;
      case OnData::abort:
        conn.abort();
        break;
      case OnData::close_and_drop:
        conn.close();
        c.reset();
        break;
      case OnData::keep:
        break;
    }
  });
  c->start();
  EXPECT_TRUE(run_until(
      loop, [&] { return rec.closed(); }, 5000ms));
  run_iterations(loop, 20);
  EXPECT_EQ(rec.data_calls, 1u);
  EXPECT_EQ(rec.data, "last words");
  EXPECT_EQ(rec.closes, 1);
  EXPECT_EQ(rec.calls_after_close, 0);
  if (what == OnData::keep) {
    EXPECT_EQ(rec.reason, CloseReason::reset) << to_string(rec.reason);
    EXPECT_TRUE(IsErrc(rec.error, std::errc::connection_reset));
  } else {
    EXPECT_EQ(rec.reason, CloseReason::local) << to_string(rec.reason);
    EXPECT_FALSE(rec.error) << rec.error.message();
  }
  if (what == OnData::close_and_drop) {
    EXPECT_TRUE(weak.expired()) << "the connection outlived its last reference and its close";
  }
}

TEST_P(PeerFailureTest, CloseInsideOnDataWithErrorAndHangupPending) {
  for_each_transport([&](Transport t) {
    for (OnData what : {OnData::close, OnData::abort, OnData::close_and_drop, OnData::keep}) {
      pending_events_part(backend(), t, what);
    }
  });
}

REACTOR_INSTANTIATE_ALL_BACKENDS(PeerFailureTest);

}  // namespace
