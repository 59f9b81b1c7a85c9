// SPDX-License-Identifier: MIT
// The README echo server (examples/echo_server.cpp, replicated line for line below: the same
// classes used the same way) serving 1,000 concurrent loopback clients on every backend, over
// TCP v4, TCP v6 (when ::1 exists) and Unix stream. The clients are raw non-blocking sockets
// driven by a plain poll() loop in a thread of their own; each sends a few random messages
// of 1..8 KiB and checks every echo byte for byte. All 1,000 stay connected until all are
// done, so the server really holds 1,000 connections at once.
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "reactor/core/reactor.hpp"
#include "reactor/net/connection.hpp"
#include "reactor/net/listener.hpp"
#include "tests/support/allocators.hpp"
#include "tests/support/backends.hpp"
#include "tests/support/fds.hpp"
#include "tests/support/loop.hpp"
#include "tests/support/patterns.hpp"
#include "tests/support/sockets.hpp"

namespace {

using namespace std::chrono_literals;
using namespace reactor::test;
using reactor::test::Fd;
using reactor::test::FdLeakCheck;
using reactor::test::random_bytes;
using reactor::test::run_until;
using reactor::test::ScopedFdLimit;
using reactor::test::stream_transports;
using reactor::test::Transport;

constexpr std::size_t kClients = 1000;
constexpr auto kClientCap = 25s;  // per transport; three transports fit in CTest's 120 s

class EchoManyTest : public reactor::test::BackendTest {
 protected:
  void SetUp() override { reactor::test::warm_up(backend()); }
};

/// What the client thread saw.
struct ClientReport {
  std::size_t completed = 0;
  std::size_t failed = 0;
  std::size_t unfinished = 0;
  std::uint64_t bytes = 0;
  std::vector<std::string> errors;  // the first few
};

/// Runs `n` clients against `to` until every one has had all its messages echoed (or failed)
/// or `cap` passed. Thread rule: runs in its own thread; touches nothing shared.
ClientReport run_clients(const reactor::Address& to, std::size_t n, std::uint64_t seed) {
  struct Client {
    Fd fd;
    std::vector<std::string> messages;
    std::size_t current = 0;  // message being echoed
    std::size_t offset = 0;   // bytes of it sent
    std::string got;
    bool connected = false;
    bool done = false;
    bool failed = false;
  };
  ClientReport report;
  std::vector<Client> clients(n);
  auto fail = [&](Client& c, std::size_t i, const std::string& why) {
    c.failed = true;
    ++report.failed;
    if (report.errors.size() < 5)
      report.errors.push_back("client " + std::to_string(i) + ": " + why);
  };

  std::mt19937_64 rng(seed);
  for (std::size_t i = 0; i < n; ++i) {
    Client& c = clients[i];
    const std::size_t count = 2 + rng() % 3;
    for (std::size_t m = 0; m < count; ++m) {
      c.messages.push_back(random_bytes(rng, 1 + rng() % 8192));
    }
    const int fd = ::socket(to.domain(), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
      fail(c, i, std::string("socket: ") + std::strerror(errno));
      continue;
    }
    c.fd.reset(fd);
    if (::connect(fd, to.native(), to.native_size()) == 0) {
      c.connected = true;
    } else if (errno != EINPROGRESS) {
      fail(c, i, std::string("connect: ") + std::strerror(errno));
    }
  }

  std::vector<pollfd> fds;
  std::vector<std::size_t> index;
  const auto deadline = std::chrono::steady_clock::now() + kClientCap;
  while (std::chrono::steady_clock::now() < deadline) {
    fds.clear();
    index.clear();
    for (std::size_t i = 0; i < n; ++i) {
      Client& c = clients[i];
      if (c.done || c.failed) continue;
      short events = 0;
      if (!c.connected || c.offset < c.messages[c.current].size()) events |= POLLOUT;
      if (c.connected) events |= POLLIN;
      fds.push_back({c.fd.get(), events, 0});
      index.push_back(i);
    }
    if (fds.empty()) break;
    if (::poll(fds.data(), fds.size(), 50) < 0 && errno != EINTR) break;
    for (std::size_t k = 0; k < fds.size(); ++k) {
      if (fds[k].revents == 0) continue;
      const std::size_t i = index[k];
      Client& c = clients[i];
      if (!c.connected) {
        int err = 0;
        socklen_t len = sizeof err;
        ::getsockopt(c.fd.get(), SOL_SOCKET, SO_ERROR, &err, &len);
        if (err != 0) {
          fail(c, i, std::string("connect: ") + std::strerror(err));
          continue;
        }
        c.connected = true;
      }
      // Send what the socket takes of the current message, read what came back, move on to
      // the next message once this one is back whole.
      for (bool progress = true; progress && !c.done && !c.failed;) {
        progress = false;
        const std::string& msg = c.messages[c.current];
        while (c.offset < msg.size()) {
          const ssize_t w =
              ::send(c.fd.get(), msg.data() + c.offset, msg.size() - c.offset, MSG_NOSIGNAL);
          if (w < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
              fail(c, i, std::string("send: ") + std::strerror(errno));
            }
            break;
          }
          c.offset += static_cast<std::size_t>(w);
        }
        if (c.failed) break;
        char buf[16384];
        for (;;) {
          const ssize_t r = ::recv(c.fd.get(), buf, sizeof buf, 0);
          if (r > 0) {
            c.got.append(buf, static_cast<std::size_t>(r));
            report.bytes += static_cast<std::uint64_t>(r);
            continue;
          }
          if (r == 0) {
            fail(c, i, "EOF from the server before the echo was complete");
          } else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
            fail(c, i, std::string("recv: ") + std::strerror(errno));
          }
          break;
        }
        if (c.failed) break;
        if (c.got.size() > msg.size()) {
          fail(c, i, "more bytes came back than were sent");
        } else if (c.got.size() == msg.size()) {
          if (c.got != msg) {
            fail(c, i, "echo differs from message " + std::to_string(c.current));
            break;
          }
          c.got.clear();
          c.offset = 0;
          if (++c.current == c.messages.size()) {
            c.done = true;
            ++report.completed;
          } else {
            progress = true;  // start the next message now
          }
        }
      }
    }
  }
  for (const Client& c : clients) {
    if (!c.done && !c.failed) ++report.unfinished;
  }
  return report;  // every client's fd closes here, after all were done
}

// ---------------------------------------------------------------------------------------

TEST_P(EchoManyTest, ThousandConcurrentClientsAreEchoedByteExact) {
  ScopedFdLimit fd_limit;
  if (!fd_limit.raise_to_hard(2 * kClients + 256)) {
    GTEST_SKIP() << "RLIMIT_NOFILE hard limit too low for " << kClients << " clients";
  }
  FdLeakCheck leaks;
  std::uint64_t seed = 1;
  for (const Transport& t : stream_transports()) {
    SCOPED_TRACE(name(t));
    using namespace reactor;
    // ---- examples/echo_server.cpp, as in the README ----
    Reactor loop(backend());
    std::set<std::shared_ptr<Connection>> clients;
    Listener listener(loop, bind_address(t), [&](Socket socket, const Address&) {
      auto c = Connection::make(loop, std::move(socket));
      c->on_data([](Connection& c, Buffer& in) {
        c.send(in.view());
        in.clear();
      });
      c->on_close([&](Connection& c, CloseReason, std::error_code) {
        clients.erase(c.shared_from_this());
      });
      clients.insert(c);
      c->start();
    });
    SignalWatcher stop = loop.on_signal(SIGTERM, [&](int) { loop.stop(); });
    // ---- end of the example; loop.run() becomes a bounded drive ----

    const Address at = listener.address();
    std::atomic<bool> finished{false};
    ClientReport report;
    std::thread client_thread([&, at, seed] {
      report = run_clients(at, kClients, seed);
      finished.store(true);
    });
    ++seed;
    std::size_t most = 0;
    const std::uint64_t first_iteration = loop.iterations();
    const auto deadline = std::chrono::steady_clock::now() + kClientCap + 5s;
    while (!finished.load() && std::chrono::steady_clock::now() < deadline) {
      loop.run_once(10ms);
      most = std::max(most, clients.size());
    }
    const std::uint64_t iterations = loop.iterations() - first_iteration;
    client_thread.join();  // its own cap ends it

    EXPECT_EQ(report.completed, kClients)
        << report.failed << " failed, " << report.unfinished << " unfinished; first errors: "
        << (report.errors.empty() ? std::string("none") : report.errors.front());
    for (const std::string& e : report.errors) ADD_FAILURE() << e;
    EXPECT_EQ(most, kClients) << "the server never held every client at once";
    EXPECT_GT(iterations, 0u);
    // The clients are gone: every server-side connection sees EOF and closes itself.
    EXPECT_TRUE(run_until(
        loop, [&] { return clients.empty(); }, 10000ms))
        << clients.size() << " server connections still open";
  }
}

REACTOR_INSTANTIATE_ALL_BACKENDS(EchoManyTest);

}  // namespace
