// SPDX-License-Identifier: MIT
// Connector on every backend, over TCP v4, TCP v6 (when ::1 exists) and Unix stream: the
// handler runs exactly once and never inside connect() or cancel() — on success, on refusal,
// on cancel, on timeout against a full backlog and when the returned handle is dropped —
// and nothing (fd, watcher, timer) is left behind.
#include "reactor/net/connector.hpp"

#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include "reactor/core/reactor.hpp"
#include "reactor/net/address.hpp"
#include "reactor/net/listener.hpp"
#include "reactor/net/socket.hpp"
#include "tests/support/backends.hpp"
#include "tests/support/errors.hpp"
#include "tests/support/fds.hpp"
#include "tests/support/io.hpp"
#include "tests/support/loop.hpp"
#include "tests/support/patterns.hpp"
#include "tests/support/sockets.hpp"

namespace {

using namespace std::chrono_literals;
using namespace reactor::test;
using reactor::Address;
using reactor::Connector;
using reactor::Listener;
using reactor::Reactor;
using reactor::Socket;
using reactor::test::closed_port;
using reactor::test::Fd;
using reactor::test::FdLeakCheck;
using reactor::test::ipv6_loopback_available;
using reactor::test::IsErrc;
using reactor::test::raw_connect;
using reactor::test::run_for;
using reactor::test::run_iterations;
using reactor::test::run_until;
using reactor::test::stream_transports;
using reactor::test::Transport;
using reactor::test::unique_unix_address;

class ConnectorTest : public reactor::test::BackendTest {
 protected:
  void SetUp() override { reactor::test::warm_up(backend()); }
};

/// What the handler saw, and whether it ran inside a call of ours.
struct Outcome {
  int calls = 0;
  int calls_inside_our_call = 0;
  std::error_code ec;
  Socket socket;
  bool inside = false;  // set around our calls into the library

  Connector::Handler handler() {
    return [this](std::error_code e, Socket s) {
      ++calls;
      if (inside) ++calls_inside_our_call;
      ec = e;
      socket = std::move(s);
    };
  }
  std::shared_ptr<Connector> connect(Reactor& loop, const Address& to,
                                     std::chrono::nanoseconds timeout = {}) {
    inside = true;
    auto c = Connector::connect(loop, to, handler(), timeout);
    inside = false;
    return c;
  }
};

/// Addresses on which nothing listens: a closed TCP port on 127.0.0.1 and ::1, and an
/// abstract Unix name nobody bound.
std::vector<std::pair<std::string, Address>> refusing_addresses() {
  std::vector<std::pair<std::string, Address>> a;
  a.emplace_back("tcp4",
                 Address::ipv4_loopback(closed_port(Address::ipv4_loopback(0), SOCK_STREAM)));
  if (ipv6_loopback_available()) {
    a.emplace_back("tcp6",
                   Address::ipv6_loopback(closed_port(Address::ipv6_loopback(0), SOCK_STREAM)));
  }
  a.emplace_back("unix", unique_unix_address("nobody"));
  return a;
}

// ---------------------------------------------------------------------------------------

TEST_P(ConnectorTest, ConnectsExactlyOnceOverEveryTransport) {
  FdLeakCheck leaks;
  Reactor loop(backend());
  for (const Transport& t : stream_transports()) {
    SCOPED_TRACE(name(t));
    std::vector<Socket> accepted;
    Listener listener(loop, bind_address(t),
                      [&](Socket s, const Address&) { accepted.push_back(std::move(s)); });
    const std::size_t watchers = loop.watcher_count();
    const std::size_t timers = loop.timer_count();
    Outcome out;
    auto connector = out.connect(loop, listener.address(), 5s);
    ASSERT_TRUE(connector);
    EXPECT_EQ(out.calls, 0) << "the handler ran inside connect()";
    ASSERT_TRUE(run_until(
        loop, [&] { return out.calls > 0 && !accepted.empty(); }, 3000ms));
    run_for(loop, 100ms, 10ms, 10000);
    EXPECT_EQ(out.calls, 1);
    EXPECT_EQ(out.calls_inside_our_call, 0);
    EXPECT_FALSE(out.ec) << out.ec.message();
    ASSERT_TRUE(out.socket);
    EXPECT_FALSE(connector->pending());
    std::error_code ec;
    EXPECT_EQ(out.socket.peer_address(ec), listener.address());
    EXPECT_FALSE(ec);
    // A connected, non-blocking socket: bytes go through both ways.
    ASSERT_EQ(accepted.size(), 1u);
    ASSERT_EQ(::send(out.socket.fd(), "ab", 2, MSG_NOSIGNAL), 2);
    char buf[2];
    ASSERT_NE(reactor::test::wait_fd(accepted[0].fd(), POLLIN, 2000), 0);
    EXPECT_EQ(::recv(accepted[0].fd(), buf, 2, 0), 2);
    EXPECT_EQ(::recv(out.socket.fd(), buf, 1, 0), -1) << "the socket blocks";
    // cancel() after the outcome changes nothing.
    out.inside = true;
    connector->cancel();
    out.inside = false;
    run_for(loop, 50ms, 10ms, 10000);
    EXPECT_EQ(out.calls, 1);
    EXPECT_EQ(loop.watcher_count(), watchers);
    EXPECT_EQ(loop.timer_count(), timers) << "the timeout timer outlived the connect";
  }
}

TEST_P(ConnectorTest, RefusedIsReportedExactlyOnce) {
  FdLeakCheck leaks;
  Reactor loop(backend());
  for (const auto& [name, to] : refusing_addresses()) {
    SCOPED_TRACE(name + " " + to.to_string());
    ASSERT_FALSE(to.is_ip() && to.port() == 0);
    Outcome out;
    auto connector = out.connect(loop, to, 5s);
    EXPECT_EQ(out.calls, 0) << "the handler ran inside connect()";
    ASSERT_TRUE(run_until(
        loop, [&] { return out.calls > 0; }, 3000ms));
    run_for(loop, 100ms, 10ms, 10000);
    EXPECT_EQ(out.calls, 1);
    EXPECT_TRUE(IsErrc(out.ec, std::errc::connection_refused));
    EXPECT_FALSE(out.socket) << "a socket came with an error";
    EXPECT_FALSE(connector->pending());
    EXPECT_EQ(loop.watcher_count(), 0u);
    EXPECT_EQ(loop.timer_count(), 0u);
  }
}

TEST_P(ConnectorTest, DroppedHandleStillRunsTheHandlerOnce) {
  FdLeakCheck leaks;
  Reactor loop(backend());
  for (const Transport& t : stream_transports()) {
    SCOPED_TRACE(name(t));
    std::vector<Socket> accepted;
    Listener listener(loop, bind_address(t),
                      [&](Socket s, const Address&) { accepted.push_back(std::move(s)); });
    Outcome ok;
    ok.connect(loop, listener.address());  // the handle is dropped at once
    Outcome refused;
    for (const auto& [name, to] : refusing_addresses()) {
      if (to.family() == listener.address().family() ||
          (to.is_unix() && listener.address().is_unix())) {
        refused.connect(loop, to, 5s);
      }
    }
    EXPECT_EQ(ok.calls + refused.calls, 0) << "a handler ran inside connect()";
    ASSERT_TRUE(run_until(
        loop, [&] { return ok.calls > 0 && refused.calls > 0; }, 3000ms));
    run_for(loop, 100ms, 10ms, 10000);
    EXPECT_EQ(ok.calls, 1);
    EXPECT_FALSE(ok.ec) << ok.ec.message();
    EXPECT_TRUE(ok.socket);
    EXPECT_EQ(refused.calls, 1);
    EXPECT_TRUE(IsErrc(refused.ec, std::errc::connection_refused));
    EXPECT_FALSE(refused.socket);
  }
}

// Close while connecting.
TEST_P(ConnectorTest, CancelReportsOnceAndNeverInsideCancel) {
  FdLeakCheck leaks;
  Reactor loop(backend());
  for (const Transport& t : stream_transports()) {
    SCOPED_TRACE(name(t));
    std::vector<Socket> accepted;
    Listener listener(loop, bind_address(t),
                      [&](Socket s, const Address&) { accepted.push_back(std::move(s)); });
    Outcome out;
    auto connector = out.connect(loop, listener.address(), 5s);
    out.inside = true;
    connector->cancel();
    connector->cancel();  // idempotent
    out.inside = false;
    EXPECT_EQ(out.calls, 0) << "the handler ran inside connect() or cancel()";
    EXPECT_FALSE(connector->pending());
    ASSERT_TRUE(run_until(
        loop, [&] { return out.calls > 0; }, 3000ms));
    run_for(loop, 100ms, 10ms, 10000);
    EXPECT_EQ(out.calls, 1);
    EXPECT_EQ(out.calls_inside_our_call, 0);
    // A connect that had already completed inside connect() (usual for Unix sockets) may be
    // reported as a success; otherwise the cancel wins.
    if (out.ec) {
      EXPECT_TRUE(IsErrc(out.ec, std::errc::operation_canceled));
      EXPECT_FALSE(out.socket);
    } else {
      EXPECT_TRUE(out.socket);
    }
    EXPECT_EQ(loop.timer_count(), 0u);
    EXPECT_EQ(loop.watcher_count(), 1u) << "only the listener should be watched";
  }
}

// A 100 ms timeout against a loopback listener whose backlog is full.
TEST_P(ConnectorTest, TimesOutOnceAgainstAFullBacklog) {
  FdLeakCheck leaks;
  Reactor loop(backend());
  for (const Transport& t : stream_transports()) {
    SCOPED_TRACE(name(t));
    // A listening socket nobody accepts from, backlog 0, filled by raw clients.
    std::error_code ec;
    Socket server = Socket::open(bind_address(t), SOCK_STREAM, ec);
    ASSERT_FALSE(ec);
    ASSERT_FALSE(server.bind(bind_address(t)));
    ASSERT_FALSE(server.listen(0));
    const Address at = server.local_address(ec);
    ASSERT_FALSE(ec);
    std::vector<Fd> fillers;
    for (int i = 0; i < 4; ++i) {
      int err = 0;
      Fd f = raw_connect(at, err);
      if (f.get() >= 0) fillers.push_back(std::move(f));
    }
    run_for(loop, 50ms, 10ms, 10000);

    Outcome out;
    const auto t0 = std::chrono::steady_clock::now();
    auto connector = out.connect(loop, at, 100ms);
    EXPECT_EQ(out.calls, 0) << "the handler ran inside connect()";
    ASSERT_TRUE(run_until(
        loop, [&] { return out.calls > 0; }, 3000ms));
    const auto took = std::chrono::steady_clock::now() - t0;
    run_for(loop, 100ms, 10ms, 10000);
    EXPECT_EQ(out.calls, 1);
    if (out.socket) {
      std::error_code peer_ec;
      out.socket.peer_address(peer_ec);
      ADD_FAILURE() << "the handler got a socket although nobody accepts; getpeername on it says "
                    << (peer_ec ? peer_ec.message() : std::string("connected"));
    }
    if (!is_unix(t)) {
      EXPECT_TRUE(IsErrc(out.ec, std::errc::timed_out));
      EXPECT_GE(took, 100ms);
    } else {
      // Unix: a full backlog makes a non-blocking connect fail with EAGAIN at once; that,
      // or waiting out the timeout, are both honest answers.
      EXPECT_TRUE(out.ec == std::errc::timed_out ||
                  out.ec == std::errc::resource_unavailable_try_again)
          << (out.ec ? out.ec.message() : std::string("no error"));
    }
    EXPECT_LT(took, 1000ms);
    EXPECT_EQ(loop.watcher_count(), 0u);
    EXPECT_EQ(loop.timer_count(), 0u);
  }
}

REACTOR_INSTANTIATE_ALL_BACKENDS(ConnectorTest);

}  // namespace
