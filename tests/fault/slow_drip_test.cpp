// SPDX-License-Identifier: MIT
// A slow drip (slowloris), on every backend: a client sends one byte every 20 ms and never
// completes a line. The idle timeout (150 ms) is longer than the drip interval, so each byte
// keeps the connection from being idle; the absolute deadline (500 ms) must cut it anyway,
// at the deadline, not later and not earlier.
// - Connection level (TCP v4): a dripped connection with the deadline and the idle timeout
//   closes with CloseReason::timeout between 500 ms and 500 ms + a generous tolerance after
//   start(); beside it, a dripped connection with the idle timeout alone is still open at
//   1 s (the drip really does defeat the idle timeout) and a silent one closes at its idle
//   timeout (the idle timer works).
// - Server level (reactor and pool models): ServerOptions::idle_timeout 150 ms and
//   ServerOptions::connection.deadline 500 ms; a line-echo handler that never sees a line;
//   the client sees its connection end 500 ms (+ tolerance) after it connected, and
//   stats().timeouts counts it.
// The blocking models (sync, threading, forking) have no absolute deadline in the server
// layer (ServerOptions::idle_timeout bounds each wait of the handler's stream, which every
// dripped byte ends): there is nothing to test for them here.
#include <gtest/gtest.h>
#include <sys/socket.h>

#include <chrono>
#include <cstdio>
#include <memory>
#include <optional>
#include <string>

#include "reactor/core/reactor.hpp"
#include "reactor/core/timer.hpp"
#include "reactor/net/address.hpp"
#include "reactor/net/connection.hpp"
#include "reactor/server/handlers.hpp"
#include "reactor/server/options.hpp"
#include "reactor/server/stream_server.hpp"
#include "tests/support/backends.hpp"
#include "tests/support/clients.hpp"
#include "tests/support/errors.hpp"
#include "tests/support/fds.hpp"
#include "tests/support/loop.hpp"
#include "tests/support/patterns.hpp"
#include "tests/support/processes.hpp"
#include "tests/support/sanitizers.hpp"
#include "tests/support/servers.hpp"
#include "tests/support/sockets.hpp"
#include "tests/support/time.hpp"

namespace {

using namespace std::chrono_literals;
using namespace reactor::test;
using reactor::Address;
using reactor::Buffer;
using reactor::CloseReason;
using reactor::Connection;
using reactor::EventHandler;
using reactor::Model;
using reactor::Reactor;
using reactor::ServerOptions;
using reactor::StreamServer;
using reactor::Timer;
using reactor::test::Fd;
using Clock = reactor::test::SteadyClock;
using reactor::test::ms_between;

constexpr auto kDrip = 20ms;
constexpr auto kIdle = 150ms;
constexpr auto kDeadline = 500ms;
// How late a close may come: generous, a timing sanity check on a shared 2-core machine.
const auto kLate =
    std::chrono::milliseconds(static_cast<long long>(300 * reactor::test::kLatencySlack));

class SlowDripTest : public reactor::test::BackendTest {};

struct Dripped {
  std::shared_ptr<Connection> connection;
  Fd peer;
  Recorder rec;
  std::optional<Clock::time_point> closed_at;
};

std::unique_ptr<Dripped> make_dripped(Reactor& loop, Connection::Options options) {
  auto d = std::make_unique<Dripped>();
  StreamPair pair = make_stream_pair(Transport::tcp4, PeerMode::nonblocking);
  d->peer = std::move(pair.peer);
  d->connection = Connection::make(loop, std::move(pair.ours), options);
  d->rec.attach(*d->connection);
  Dripped* raw = d.get();
  d->connection->on_close([raw](Connection&, CloseReason r, std::error_code ec) {
    raw->rec.record_close(r, ec);
    raw->closed_at = Clock::now();
  });
  return d;
}

TEST_P(SlowDripTest, DeadlineCutsADrippedConnectionThatTheIdleTimeoutCannot) {
  reactor::test::warm_up(backend());
  reactor::test::FdLeakCheck leaks;
  Reactor loop(backend());
  Connection::Options with_deadline;
  with_deadline.idle_timeout = kIdle;
  with_deadline.deadline = kDeadline;
  Connection::Options idle_only;
  idle_only.idle_timeout = kIdle;

  auto cut = make_dripped(loop, with_deadline);
  auto kept = make_dripped(loop, idle_only);
  auto silent = make_dripped(loop, idle_only);
  int drips = 0;
  const auto t0 = Clock::now();
  cut->connection->start();
  kept->connection->start();
  silent->connection->start();
  Timer drip = loop.every(kDrip, [&] {
    ++drips;
    // One byte, never a newline. The cut connection's peer may see EPIPE: ignore it.
    ::send(cut->peer.get(), "x", 1, MSG_NOSIGNAL);
    ::send(kept->peer.get(), "x", 1, MSG_NOSIGNAL);
  });

  ASSERT_TRUE(run_until(
      loop, [&] { return Clock::now() - t0 >= 1s; }, 3000ms, 5ms));
  drip.cancel();

  ASSERT_TRUE(cut->closed_at) << "the deadline never cut the dripped connection";
  const double cut_ms = ms_between(t0, *cut->closed_at);
  std::printf(
      "[ info     ] %s: dripped connection cut at %.0f ms (deadline %lld ms, idle %lld "
      "ms, %d drips); silent one closed at %.0f ms\n",
      backend().c_str(), cut_ms, static_cast<long long>(kDeadline.count()),
      static_cast<long long>(kIdle.count()), drips,
      silent->closed_at ? ms_between(t0, *silent->closed_at) : -1.0);
  EXPECT_EQ(cut->rec.reason, CloseReason::timeout) << to_string(cut->rec.reason);
  EXPECT_TRUE(IsErrc(cut->rec.error, std::errc::timed_out));
  EXPECT_GE(*cut->closed_at - t0, kDeadline) << "cut before the deadline";
  EXPECT_LE(*cut->closed_at - t0, kDeadline + kLate) << "cut late";
  EXPECT_GE(cut->rec.data.size(), 10u) << "the drip did not reach the connection";
  EXPECT_EQ(cut->rec.data.find('\n'), std::string::npos);

  EXPECT_FALSE(kept->rec.closed())
      << "the idle timeout cut a connection that a byte every " << kDrip.count()
      << " ms keeps busy (" << to_string(kept->rec.reason) << ")";
  EXPECT_GE(kept->rec.data.size(), 20u);

  ASSERT_TRUE(silent->closed_at) << "the idle timeout never closed a silent connection";
  EXPECT_EQ(silent->rec.reason, CloseReason::timeout) << to_string(silent->rec.reason);
  EXPECT_GE(*silent->closed_at - t0, kIdle);
  EXPECT_LE(*silent->closed_at - t0, kIdle + kLate);

  kept->connection->close();
  EXPECT_TRUE(run_until(loop, [&] { return kept->rec.closed(); }));
  run_iterations(loop, 3);
  for (Dripped* d : {cut.get(), kept.get(), silent.get()}) {
    EXPECT_EQ(d->rec.closes, 1);
    EXPECT_EQ(d->rec.calls_after_close, 0);
  }
}

// Echoes complete lines only: a drip without a newline never gets an answer.
class LineEcho : public EventHandler {
 public:
  void on_data(Connection& c, Buffer& in) override {
    for (std::size_t nl; (nl = in.view().find('\n')) != std::string_view::npos;) {
      c.send(in.view().substr(0, nl + 1));
      in.consume(nl + 1);
    }
  }
};

void server_part(const std::string& backend, Model model) {
  SCOPED_TRACE(std::string("model ") + std::string(to_string(model)));
  ServerOptions o;
  o.model = model;
  o.threads = 2;
  o.backend = backend;
  o.idle_timeout = std::chrono::duration_cast<std::chrono::milliseconds>(kIdle);
  o.connection.deadline = kDeadline;
  StreamServer server(
      Address::ipv4_loopback(0),
      []() -> std::unique_ptr<EventHandler> { return std::make_unique<LineEcho>(); }, o);
  Serving serving(server);

  const auto t0 = Clock::now();
  int err = 0;
  Fd client = connect_stream(server.address(), err, {}, 5s);
  ASSERT_GE(client.get(), 0) << strerror(err);
  std::optional<Clock::time_point> ended_at;
  std::string answer;
  int drips = 0;
  while (!ended_at && Clock::now() - t0 < 3s) {
    if (::send(client.get(), "x", 1, MSG_NOSIGNAL) == 1) ++drips;
    std::this_thread::sleep_for(kDrip);
    char buf[64];
    const ssize_t n = ::recv(client.get(), buf, sizeof buf, MSG_DONTWAIT);
    if (n > 0) answer.append(buf, static_cast<std::size_t>(n));
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) ended_at = Clock::now();
  }
  client.reset();
  std::this_thread::sleep_for(20ms);
  const reactor::ServerStats stats = server.stats();
  serving.stop();
  EXPECT_EQ(serving.error(), "");
  server.server_close();

  ASSERT_TRUE(ended_at) << "the server kept a dripping client for 3 s";
  std::printf("[ info     ] %s, %s: dripping client cut at %.0f ms after %d drips\n",
              backend.c_str(), std::string(to_string(model)).c_str(), ms_between(t0, *ended_at),
              drips);
  EXPECT_GE(*ended_at - t0, kDeadline) << "cut before the deadline";
  // The client notices within one drip interval.
  EXPECT_LE(*ended_at - t0, kDeadline + kLate + kDrip) << "cut late";
  EXPECT_EQ(answer, "");
  EXPECT_EQ(stats.accepted, 1u);
  EXPECT_EQ(stats.timeouts, 1u);
  EXPECT_EQ(stats.errors, 0u);
}

TEST_P(SlowDripTest, ServerDeadlineCutsADrippingClient) {
  for (Model m : {Model::reactor, Model::pool}) server_part(backend(), m);
}

REACTOR_INSTANTIATE_ALL_BACKENDS(SlowDripTest);

}  // namespace
