// SPDX-License-Identifier: MIT
// handle_request() and handle_timeout, on every model, stream (TCP) and datagram (UDP):
// no request within options.timeout calls handle_timeout once and returns false; one call
// serves exactly one client, the next waits for the next call.
#include <gtest/gtest.h>

#include <atomic>
#include <future>
#include <string>
#include <thread>

#include "reactor/server/datagram_server.hpp"
#include "reactor/server/stream_server.hpp"
#include "tests/support/backends.hpp"
#include "tests/support/clients.hpp"
#include "tests/support/loop.hpp"
#include "tests/support/servers.hpp"
#include "tests/support/sockets.hpp"
#include "tests/support/time.hpp"

namespace reactor::test {
namespace {

using namespace std::chrono_literals;
using namespace reactor::test;

class HandleRequestTest : public ::testing::TestWithParam<ModelCase> {
 protected:
  ServerOptions options() {
    ServerOptions o = options_for(GetParam().model, GetParam().backend);
    o.timeout = 200ms;
    o.handle_timeout = [this] { ++timeouts_; };
    return o;
  }
  std::atomic<int> timeouts_{0};
};

TEST_P(HandleRequestTest, NoClientCallsHandleTimeoutOnceAndReturnsFalse) {
  StreamServer server(Address::ipv4_loopback(0), echo_service(), options());
  const auto start = SteadyClock::now();
  EXPECT_FALSE(server.handle_request());
  EXPECT_EQ(timeouts_, 1);
  EXPECT_GE(ms_between(start, SteadyClock::now()), 180.0);  // never early
  DatagramServer datagrams(Address::ipv4_loopback(0), datagram_echo_handler(), options());
  EXPECT_FALSE(datagrams.handle_request());
  EXPECT_EQ(timeouts_, 2);
}

TEST_P(HandleRequestTest, EachCallServesExactlyOneStreamClient) {
  StreamServer server(Address::ipv4_loopback(0), echo_service(), options());
  const Address to = server.address();
  auto first = std::async(std::launch::async, [&] { return stream_echo(to, "one\n"); });
  auto second = std::async(std::launch::async, [&] { return stream_echo(to, "two\n"); });
  std::this_thread::sleep_for(100ms);  // both connect meanwhile
  EXPECT_TRUE(server.handle_request());
  EXPECT_EQ(server.stats().accepted, 1u) << "one call accepted more than one client";
  // Exactly one of the two is answered; the other waits in the backlog for the next call.
  auto ready = [](std::future<std::string>& f) {
    return f.wait_for(0ms) == std::future_status::ready;
  };
  EXPECT_TRUE(wait_for([&] { return ready(first) || ready(second); }, 5000ms));
  std::this_thread::sleep_for(200ms);
  EXPECT_NE(ready(first), ready(second)) << "not exactly one client served by one call";
  EXPECT_TRUE(server.handle_request());
  EXPECT_EQ(first.get(), "one\n");
  EXPECT_EQ(second.get(), "two\n");
  EXPECT_EQ(timeouts_, 0);
  server.server_close();
}

TEST_P(HandleRequestTest, EachCallServesExactlyOneDatagram) {
  DatagramServer server(Address::ipv4_loopback(0), datagram_echo_handler(), options());
  const Address to = server.address();
  auto first = std::async(std::launch::async, [&] { return datagram_echo(to, "one"); });
  EXPECT_TRUE(server.handle_request());
  EXPECT_EQ(first.get(), "one");
  auto second = std::async(std::launch::async, [&] { return datagram_echo(to, "two"); });
  EXPECT_TRUE(server.handle_request());
  EXPECT_EQ(second.get(), "two");
  EXPECT_EQ(server.stats().accepted, 2u);
  EXPECT_EQ(timeouts_, 0);
  server.server_close();
}

REACTOR_INSTANTIATE_MODEL(HandleRequestTest, Sync, sync);
REACTOR_INSTANTIATE_MODEL(HandleRequestTest, Threading, threading);
REACTOR_INSTANTIATE_MODEL(HandleRequestTest, Forking, forking);
REACTOR_INSTANTIATE_MODEL(HandleRequestTest, Reactor, reactor);
REACTOR_INSTANTIATE_MODEL(HandleRequestTest, Pool, pool);

}  // namespace
}  // namespace reactor::test
