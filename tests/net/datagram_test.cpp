// SPDX-License-Identifier: MIT
// DatagramSocket on every backend, over UDP v4, UDP v6 (when ::1 exists) and Unix datagram:
// sizes (boundaries, truncation, EMSGSIZE), an ICMP error (on a connected UDP socket it
// reaches a callback, the socket stays usable and the loop does not stall or spin), and the
// basics (sender addresses, autobind, the per-iteration read bound, stop, destruction inside
// the handler, constructor failures that hold no fd).
#include "reactor/net/datagram.hpp"

#include <gtest/gtest.h>
#include <sys/socket.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "reactor/core/reactor.hpp"
#include "reactor/net/address.hpp"
#include "tests/support/backends.hpp"
#include "tests/support/errors.hpp"
#include "tests/support/fds.hpp"
#include "tests/support/loop.hpp"
#include "tests/support/patterns.hpp"
#include "tests/support/sockets.hpp"

namespace {

using namespace std::chrono_literals;
using namespace reactor::test;
using reactor::Address;
using reactor::DatagramSocket;
using reactor::Reactor;
using reactor::test::bind_address;
using reactor::test::closed_port;
using reactor::test::datagram_transports;
using reactor::test::FdLeakCheck;
using reactor::test::ipv6_loopback_available;
using reactor::test::IsErrc;
using reactor::test::open_fd_count;
using reactor::test::random_bytes;
using reactor::test::run_for;
using reactor::test::run_until;
using reactor::test::Transport;

class DatagramTest : public reactor::test::BackendTest {
 protected:
  void SetUp() override { reactor::test::warm_up(backend()); }
};

/// One delivered datagram, copied out of the handler.
struct Received {
  std::string data;
  Address from;
  bool truncated = false;
};

/// A ReceiveHandler that appends to `out`.
DatagramSocket::ReceiveHandler collect(std::vector<Received>& out) {
  return [&out](std::string_view data, const Address& from, bool truncated) {
    out.push_back({std::string(data), from, truncated});
  };
}

/// The largest datagram the transport carries in one piece: 65,507 for UDP v4 (65,535 minus
/// the IP and UDP headers), 65,527 for UDP v6 (the payload length field minus the UDP
/// header); for Unix datagram 200,000 when the send buffer allows it, else 65,000.
std::size_t largest_datagram(const Transport& t, int sender_fd) {
  if (bind_address(t).family() == Address::Family::ipv4) return 65507;
  if (bind_address(t).family() == Address::Family::ipv6) return 65527;
  int sndbuf = 0;
  socklen_t len = sizeof sndbuf;
  ::getsockopt(sender_fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, &len);
  return sndbuf > 200000 + 1024 ? 200000 : 65000;
}

/// The smallest datagram the transport refuses with EMSGSIZE.
std::size_t oversized_datagram(const Transport& t, int sender_fd) {
  if (bind_address(t).family() == Address::Family::ipv4) return 65508;
  if (bind_address(t).family() == Address::Family::ipv6) return 65528;
  int sndbuf = 0;
  socklen_t len = sizeof sndbuf;
  ::getsockopt(sender_fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, &len);
  return static_cast<std::size_t>(sndbuf) + 1;  // the kernel refuses len > sndbuf - 32
}

void grow_buffers(int fd) {
  const int big = 4 << 20;  // capped by the kernel at rmem_max / wmem_max
  ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &big, sizeof big);
  ::setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &big, sizeof big);
}

// ---------------------------------------------------------------------------------------
// Sizes

TEST_P(DatagramTest, SizesKeepBoundariesAndContent) {
  FdLeakCheck leaks;
  Reactor loop(backend());
  std::mt19937_64 rng(20240611);
  for (const Transport& t : datagram_transports()) {
    SCOPED_TRACE(name(t));
    DatagramSocket::Options rx_options;
    rx_options.max_datagram = 256 * 1024;
    DatagramSocket rx(loop, bind_address(t), rx_options);
    DatagramSocket tx(loop, bind_address(t));
    grow_buffers(rx.fd());
    grow_buffers(tx.fd());
    std::vector<Received> got;
    rx.on_datagram(collect(got));
    ASSERT_FALSE(rx.start());

    const std::size_t big = largest_datagram(t, tx.fd());
    const std::vector<std::size_t> sizes = {0, 1, big, 0, 1, big};
    std::vector<std::string> sent;
    for (std::size_t size : sizes) {
      sent.push_back(random_bytes(rng, size));
      const std::error_code ec = tx.send_to(rx.local_address(), sent.back());
      ASSERT_FALSE(ec) << "size " << size << ": " << ec.message();
      // At most one big datagram in flight, so that a receive buffer of any size holds them.
      if (size == big) {
        ASSERT_TRUE(run_until(
            loop, [&] { return got.size() == sent.size(); }, 5000ms))
            << "got " << got.size() << " of " << sent.size();
      }
    }
    ASSERT_TRUE(run_until(
        loop, [&] { return got.size() == sent.size(); }, 5000ms))
        << "got " << got.size() << " of " << sent.size();
    for (std::size_t i = 0; i < sent.size(); ++i) {
      SCOPED_TRACE("datagram " + std::to_string(i) + " of " + std::to_string(sizes[i]) + " bytes");
      EXPECT_EQ(got[i].data.size(), sent[i].size());
      EXPECT_TRUE(got[i].data == sent[i]) << "content differs";
      EXPECT_FALSE(got[i].truncated);
      EXPECT_EQ(got[i].from, tx.local_address()) << got[i].from.to_string();
    }
    // Nothing more arrives: no datagram split in two, none duplicated.
    const std::size_t before = got.size();
    run_for(loop, 50ms, 10ms, 10000);
    EXPECT_EQ(got.size(), before);
  }
}

TEST_P(DatagramTest, SmallReceiveBufferTruncatesAndReportsIt) {
  FdLeakCheck leaks;
  Reactor loop(backend());
  std::mt19937_64 rng(7);
  for (const Transport& t : datagram_transports()) {
    for (std::size_t max : {std::size_t{1}, std::size_t{100}, std::size_t{4096}}) {
      SCOPED_TRACE(std::string(name(t)) + " max_datagram " + std::to_string(max));
      DatagramSocket::Options rx_options;
      rx_options.max_datagram = max;
      DatagramSocket rx(loop, bind_address(t), rx_options);
      DatagramSocket tx(loop, bind_address(t));
      std::vector<Received> got;
      rx.on_datagram(collect(got));
      ASSERT_FALSE(rx.start());

      // Exactly the size (kept whole), one more (cut), far more (cut), then small ones that
      // must arrive whole: the cut datagram's tail is dropped, not delivered as the next one.
      const std::vector<std::size_t> sizes = {max, max + 1, 20000, 0, max > 1 ? max - 1 : 1};
      std::vector<std::string> sent;
      for (std::size_t size : sizes) {
        sent.push_back(random_bytes(rng, size));
        ASSERT_FALSE(tx.send_to(rx.local_address(), sent.back())) << "size " << size;
      }
      ASSERT_TRUE(run_until(
          loop, [&] { return got.size() >= sent.size(); }, 5000ms))
          << "got " << got.size() << " of " << sent.size();
      run_for(loop, 30ms, 10ms, 10000);
      ASSERT_EQ(got.size(), sent.size());
      for (std::size_t i = 0; i < sent.size(); ++i) {
        SCOPED_TRACE("datagram of " + std::to_string(sizes[i]) + " bytes");
        const bool cut = sizes[i] > max;
        EXPECT_EQ(got[i].truncated, cut);
        ASSERT_EQ(got[i].data.size(), cut ? max : sizes[i]);
        EXPECT_TRUE(got[i].data == sent[i].substr(0, got[i].data.size())) << "prefix differs";
      }
    }
  }
}

TEST_P(DatagramTest, OversizedSendReturnsMessageTooLong) {
  FdLeakCheck leaks;
  Reactor loop(backend());
  std::mt19937_64 rng(99);
  for (const Transport& t : datagram_transports()) {
    SCOPED_TRACE(name(t));
    DatagramSocket rx(loop, bind_address(t));
    DatagramSocket tx(loop, bind_address(t));
    std::vector<Received> got;
    rx.on_datagram(collect(got));
    int errors = 0;
    tx.on_error([&](std::error_code) { ++errors; });
    ASSERT_FALSE(rx.start());
    ASSERT_FALSE(tx.start());

    const std::string huge = random_bytes(rng, oversized_datagram(t, tx.fd()));
    EXPECT_TRUE(IsErrc(tx.send_to(rx.local_address(), huge), std::errc::message_size))
        << huge.size() << " bytes with send_to";
    ASSERT_FALSE(tx.connect(rx.local_address()));
    EXPECT_TRUE(IsErrc(tx.send(huge), std::errc::message_size))
        << huge.size() << " bytes with send";

    // Nothing (no piece of it) arrives, and the socket still works.
    run_for(loop, 50ms, 10ms, 10000);
    EXPECT_TRUE(got.empty()) << got.size() << " datagrams arrived, first " << got[0].data.size()
                             << " bytes";
    ASSERT_FALSE(tx.send("after"));
    ASSERT_TRUE(run_until(
        loop, [&] { return !got.empty(); }, 5000ms));
    EXPECT_EQ(got[0].data, "after");
    EXPECT_EQ(errors, 0) << "an EMSGSIZE send also went through on_error";
  }
}

// ---------------------------------------------------------------------------------------
// An ICMP error on a connected socket

TEST_P(DatagramTest, ConnectedSendToClosedPortReportsRefusedAndStaysUsable) {
  FdLeakCheck leaks;
  Reactor loop(backend());
  std::vector<Address> loopbacks = {Address::ipv4_loopback(0)};
  if (ipv6_loopback_available()) loopbacks.push_back(Address::ipv6_loopback(0));
  for (const Address& any : loopbacks) {
    SCOPED_TRACE(any.to_string());
    const std::uint16_t port = closed_port(any, SOCK_DGRAM);
    ASSERT_NE(port, 0);
    const Address closed = any.with_port(port);

    DatagramSocket sock(loop, any);
    int refused_by_callback = 0;
    int refused_by_send = 0;
    std::vector<std::error_code> other_errors;
    sock.on_error([&](std::error_code ec) {
      if (ec == std::errc::connection_refused) {
        ++refused_by_callback;
      } else {
        other_errors.push_back(ec);
      }
    });
    std::vector<Received> got;
    sock.on_datagram(collect(got));
    ASSERT_FALSE(sock.start());
    ASSERT_FALSE(sock.connect(closed));

    auto send_and_note = [&] {
      const std::error_code ec = sock.send("ping");
      if (ec == std::errc::connection_refused) {
        ++refused_by_send;
      } else {
        EXPECT_FALSE(ec) << ec.message();
      }
    };
    send_and_note();
    // The ICMP port-unreachable comes back at once on loopback; give the callback path the
    // first chance, then send again now and then (a later send may report it instead).
    const std::uint64_t start_iterations = loop.iterations();
    const auto deadline = std::chrono::steady_clock::now() + 2s;
    auto next_send = std::chrono::steady_clock::now() + 200ms;
    while (refused_by_callback + refused_by_send == 0 &&
           std::chrono::steady_clock::now() < deadline) {
      loop.run_once(10ms);
      if (std::chrono::steady_clock::now() >= next_send) {
        send_and_note();
        next_send += 200ms;
      }
    }
    EXPECT_GE(refused_by_callback + refused_by_send, 1)
        << "ECONNREFUSED was reported neither through on_error nor by send()";
    EXPECT_TRUE(other_errors.empty()) << "other error: " << other_errors.front().message();
    EXPECT_GT(loop.iterations(), start_iterations);
    EXPECT_TRUE(got.empty());

    // Still usable: send_to a live peer, then connect to it and exchange both ways.
    DatagramSocket peer(loop, any);
    std::vector<Received> peer_got;
    peer.on_datagram(collect(peer_got));
    ASSERT_FALSE(peer.start());
    EXPECT_FALSE(sock.send_to(peer.local_address(), "via send_to"));
    ASSERT_TRUE(run_until(
        loop, [&] { return !peer_got.empty(); }, 2000ms))
        << "send_to lost";
    EXPECT_EQ(peer_got[0].data, "via send_to");
    EXPECT_EQ(peer_got[0].from, sock.local_address());

    ASSERT_FALSE(sock.connect(peer.local_address()));
    EXPECT_FALSE(sock.send("via send"));
    EXPECT_FALSE(peer.send_to(sock.local_address(), "reply"));
    ASSERT_TRUE(run_until(
        loop, [&] { return peer_got.size() >= 2 && !got.empty(); }, 2000ms));
    EXPECT_EQ(peer_got[1].data, "via send");
    EXPECT_EQ(got[0].data, "reply");
    EXPECT_EQ(got[0].from, peer.local_address());

    // The loop keeps iterating and does not spin on a stale error: ~6 waits of 50 ms.
    const std::uint64_t idle = run_for(loop, 300ms, 50ms, 10000).iterations;
    EXPECT_GE(idle, 3u) << "the loop stalled";
    EXPECT_LE(idle, 12u) << "the loop spins after the ICMP error";
  }
}

// ---------------------------------------------------------------------------------------
// Basics

TEST_P(DatagramTest, EmptyUnixAddressAutobindsAndCanBeAnswered) {
  FdLeakCheck leaks;
  Reactor loop(backend());
  const sa_family_t family = AF_UNIX;
  std::error_code ec;
  const Address empty =
      Address::from_native(reinterpret_cast<const sockaddr*>(&family), sizeof family, ec);
  ASSERT_FALSE(ec);
  DatagramSocket client(loop, empty);
  EXPECT_EQ(client.local_address().family(), Address::Family::unix_abstract)
      << client.local_address().to_string();
  DatagramSocket server(loop, reactor::test::unique_unix_address("autobind"));
  std::vector<Received> at_server;
  std::vector<Received> at_client;
  server.on_datagram([&](std::string_view data, const Address& from, bool truncated) {
    at_server.push_back({std::string(data), from, truncated});
    EXPECT_FALSE(server.send_to(from, "answer"));
  });
  client.on_datagram(collect(at_client));
  ASSERT_FALSE(server.start());
  ASSERT_FALSE(client.start());
  ASSERT_FALSE(client.send_to(server.local_address(), "question"));
  ASSERT_TRUE(run_until(
      loop, [&] { return !at_client.empty(); }, 2000ms));
  ASSERT_EQ(at_server.size(), 1u);
  EXPECT_EQ(at_server[0].from, client.local_address());
  EXPECT_EQ(at_client[0].data, "answer");
}

TEST_P(DatagramTest, ReadsPerIterationAreBounded) {
  FdLeakCheck leaks;
  Reactor loop(backend());
  for (const Transport& t : datagram_transports()) {
    SCOPED_TRACE(name(t));
    DatagramSocket::Options options;
    options.reads_per_iteration = 4;
    DatagramSocket rx(loop, bind_address(t), options);
    DatagramSocket tx(loop, bind_address(t));
    std::map<std::uint64_t, int> per_iteration;
    std::vector<std::string> got;
    rx.on_datagram([&](std::string_view data, const Address&, bool) {
      ++per_iteration[loop.iterations()];
      got.emplace_back(data);
    });
    // Up to 40 queued at once; a Unix datagram queue may hold fewer (net.unix.max_dgram_qlen,
    // 10 by default): EAGAIN ends the burst there.
    std::size_t count = 0;
    for (; count < 40; ++count) {
      const std::error_code ec = tx.send_to(rx.local_address(), "d" + std::to_string(count));
      if (ec == std::errc::resource_unavailable_try_again) break;
      ASSERT_FALSE(ec) << ec.message();
    }
    ASSERT_GE(count, 9u);
    ASSERT_FALSE(rx.start());
    ASSERT_TRUE(run_until(
        loop, [&] { return got.size() == count; }, 2000ms))
        << got.size();
    for (std::size_t i = 0; i < count; ++i) EXPECT_EQ(got[i], "d" + std::to_string(i));
    int most = 0;
    for (const auto& [iteration, n] : per_iteration) most = std::max(most, n);
    EXPECT_LE(most, 4) << "more than reads_per_iteration datagrams in one iteration";
    EXPECT_GE(per_iteration.size(), (count + 3) / 4);
  }
}

TEST_P(DatagramTest, StopStopsReceivingButNotSending) {
  FdLeakCheck leaks;
  Reactor loop(backend());
  for (const Transport& t : datagram_transports()) {
    SCOPED_TRACE(name(t));
    DatagramSocket a(loop, bind_address(t));
    DatagramSocket b(loop, bind_address(t));
    std::vector<Received> at_a;
    std::vector<Received> at_b;
    a.on_datagram(collect(at_a));
    b.on_datagram(collect(at_b));
    ASSERT_FALSE(a.start());
    ASSERT_FALSE(b.start());
    a.stop();
    for (int i = 0; i < 3; ++i) ASSERT_FALSE(b.send_to(a.local_address(), "x"));
    const std::uint64_t idle = run_for(loop, 200ms, 50ms, 10000).iterations;
    EXPECT_TRUE(at_a.empty()) << "delivered after stop()";
    EXPECT_LE(idle, 10u) << "a stopped socket with data queued makes the loop spin";
    ASSERT_FALSE(a.send_to(b.local_address(), "still sends"));
    ASSERT_TRUE(run_until(
        loop, [&] { return !at_b.empty(); }, 2000ms));
    EXPECT_EQ(at_b[0].data, "still sends");
    ASSERT_FALSE(a.start());
    ASSERT_TRUE(run_until(
        loop, [&] { return at_a.size() == 3; }, 2000ms))
        << at_a.size();
  }
}

TEST_P(DatagramTest, DestroyedInsideItsHandlerDeliversNothingMore) {
  FdLeakCheck leaks;
  Reactor loop(backend());
  for (const Transport& t : datagram_transports()) {
    SCOPED_TRACE(name(t));
    std::optional<DatagramSocket> rx;
    rx.emplace(loop, bind_address(t));
    const Address at = rx->local_address();
    DatagramSocket tx(loop, bind_address(t));
    int delivered = 0;
    rx->on_datagram([&](std::string_view, const Address&, bool) {
      ++delivered;
      rx.reset();
    });
    ASSERT_FALSE(rx->start());
    for (int i = 0; i < 8; ++i) ASSERT_FALSE(tx.send_to(at, "pending"));
    ASSERT_TRUE(run_until(
        loop, [&] { return delivered > 0; }, 2000ms));
    run_for(loop, 50ms, 10ms, 10000);
    EXPECT_EQ(delivered, 1);
    EXPECT_EQ(loop.watcher_count(), 0u);
  }
}

TEST_P(DatagramTest, ConstructorFailuresThrowAndHoldNoFd) {
  FdLeakCheck leaks;
  Reactor loop(backend());
  for (const Transport& t : datagram_transports()) {
    SCOPED_TRACE(name(t));
    DatagramSocket taken(loop, bind_address(t));
    const std::size_t fds = open_fd_count();
    int in_use = 0;
    int invalid = 0;
    for (int i = 0; i < 200; ++i) {
      try {
        DatagramSocket again(loop, taken.local_address());
      } catch (const std::system_error& e) {
        in_use += e.code() == std::errc::address_in_use ? 1 : 0;
      }
      try {
        DatagramSocket nowhere(loop, Address{});
      } catch (const std::system_error&) {
        ++invalid;
      }
    }
    EXPECT_EQ(in_use, 200);
    EXPECT_EQ(invalid, 200);
    EXPECT_EQ(open_fd_count(), fds);
    EXPECT_EQ(loop.watcher_count(), 0u);
  }
}

REACTOR_INSTANTIATE_ALL_BACKENDS(DatagramTest);

}  // namespace
