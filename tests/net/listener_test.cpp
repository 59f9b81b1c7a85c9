// SPDX-License-Identifier: MIT
// Listener on every backend, over TCP v4, TCP v6 (when ::1 exists) and Unix stream: port 0,
// accepting a burst in bounded batches, a connection limit built on pause/resume, fd exhaustion
// back-off (EMFILE), closing the accepted socket and destroying the Listener inside the accept
// handler, pause/resume, and constructor failures that leak nothing.
#include "reactor/net/listener.hpp"

#include <gtest/gtest.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include "reactor/core/reactor.hpp"
#include "reactor/net/address.hpp"
#include "reactor/net/connection.hpp"
#include "reactor/net/socket.hpp"
#include "tests/support/backends.hpp"
#include "tests/support/fds.hpp"
#include "tests/support/io.hpp"
#include "tests/support/loop.hpp"
#include "tests/support/patterns.hpp"
#include "tests/support/processes.hpp"
#include "tests/support/sockets.hpp"

namespace {

using namespace std::chrono_literals;
using namespace reactor::test;
using reactor::Address;
using reactor::CloseReason;
using reactor::Connection;
using reactor::Listener;
using reactor::Reactor;
using reactor::Socket;
using reactor::test::drain_into;
using reactor::test::Fd;
using reactor::test::FdLeakCheck;
using reactor::test::limit_leaving_free;
using reactor::test::open_fd_count;
using reactor::test::PeerInput;
using reactor::test::raw_connect;
using reactor::test::run_for;
using reactor::test::run_iterations;
using reactor::test::run_until;
using reactor::test::ScopedFdLimit;
using reactor::test::stream_transports;
using reactor::test::thread_cpu;
using reactor::test::Transport;
using reactor::test::wait_fd;

class ListenerTest : public reactor::test::BackendTest {
 protected:
  void SetUp() override { reactor::test::warm_up(backend()); }
};

/// `n` raw clients connecting to `to`, each waited for until its connect completed (the
/// kernel finishes loopback handshakes without an accept()).
std::vector<Fd> connect_clients(const Address& to, std::size_t n) {
  std::vector<Fd> clients;
  for (std::size_t i = 0; i < n; ++i) {
    int err = 0;
    Fd fd = raw_connect(to, err);
    EXPECT_TRUE(fd.get() >= 0) << "client " << i << ": " << std::strerror(err);
    if (fd.get() < 0) break;
    clients.push_back(std::move(fd));
  }
  for (Fd& c : clients) EXPECT_NE(wait_fd(c.get(), POLLOUT, 5000) & POLLOUT, 0);
  return clients;
}

/// True when the client's connection was ended by the other side (EOF or reset) within
/// `ms`; data that arrives first is skipped.
bool ended_by_peer(int fd, int ms) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
  while (std::chrono::steady_clock::now() < deadline) {
    wait_fd(fd, POLLIN, 50);
    PeerInput in;
    drain_into(fd, in, std::size_t{1} << 20);
    if (in.eof) return true;
    if (in.error != 0) return in.error == ECONNRESET || in.error == EPIPE;
  }
  return false;
}

// ---------------------------------------------------------------------------------------

TEST_P(ListenerTest, PortZeroGetsARealPortAndAccepts) {
  FdLeakCheck leaks;
  Reactor loop(backend());
  for (const Transport& t : stream_transports()) {
    SCOPED_TRACE(name(t));
    const Address bind = bind_address(t);
    std::vector<Socket> accepted;
    std::vector<Address> peers;
    Listener listener(loop, bind, [&](Socket s, const Address& peer) {
      accepted.push_back(std::move(s));
      peers.push_back(peer);
    });
    EXPECT_GE(listener.fd(), 0);
    EXPECT_TRUE(listener.accepting());
    EXPECT_EQ(listener.address().family(), bind.family());
    if (!is_unix(t)) {
      EXPECT_NE(listener.address().port(), 0) << listener.address().to_string();
    } else {
      EXPECT_EQ(listener.address(), bind) << listener.address().to_string();
    }
    std::vector<Fd> clients = connect_clients(listener.address(), 1);
    ASSERT_EQ(clients.size(), 1u);
    ASSERT_TRUE(run_until(
        loop, [&] { return !accepted.empty(); }, 2000ms));
    ASSERT_EQ(accepted.size(), 1u);
    EXPECT_TRUE(accepted[0]);
    std::error_code ec;
    EXPECT_EQ(accepted[0].local_address(ec), listener.address());
    if (!is_unix(t)) {
      const Address client_side = Socket(::dup(clients[0].get())).local_address(ec);
      EXPECT_EQ(peers[0], client_side) << peers[0].to_string();
    }
    // Non-blocking, as promised: a read with nothing there says EAGAIN instead of blocking.
    char c;
    EXPECT_EQ(::recv(accepted[0].fd(), &c, 1, 0), -1);
    EXPECT_TRUE(errno == EAGAIN || errno == EWOULDBLOCK);
  }
}

TEST_P(ListenerTest, ManyClientsAtOnceAreAllAcceptedInBoundedBatches) {
  FdLeakCheck leaks;
  Reactor loop(backend());
  for (const Transport& t : stream_transports()) {
    SCOPED_TRACE(name(t));
    constexpr std::size_t kClients = 300;
    Listener::Options options;
    options.accepts_per_event = 8;
    std::vector<Socket> accepted;
    std::set<std::uint16_t> peer_ports;
    std::map<std::uint64_t, unsigned> per_iteration;
    Listener listener(
        loop, bind_address(t),
        [&](Socket s, const Address& peer) {
          accepted.push_back(std::move(s));
          peer_ports.insert(peer.port());
          ++per_iteration[loop.iterations()];
        },
        options);
    std::vector<Fd> clients = connect_clients(listener.address(), kClients);
    ASSERT_EQ(clients.size(), kClients);
    ASSERT_TRUE(run_until(
        loop, [&] { return accepted.size() == kClients; }, 10000ms))
        << accepted.size() << " of " << kClients;
    run_for(loop, 50ms, 10ms, 10000);
    EXPECT_EQ(accepted.size(), kClients);
    unsigned most = 0;
    for (const auto& [iteration, n] : per_iteration) most = std::max(most, n);
    EXPECT_LE(most, 8u) << "more than accepts_per_event accepts in one iteration";
    EXPECT_GE(per_iteration.size(), kClients / 8);
    if (!is_unix(t)) {
      EXPECT_EQ(peer_ports.size(), kClients) << "the same peer reported twice";
    }
    for (const Socket& s : accepted) EXPECT_TRUE(s);
  }
}

// A connection limit built on pause()/resume(), as a net-layer user writes it: limit 100,
// 300 clients. pause() inside the accept handler stops the batch at once; while paused with
// clients waiting the loop does not spin; resume() takes a waiting client at once.
TEST_P(ListenerTest, PauseAtALimitHoldsItAndResumeTakesTheNextClientAtOnce) {
  FdLeakCheck leaks;
  Reactor loop(backend());
  for (const Transport& t : stream_transports()) {
    SCOPED_TRACE(name(t));
    constexpr std::size_t kLimit = 100;
    constexpr std::size_t kClients = 300;
    std::vector<Socket> held;
    std::size_t accepted = 0;
    std::size_t most_held = 0;
    Listener* self = nullptr;
    Listener listener(loop, bind_address(t), [&](Socket s, const Address&) {
      ++accepted;
      held.push_back(std::move(s));
      most_held = std::max(most_held, held.size());
      if (held.size() >= kLimit) self->pause();
    });
    self = &listener;
    // A connection ends: free its slot and accept again.
    auto release = [&](std::size_t n) {
      held.erase(held.begin(), held.begin() + static_cast<std::ptrdiff_t>(n));
      listener.resume();
    };

    std::vector<Fd> clients = connect_clients(listener.address(), kClients);
    ASSERT_EQ(clients.size(), kClients);
    ASSERT_TRUE(run_until(
        loop, [&] { return accepted >= kLimit; }, 5000ms))
        << accepted;
    run_for(loop, 50ms, 10ms, 10000);
    EXPECT_EQ(accepted, kLimit) << "accepted past a pause() in the handler";
    EXPECT_FALSE(listener.accepting()) << "still accepting while paused";

    // Full and idle, with 200 clients waiting in the backlog: no accept spin, little CPU.
    const auto cpu_before = thread_cpu();
    const std::uint64_t idle = run_for(loop, 500ms, 100ms, 10000).iterations;
    const auto cpu = thread_cpu() - cpu_before;
    EXPECT_LE(idle, 20u) << "the loop spins while the listener is paused";
    EXPECT_LT(cpu, 150ms) << "CPU used while full and idle";
    EXPECT_EQ(accepted, kLimit);

    // A slot frees: accepting resumes at once and a waiting client is taken within 100 ms.
    const std::uint64_t before = loop.iterations();
    const auto t0 = std::chrono::steady_clock::now();
    release(1);
    EXPECT_TRUE(listener.accepting()) << "not re-armed by resume()";
    ASSERT_TRUE(run_until(
        loop, [&] { return accepted == kLimit + 1; }, 1000ms, 5ms));
    const auto took = std::chrono::steady_clock::now() - t0;
    EXPECT_LE(took, 100ms) << std::chrono::duration<double, std::milli>(took).count() << " ms";
    EXPECT_LE(loop.iterations() - before, 3u);
    EXPECT_FALSE(listener.accepting());

    // The rest, freeing 30 slots whenever the limit is reached; never more than 100 held.
    const auto deadline = std::chrono::steady_clock::now() + 10s;
    while (accepted < kClients && std::chrono::steady_clock::now() < deadline) {
      if (held.size() == kLimit) release(30);
      loop.run_once(10ms);
      ASSERT_LE(held.size(), kLimit);
    }
    EXPECT_EQ(accepted, kClients);
    EXPECT_EQ(most_held, kLimit);
    release(held.size());
    EXPECT_TRUE(listener.accepting());
  }
}

// EMFILE: fewer free fds than waiting clients.
TEST_P(ListenerTest, FdExhaustionBacksOffWithoutSpinningAndRecovers) {
  FdLeakCheck leaks;
  Reactor loop(backend());
  for (const Transport& t : stream_transports()) {
    SCOPED_TRACE(name(t));
    constexpr std::size_t kClients = 10;
    std::vector<Socket> accepted;
    std::size_t total = 0;
    Listener listener(loop, bind_address(t), [&](Socket s, const Address&) {
      ++total;
      accepted.push_back(std::move(s));
    });
    std::vector<Fd> clients = connect_clients(listener.address(), kClients);
    ASSERT_EQ(clients.size(), kClients);
    {
      ScopedFdLimit limit;
      ASSERT_TRUE(limit.set_soft(limit_leaving_free(3)));
      ASSERT_TRUE(run_until(
          loop, [&] { return listener.backoffs() > 0; }, 2000ms))
          << "no back-off with no fds left; accepted " << total;
      EXPECT_EQ(total, 3u);

      const auto cpu_before = thread_cpu();
      const std::uint64_t idle = run_for(loop, 500ms, 100ms, 10000).iterations;
      const auto cpu = thread_cpu() - cpu_before;
      EXPECT_LE(idle, 20u) << "the loop spins on EMFILE";
      EXPECT_LT(cpu, 150ms) << "CPU used while backing off";
      EXPECT_EQ(total, 3u);
      EXPECT_GE(listener.backoffs(), 2u) << "accepting was not retried";

      // Freeing fds (closing what was accepted) lets the next clients in, limit unchanged.
      accepted.clear();
      ASSERT_TRUE(run_until(
          loop, [&] { return total >= 6; }, 3000ms))
          << total;
      EXPECT_EQ(total, 6u);
    }
    // Limit restored: everyone waiting is accepted; nobody was dropped.
    ASSERT_TRUE(run_until(
        loop, [&] { return total == kClients; }, 3000ms))
        << total;
    for (const Socket& s : accepted) EXPECT_TRUE(s);
    accepted.clear();
    for (Fd& c : clients) EXPECT_TRUE(ended_by_peer(c.get(), 1000));
  }
}

// The accepted socket closed inside the accept handler, three ways.
TEST_P(ListenerTest, ClosingTheAcceptedSocketInsideTheHandlerIsSafe) {
  FdLeakCheck leaks;
  Reactor loop(backend());
  for (const Transport& t : stream_transports()) {
    SCOPED_TRACE(name(t));
    constexpr std::size_t kClients = 30;
    std::size_t accepted = 0;
    int data_calls = 0;
    std::vector<CloseReason> closes;
    Listener listener(loop, bind_address(t), [&](Socket s, const Address&) {
      switch (accepted++ % 3) {
        case 0: {  // moved out and dropped
          Socket gone = std::move(s);
          break;
        }
        case 1:  // closed explicitly
          s.close();
          EXPECT_FALSE(s);
          break;
        default: {  // wrapped in a Connection, started and closed at once
          auto c = Connection::make(loop, std::move(s));
          c->on_data([&](Connection&, reactor::Buffer&) { ++data_calls; });
          c->on_close([&](Connection&, CloseReason r, std::error_code) { closes.push_back(r); });
          c->start();
          c->close();
          break;
        }
      }
    });
    std::vector<Fd> clients = connect_clients(listener.address(), kClients);
    ASSERT_EQ(clients.size(), kClients);
    for (Fd& c : clients) ::send(c.get(), "hello", 5, MSG_NOSIGNAL);
    ASSERT_TRUE(run_until(
        loop, [&] { return accepted == kClients; }, 5000ms))
        << accepted;
    run_for(loop, 100ms, 10ms, 10000);
    EXPECT_EQ(accepted, kClients);
    EXPECT_EQ(data_calls, 0) << "data delivered after close()";
    EXPECT_EQ(closes.size(), kClients / 3);
    for (CloseReason r : closes) EXPECT_EQ(r, CloseReason::local);
    for (Fd& c : clients) EXPECT_TRUE(ended_by_peer(c.get(), 1000));
    // The closed connections linger (their "hello" is unread) until their clients hang up;
    // then only the listener is watched.
    clients.clear();
    EXPECT_TRUE(run_until(
        loop, [&] { return loop.watcher_count() == 1u; }, 500ms))
        << loop.watcher_count() << " watchers: only the listener should be left";
  }
}

// The Listener destroyed inside its own accept handler with more clients waiting.
TEST_P(ListenerTest, DestroyedInsideItsHandlerAcceptsNothingMore) {
  FdLeakCheck leaks;
  Reactor loop(backend());
  for (const Transport& t : stream_transports()) {
    SCOPED_TRACE(name(t));
    std::optional<Listener> listener;
    std::vector<Socket> sockets;
    std::size_t accepted = 0;
    listener.emplace(loop, bind_address(t), [&](Socket s, const Address&) {
      ++accepted;
      sockets.push_back(std::move(s));
      listener.reset();
    });
    const std::size_t watched = loop.watcher_count();
    std::vector<Fd> clients = connect_clients(listener->address(), 10);
    ASSERT_EQ(clients.size(), 10u);
    ASSERT_TRUE(run_until(
        loop, [&] { return accepted > 0; }, 2000ms));
    run_for(loop, 100ms, 10ms, 10000);
    EXPECT_EQ(accepted, 1u) << "accepted after the Listener was destroyed";
    EXPECT_FALSE(listener.has_value());
    EXPECT_EQ(loop.watcher_count(), watched - 1);
    ASSERT_EQ(sockets.size(), 1u);
    EXPECT_TRUE(sockets[0]);
    sockets.clear();
    // The listening socket is closed: every client is ended (the waiting ones reset).
    for (Fd& c : clients) EXPECT_TRUE(ended_by_peer(c.get(), 1000));
    run_iterations(loop, 5, 1ms);
  }
}

TEST_P(ListenerTest, PauseStopsAcceptingUntilResume) {
  FdLeakCheck leaks;
  Reactor loop(backend());
  for (const Transport& t : stream_transports()) {
    SCOPED_TRACE(name(t));
    std::vector<Socket> accepted;
    Listener listener(loop, bind_address(t),
                      [&](Socket s, const Address&) { accepted.push_back(std::move(s)); });
    listener.pause();
    EXPECT_FALSE(listener.accepting());
    std::vector<Fd> clients = connect_clients(listener.address(), 5);
    const std::uint64_t idle = run_for(loop, 300ms, 100ms, 10000).iterations;
    EXPECT_TRUE(accepted.empty()) << "accepted while paused";
    EXPECT_LE(idle, 10u) << "a paused listener with clients waiting makes the loop spin";
    listener.resume();
    EXPECT_TRUE(listener.accepting());
    ASSERT_TRUE(run_until(
        loop, [&] { return accepted.size() == 5; }, 2000ms))
        << accepted.size();
  }
}

// Constructions that cannot work throw each time and leave no fd behind.
TEST_P(ListenerTest, BindFailuresThrowAndLeakNothing) {
  FdLeakCheck leaks;
  Reactor loop(backend());
  auto handler = [](Socket, const Address&) { ADD_FAILURE() << "accepted"; };
  for (const Transport& t : stream_transports()) {
    SCOPED_TRACE(name(t));
    Listener taken(loop, bind_address(t), handler);
    const std::size_t fds = open_fd_count();
    const std::size_t watchers = loop.watcher_count();
    int in_use = 0;
    int empty = 0;
    for (int i = 0; i < 1000; ++i) {
      try {
        Listener again(loop, taken.address(), handler);
      } catch (const std::system_error& e) {
        in_use += e.code() == std::errc::address_in_use ? 1 : 0;
      }
      try {
        Listener nowhere(loop, Address{}, handler);
      } catch (const std::system_error& e) {
        empty += e.code() == std::errc::invalid_argument ? 1 : 0;
      }
    }
    EXPECT_EQ(in_use, 1000) << "not every bind to a port in use threw EADDRINUSE";
    EXPECT_EQ(empty, 1000) << "not every empty address threw EINVAL";
    EXPECT_EQ(open_fd_count(), fds);
    EXPECT_EQ(loop.watcher_count(), watchers);
    EXPECT_TRUE(taken.accepting());
  }
}

REACTOR_INSTANTIATE_ALL_BACKENDS(ListenerTest);

}  // namespace
