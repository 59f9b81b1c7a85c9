// SPDX-License-Identifier: MIT
// Connection churn against a StreamServer (reactor model, and pool with two loops) over TCP on
// 127.0.0.1, on every backend: 2,000 cycles of connect / send a line / read the echo / close, at
// most 50 in flight, the close done three ways in turn:
// - by the client (close: the server reads end of stream, CloseReason::eof);
// - by the server (the line "bye" makes the handler answer and close: CloseReason::local;
//   the client reads the answer, then end of stream);
// - by the client with a reset (SO_LINGER {1, 0}: CloseReason::reset).
// Every echo is exact; afterwards the handlers' close reasons match the three counts
// exactly, ServerStats add up (2,000 accepted and handled, no error, none active) and the
// process holds exactly the fds it held before the server was made. Leaks are LSan's to find
// (ASan build).
#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>

#include <array>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "reactor/net/address.hpp"
#include "reactor/net/connection.hpp"
#include "reactor/server/handlers.hpp"
#include "reactor/server/options.hpp"
#include "reactor/server/stream_server.hpp"
#include "tests/support/backends.hpp"
#include "tests/support/clients.hpp"
#include "tests/support/fds.hpp"
#include "tests/support/io.hpp"
#include "tests/support/loop.hpp"
#include "tests/support/patterns.hpp"
#include "tests/support/processes.hpp"
#include "tests/support/servers.hpp"
#include "tests/support/sockets.hpp"
#include "tests/support/time.hpp"

namespace {

using namespace std::chrono_literals;
using reactor::Address;
using reactor::Buffer;
using reactor::CloseReason;
using reactor::Connection;
using reactor::EventHandler;
using reactor::Model;
using reactor::ServerOptions;
using reactor::StreamServer;
using reactor::test::Fd;
using reactor::test::FdLeakCheck;
using Clock = reactor::test::SteadyClock;
using namespace reactor::test;

constexpr std::size_t kCycles = 2000;
constexpr std::size_t kInFlight = 50;

class ChurnTest : public reactor::test::BackendTest {};

// How each cycle ends, by cycle number modulo 3.
enum class Ending : int { client_close = 0, server_close = 1, client_reset = 2 };

// Close reasons seen by the handlers, from the serving thread.
struct Reasons {
  std::atomic<int> eof{0}, local{0}, reset{0}, other{0};
  int total() const { return eof.load() + local.load() + reset.load() + other.load(); }
};

// Echoes each line; "bye" is answered and closes the connection.
class ChurnHandler : public EventHandler {
 public:
  explicit ChurnHandler(Reasons& reasons) : reasons_(reasons) {}
  void on_data(Connection& c, Buffer& in) override {
    for (std::size_t nl; (nl = in.view().find('\n')) != std::string_view::npos;) {
      const std::string line(in.view().substr(0, nl + 1));
      in.consume(nl + 1);
      c.send(line);
      if (line == "bye\n") {
        c.close();
        return;
      }
    }
  }
  void on_close(Connection&, CloseReason reason, std::error_code) override {
    switch (reason) {
      case CloseReason::eof:
        ++reasons_.eof;
        break;
      case CloseReason::local:
        ++reasons_.local;
        break;
      case CloseReason::reset:
        ++reasons_.reset;
        break;
      default:
        ++reasons_.other;
        break;
    }
  }

 private:
  Reasons& reasons_;
};

// One cycle in flight.
struct Cycle {
  Fd fd;
  std::size_t index = 0;
  Ending ending = Ending::client_close;
  std::string expect;
  std::string got;
  bool answered = false;  // the echo is in; server_close now waits for end of stream
  Clock::time_point started;
};

// Runs the 2,000 cycles against `server`; returns how many ended each way as the client
// saw them, and fails the test on any wrong byte, early end or stuck cycle.
std::array<int, 3> churn(const Address& server) {
  std::array<int, 3> done{};
  std::vector<Cycle> flight;
  std::size_t next = 0;
  std::size_t finished = 0;
  const auto start = Clock::now();
  auto begin = [&](std::size_t i) -> bool {
    Cycle c;
    c.index = i;
    c.ending = static_cast<Ending>(i % 3);
    int err = 0;
    c.fd = connect_stream(server, err, {}, 5s);
    if (c.fd.get() < 0) {
      ADD_FAILURE() << "connect " << i << ": " << strerror(err);
      return false;
    }
    c.expect = c.ending == Ending::server_close ? std::string("bye\n")
                                                : "line-" + std::to_string(i) + "\n";
    if (!send_all(c.fd.get(), c.expect)) {
      ADD_FAILURE() << "send " << i << ": " << strerror(errno);
      return false;
    }
    ::fcntl(c.fd.get(), F_SETFL, ::fcntl(c.fd.get(), F_GETFL) | O_NONBLOCK);
    c.started = Clock::now();
    flight.push_back(std::move(c));
    return true;
  };
  auto finish = [&](std::size_t k) {
    ++done[static_cast<int>(flight[k].ending)];
    ++finished;
    flight.erase(flight.begin() + static_cast<std::ptrdiff_t>(k));
  };

  while (finished < kCycles && Clock::now() - start < 60s) {
    while (flight.size() < kInFlight && next < kCycles) {
      if (!begin(next++)) return done;
    }
    std::vector<pollfd> fds;
    for (const Cycle& c : flight) fds.push_back(pollfd{c.fd.get(), POLLIN, 0});
    const int r = ::poll(fds.data(), fds.size(), 100);
    if (r < 0 && errno != EINTR) {
      ADD_FAILURE() << "poll: " << strerror(errno);
      return done;
    }
    // Back to front, so that erasing keeps the indexes of fds[] valid.
    for (std::size_t k = flight.size(); k-- > 0;) {
      Cycle& c = flight[k];
      if (Clock::now() - c.started > 10s) {
        ADD_FAILURE() << "cycle " << c.index << " stuck with \"" << c.got << "\"";
        return done;
      }
      if (fds[k].revents == 0) continue;
      char buf[256];
      const ssize_t n = ::recv(c.fd.get(), buf, sizeof buf, 0);
      if (n < 0 && (errno == EAGAIN || errno == EINTR)) continue;
      if (n < 0 || (n == 0 && !c.answered)) {
        ADD_FAILURE() << "cycle " << c.index
                      << " ended early: " << (n == 0 ? "EOF" : strerror(errno)) << " after \""
                      << c.got << "\"";
        return done;
      }
      if (n == 0) {  // server_close: the end of stream after the answer
        c.fd.reset();
        finish(k);
        continue;
      }
      c.got.append(buf, static_cast<std::size_t>(n));
      if (c.got.size() > c.expect.size() || c.expect.compare(0, c.got.size(), c.got) != 0) {
        ADD_FAILURE() << "cycle " << c.index << ": got \"" << c.got << "\" for \"" << c.expect
                      << "\"";
        return done;
      }
      if (c.got != c.expect) continue;
      c.answered = true;
      switch (c.ending) {
        case Ending::client_close:
          c.fd.reset();
          finish(k);
          break;
        case Ending::server_close:
          break;  // wait for the end of stream
        case Ending::client_reset: {
          const linger l{1, 0};
          ::setsockopt(c.fd.get(), SOL_SOCKET, SO_LINGER, &l, sizeof l);
          c.fd.reset();
          finish(k);
          break;
        }
      }
    }
  }
  EXPECT_EQ(finished, kCycles) << "the churn did not finish within 60 s";
  return done;
}

void churn_part(const std::string& backend, Model model) {
  SCOPED_TRACE(std::string("model ") + std::string(to_string(model)));
  Reasons reasons;
  std::array<int, 3> done{};
  reactor::ServerStats stats;
  const auto t0 = Clock::now();
  {
    FdLeakCheck leaks;
    ServerOptions o;
    o.model = model;
    o.threads = 2;  // pool
    o.backend = backend;
    StreamServer server(
        Address::ipv4_loopback(0),
        [&reasons]() -> std::unique_ptr<EventHandler> {
          return std::make_unique<ChurnHandler>(reasons);
        },
        o);
    Serving serving(server);
    done = churn(server.address());
    // The server sees the last closes a little after the clients made them.
    const auto settle = Clock::now();
    while (reasons.total() < static_cast<int>(kCycles) && Clock::now() - settle < 10s) {
      std::this_thread::sleep_for(5ms);
    }
    stats = server.stats();
    serving.stop();
    EXPECT_EQ(serving.error(), "");
    server.server_close();
  }
  std::printf("[ info     ] %s, %s: %zu cycles in %.0f ms; server saw eof %d, local %d, reset %d\n",
              backend.c_str(), std::string(to_string(model)).c_str(), kCycles,
              reactor::test::ms_between(t0, Clock::now()), reasons.eof.load(), reasons.local.load(),
              reasons.reset.load());
  EXPECT_EQ(done[0] + done[1] + done[2], static_cast<int>(kCycles));
  EXPECT_EQ(reasons.eof.load(), done[static_cast<int>(Ending::client_close)]);
  EXPECT_EQ(reasons.local.load(), done[static_cast<int>(Ending::server_close)]);
  EXPECT_EQ(reasons.reset.load(), done[static_cast<int>(Ending::client_reset)]);
  EXPECT_EQ(reasons.other.load(), 0);
  EXPECT_EQ(stats.accepted, kCycles);
  EXPECT_EQ(stats.handled, kCycles);
  EXPECT_EQ(stats.errors, 0u);
  EXPECT_EQ(stats.timeouts, 0u);
  EXPECT_EQ(stats.rejected, 0u);
  EXPECT_EQ(stats.active, 0u);
  EXPECT_GE(stats.peak_active, 1u);
}

TEST_P(ChurnTest, TwoThousandCyclesClosedThreeWaysLeaveNothingBehind) {
  reactor::test::warm_up(backend());
  for (Model m : {Model::reactor, Model::pool}) churn_part(backend(), m);
}

REACTOR_INSTANTIATE_ALL_BACKENDS(ChurnTest);

}  // namespace
