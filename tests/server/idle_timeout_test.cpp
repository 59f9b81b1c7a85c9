// SPDX-License-Identifier: MIT
// The idle timeout. 200 clients connect and send nothing: each is closed by the server
// at idle_timeout (1 s) +- 20 %, measured from its own connect; meanwhile a busy client doing
// request/response every 10 ms over one connection keeps its p99 latency under 100 ms, and
// is never closed. stats().timeouts counts the 200 and stats().errors stays 0 (a timeout is
// not a handler error).
//
// Models: threading (the blocking handler's read_line times out), reactor and pool (the
// connection's idle timer), the event models over every backend. The sync model serves one
// connection at a time and the forking model at most max_children (40) at once, so 200
// simultaneous idle clients would be served one batch after another and could not all be
// closed at their own connect time + 1 s: this timing check does not apply to them.
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <string>
#include <thread>
#include <vector>

#include "reactor/server/stream_server.hpp"
#include "tests/support/backends.hpp"
#include "tests/support/clients.hpp"
#include "tests/support/fds.hpp"
#include "tests/support/io.hpp"
#include "tests/support/loop.hpp"
#include "tests/support/processes.hpp"
#include "tests/support/sanitizers.hpp"
#include "tests/support/servers.hpp"
#include "tests/support/sockets.hpp"
#include "tests/support/time.hpp"

namespace {

using namespace std::chrono_literals;
using reactor::Address;
using reactor::Model;
using reactor::ServerOptions;
using reactor::StreamServer;
using reactor::test::Fd;
using reactor::test::FdLeakCheck;
using namespace reactor::test;
using Clock = reactor::test::SteadyClock;

class IdleTimeoutTest : public ModelTest {};

constexpr std::size_t kIdleClients = 200;
constexpr auto kIdleTimeout = 1000ms;
constexpr double kTolerance = 0.2;

/// A client sending a line every 10 ms and timing each reply, until told to stop.
class BusyClient {
 public:
  explicit BusyClient(const Address& to) : thread_([this, to] { run(to); }) {}
  BusyClient(const BusyClient&) = delete;
  BusyClient& operator=(const BusyClient&) = delete;
  ~BusyClient() { stop(); }
  void stop() {
    stop_.store(true);
    if (thread_.joinable()) thread_.join();
  }
  /// After stop(): the round trips in ms, and what went wrong ("" when nothing).
  const std::vector<double>& latencies() const { return latencies_; }
  const std::string& problem() const { return problem_; }

 private:
  void run(const Address& to) {
    int err = 0;
    Fd fd = connect_stream(to, err);
    if (fd.get() < 0) {
      problem_ = std::string("connect: ") + std::strerror(err);
      return;
    }
    for (std::size_t i = 0; !stop_.load(); ++i) {
      const std::string line = client_line("busy", i);
      const auto t = Clock::now();
      if (!send_all(fd.get(), line)) {
        problem_ = std::string("send: ") + std::strerror(errno);
        break;
      }
      const ClientRead r = read_line(fd.get());
      if (r.bytes != line) {
        problem_ = "request " + std::to_string(i) + ": " + r.describe();
        break;
      }
      latencies_.push_back(ms_between(t, Clock::now()));
      std::this_thread::sleep_for(10ms);
    }
    hang_up(fd);
  }

  std::atomic<bool> stop_{false};
  std::vector<double> latencies_;
  std::string problem_;
  std::thread thread_;
};

TEST_P(IdleTimeoutTest, IdleClientsCloseOnTimeWhileABusyClientStaysFast) {
  HangGuard hang(60s);
  // 200 clients and their 200 server ends, plus the server's own fds.
  reactor::test::ScopedFdLimit fd_limit;
  if (!fd_limit.raise_to_hard(1024)) GTEST_SKIP() << "RLIMIT_NOFILE below 1024";
  const std::size_t threads_before = thread_count();
  {
    FdLeakCheck leaks;
    ServerOptions o = options_for(model(), backend());
    o.idle_timeout = kIdleTimeout;
    StreamServer server(Address::ipv4_loopback(0), echo_service(), o);
    Serving serving(server);
    ASSERT_EQ(stream_echo(server.address(), "warm\n"), "warm\n");

    BusyClient busy(server.address());

    std::vector<Fd> idle;
    std::vector<Clock::time_point> connected;
    for (std::size_t i = 0; i < kIdleClients; ++i) {
      int err = 0;
      Fd fd = connect_stream(server.address(), err);
      ASSERT_GE(fd.get(), 0) << "idle client " << i << ": " << std::strerror(err);
      connected.push_back(Clock::now());
      reactor::test::set_nonblocking(fd.get(), true);
      idle.push_back(std::move(fd));
    }

    // Watch every idle client until the server closes it (EOF or reset).
    std::vector<double> closed_after(kIdleClients, -1);
    std::vector<pollfd> watch(kIdleClients);
    for (std::size_t i = 0; i < kIdleClients; ++i) watch[i] = {idle[i].get(), POLLIN, 0};
    std::size_t open = kIdleClients;
    const auto give_up = connected.back() + 3 * kIdleTimeout;
    while (open > 0 && Clock::now() < give_up) {
      if (::poll(watch.data(), watch.size(), 10) <= 0) continue;
      const auto now = Clock::now();
      for (std::size_t i = 0; i < kIdleClients; ++i) {
        if (watch[i].fd < 0 || watch[i].revents == 0) continue;
        char buf[64];
        const ssize_t n = ::recv(watch[i].fd, buf, sizeof buf, MSG_DONTWAIT);
        if (n > 0) {
          ADD_FAILURE() << "idle client " << i << " was sent data";
          continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EINTR)) continue;
        closed_after[i] = ms_between(connected[i], now);
        watch[i].fd = -1;
        --open;
      }
    }
    busy.stop();

    EXPECT_EQ(open, 0u) << "idle clients never closed";
    // Closing late is a latency: sanitizer builds widen the late side by kLatencySlack
    // (ASan: 1.4 s; 200 threads waking at once were seen closing at 1.2-1.3 s). Under
    // TSan, which serialises those threads' exits (closes seen up to 3 s), only "closed,
    // and not early" is checked.
    const double low = (1 - kTolerance) * double(kIdleTimeout.count());
    const double high = reactor::test::kTsan ? 3.0 * double(kIdleTimeout.count())
                                             : (1 + kTolerance * reactor::test::kLatencySlack) *
                                                   double(kIdleTimeout.count());
    std::size_t early = 0, late = 0;
    for (std::size_t i = 0; i < kIdleClients; ++i) {
      if (closed_after[i] < 0) continue;
      early += closed_after[i] < low ? 1 : 0;
      late += closed_after[i] > high ? 1 : 0;
    }
    const auto [first, last] = std::minmax_element(closed_after.begin(), closed_after.end());
    EXPECT_EQ(early + late, 0u) << early << " closed before " << low << " ms and " << late
                                << " after " << high << " ms (range " << *first << ".." << *last
                                << " ms)";

    EXPECT_EQ(busy.problem(), "") << "the busy client failed";
    std::vector<double> lat = busy.latencies();
    ASSERT_GT(lat.size(), 20u) << "the busy client made too few requests";
    std::sort(lat.begin(), lat.end());
    const double p99 = lat[(lat.size() * 99) / 100];
    // 100 ms is the latency bound a busy client keeps; sanitizer builds widen it by kLatencySlack.
    const double bound = 100.0 * reactor::test::kLatencySlack;
    EXPECT_LT(p99, bound) << "busy client p99 over " << lat.size() << " requests (max "
                          << lat.back() << " ms)";

    EXPECT_TRUE(wait_for([&] { return server.stats().timeouts == kIdleClients; }, 3000ms))
        << "stats().timeouts = " << server.stats().timeouts;
    EXPECT_EQ(server.stats().errors, 0u) << "an idle timeout is not a handler error";

    serving.stop();
    server.server_close();
  }
  EXPECT_TRUE(wait_for([&] { return thread_count() <= threads_before; }, 2000ms));
}

REACTOR_INSTANTIATE_MODEL(IdleTimeoutTest, Threading, threading);
REACTOR_INSTANTIATE_MODEL(IdleTimeoutTest, Reactor, reactor);
REACTOR_INSTANTIATE_MODEL(IdleTimeoutTest, Pool, pool);

}  // namespace
