// SPDX-License-Identifier: MIT
// Closing inside the accept path, on every backend. Nothing may be closed twice and
// nothing delivered after the close. A library that closes an fd number a second time
// closes whatever the program opened in the meantime; so right after each close the test
// opens pipes (which take the freed numbers), makes them readable, and checks at the end
// that every pipe is still open, still the same pipe, and still holds its unread byte (a
// stale registration of a reused number would report that byte to a dead handler).
//
// Server level, with connections pending in the backlog:
// - shutdown() + server_close() from inside verify_request (stream: sync, threading,
//   forking, reactor; datagram: the same models). Pool is left out: its verify_request runs
//   on any loop's thread, and server_close() belongs to the serving thread.
// - shutdown() + server_close() from inside an event handler's on_connect (reactor; pool
//   with one loop).
// Listener level:
// - the accepted socket closed inside the accept callback, with more clients pending;
// - the Listener destroyed inside its own accept callback, with more clients pending.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "reactor/core/reactor.hpp"
#include "reactor/net/listener.hpp"
#include "reactor/net/socket.hpp"
#include "reactor/server/datagram_server.hpp"
#include "reactor/server/handlers.hpp"
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
using reactor::DatagramRequest;
using reactor::DatagramServer;
using reactor::EventHandler;
using reactor::Listener;
using reactor::Model;
using reactor::Reactor;
using reactor::ServerOptions;
using reactor::Socket;
using reactor::StreamServer;
using reactor::StreamService;
using reactor::test::Fd;
using reactor::test::FdLeakCheck;
using namespace reactor::test;
using Clock = reactor::test::SteadyClock;

class CloseInAcceptTest : public reactor::test::BackendTest {
 protected:
  void SetUp() override {
    reactor::test::warm_up(backend());
    threads_before_ = thread_count();
  }
  void TearDown() override {
    EXPECT_TRUE(wait_for([&] { return thread_count() <= threads_before_; }, 2000ms))
        << thread_count() << " threads, " << threads_before_ << " before the test";
    EXPECT_TRUE(child_pids().empty());
  }

 private:
  std::size_t threads_before_ = 0;
};

constexpr std::size_t kPending = 10;
constexpr std::size_t kReusePipes = 8;

/// Stream clients connected (waiting in the backlog) that have sent a line.
std::vector<Fd> pending_stream_clients(const Address& to) {
  std::vector<Fd> clients;
  for (std::size_t i = 0; i < kPending; ++i) {
    int err = 0;
    Fd fd = connect_stream(to, err, {}, 5s);
    EXPECT_GE(fd.get(), 0) << std::strerror(err);
    if (fd.get() < 0) break;
    send_all(fd.get(), "hi\n");
    clients.push_back(std::move(fd));
  }
  return clients;
}

/// Every client's connection was ended (EOF or reset) without a byte arriving.
void expect_ended_without_data(std::vector<Fd>& clients) {
  for (std::size_t i = 0; i < clients.size(); ++i) {
    const ClientRead r = read_to_end(clients[i].get());
    EXPECT_TRUE(r.ended()) << "client " << i << ": " << r.describe();
    EXPECT_EQ(r.bytes, "") << "client " << i << " was sent data after the close";
  }
}

/// A stream service that logs every handler run ("H") and echoes.
StreamService logging_echo(PipeLog& log) {
  class Events : public EchoEvents {
   public:
    explicit Events(PipeLog& log) : log_(log) {}
    void on_connect(Connection&) override { log_.write("H"); }

   private:
    PipeLog& log_;
  };
  return StreamService(reactor::stream_handler([&log](reactor::BlockingStream& s, const Address&) {
                         log.write("H");
                         while (auto line = s.read_line()) {
                           s.write(*line);
                           s.flush();
                         }
                       }),
                       reactor::EventHandlerFactory([&log]() -> std::unique_ptr<EventHandler> {
                         return std::make_unique<Events>(log);
                       }));
}

/// What a close inside a callback saw.
struct Inside {
  int calls = 0;
  int fileno_after_close = 0;
  int listener_fd = -1;
  bool listener_number_reused = false;
};

TEST_P(CloseInAcceptTest, ShutdownAndCloseInsideVerifyRequestWithStreamClientsPending) {
  HangGuard hang(60s);
  const std::size_t threads_before = thread_count();
  for (Model m : {Model::sync, Model::threading, Model::forking, Model::reactor}) {
    if (!testable(m)) continue;
    SCOPED_TRACE(model_name(m));
    FdLeakCheck leaks;
    PipeLog log;
    ReusePipes reuse;
    Inside inside;
    std::unique_ptr<StreamServer> server;
    ServerOptions o = options_for(m, backend());
    o.verify_request = [&](const Address&) {
      if (inside.calls++ == 0) {
        server->shutdown();
        server->server_close();
        inside.fileno_after_close = server->fileno();
        reuse.open(kReusePipes);
        reuse.fill();
        inside.listener_number_reused = reuse.holds(inside.listener_fd);
      }
      return true;  // too late: nothing may be served after server_close
    };
    server = std::make_unique<StreamServer>(Address::ipv4_loopback(0), logging_echo(log), o);
    inside.listener_fd = server->fileno();
    std::vector<Fd> clients = pending_stream_clients(server->address());
    {
      Serving serving(*server);
      EXPECT_TRUE(serving.wait_returned(3000ms)) << "serve_forever went on after server_close";
      EXPECT_EQ(serving.error(), "");
    }
    EXPECT_EQ(inside.calls, 1) << "verify_request ran after server_close";
    EXPECT_EQ(inside.fileno_after_close, -1);
    EXPECT_EQ(server->fileno(), -1);
    EXPECT_TRUE(inside.listener_number_reused) << "no pipe took the listener's number";
    expect_ended_without_data(clients);
    EXPECT_TRUE(reuse.intact()) << "after serve_forever returned";
    server->server_close();
    server->shutdown();
    EXPECT_TRUE(log.lines().empty()) << "a handler ran after server_close";
    EXPECT_EQ(server->stats().handled, 0u);
    EXPECT_TRUE(child_pids().empty());
    server.reset();
    EXPECT_TRUE(reuse.intact()) << "after the server was destroyed";
    for (Fd& c : clients) hang_up(c);
    reuse.close();
  }
  EXPECT_TRUE(wait_for([&] { return thread_count() <= threads_before; }, 2000ms));
  EXPECT_TRUE(waitpid_finds_no_child());
}

TEST_P(CloseInAcceptTest, ShutdownAndCloseInsideVerifyRequestWithDatagramsPending) {
  HangGuard hang(60s);
  const std::size_t threads_before = thread_count();
  for (Model m : {Model::sync, Model::threading, Model::forking, Model::reactor}) {
    if (!testable(m)) continue;
    for (Transport t : {Transport::udp4, Transport::unix_dgram}) {
      SCOPED_TRACE(model_name(m) + " " + name(t));
      FdLeakCheck leaks;
      PipeLog log;
      ReusePipes reuse;
      Inside inside;
      std::unique_ptr<DatagramServer> server;
      ServerOptions o = options_for(m, backend());
      o.verify_request = [&](const Address&) {
        if (inside.calls++ == 0) {
          server->shutdown();
          server->server_close();
          inside.fileno_after_close = server->fileno();
          reuse.open(kReusePipes);
          reuse.fill();
          inside.listener_number_reused = reuse.holds(inside.listener_fd);
        }
        return true;
      };
      server = std::make_unique<DatagramServer>(
          bind_address(t),
          [&log](DatagramRequest& r) {
            log.write("H");
            r.reply(r.data());
          },
          o);
      inside.listener_fd = server->fileno();
      std::vector<Fd> clients;
      for (std::size_t i = 0; i < kPending; ++i) {
        clients.push_back(datagram_client(server->address()));
        ASSERT_TRUE(send_datagram(clients.back().get(), server->address(), "hi"));
      }
      {
        Serving serving(*server);
        EXPECT_TRUE(serving.wait_returned(3000ms)) << "serve_forever went on after server_close";
        EXPECT_EQ(serving.error(), "");
      }
      EXPECT_EQ(inside.calls, 1) << "verify_request ran after server_close";
      EXPECT_EQ(inside.fileno_after_close, -1);
      EXPECT_EQ(server->fileno(), -1);
      EXPECT_TRUE(inside.listener_number_reused) << "no pipe took the socket's number";
      for (Fd& c : clients) EXPECT_TRUE(nothing_queued(c.get())) << "a datagram was answered";
      EXPECT_TRUE(reuse.intact()) << "after serve_forever returned";
      EXPECT_TRUE(log.lines().empty()) << "a handler ran after server_close";
      server.reset();
      EXPECT_TRUE(reuse.intact()) << "after the server was destroyed";
      reuse.close();
    }
  }
  EXPECT_TRUE(wait_for([&] { return thread_count() <= threads_before; }, 2000ms));
  EXPECT_TRUE(waitpid_finds_no_child());
}

/// Calls on the event handlers of one server (all on the serving thread).
struct EventTally {
  int connects = 0;
  int data = 0;
  int closes = 0;
  int after_close = 0;  ///< any call on a handler after its on_close: must stay 0
};

/// Counts its calls; the first on_connect of the server runs `first`.
class CountingEvents : public EventHandler {
 public:
  CountingEvents(EventTally& tally, const std::function<void()>& first)
      : t_(tally), first_(first) {}
  void on_connect(Connection&) override {
    if (closed_) ++t_.after_close;
    if (t_.connects++ == 0) first_();
  }
  void on_data(Connection&, Buffer& in) override {
    if (closed_) ++t_.after_close;
    ++t_.data;
    in.consume(in.size());
  }
  void on_close(Connection&, CloseReason, std::error_code) override {
    if (closed_) ++t_.after_close;
    closed_ = true;
    ++t_.closes;
  }

 private:
  EventTally& t_;
  const std::function<void()>& first_;
  bool closed_ = false;
};

// Reactor, and a pool of one loop (its handlers run on the serving thread too; with more
// loops on_connect runs on other threads, where server_close() may not be called).
TEST_P(CloseInAcceptTest, ShutdownAndCloseInsideOnConnectWithClientsPending) {
  HangGuard hang(60s);
  for (Model m : {Model::reactor, Model::pool}) {
    SCOPED_TRACE(model_name(m));
    FdLeakCheck leaks;
    ReusePipes reuse;
    EventTally tally;
    Inside inside;
    std::unique_ptr<StreamServer> server;
    const std::function<void()> first = [&] {
      server->shutdown();
      server->server_close();
      inside.fileno_after_close = server->fileno();
      reuse.open(kReusePipes);
      reuse.fill();
      inside.listener_number_reused = reuse.holds(inside.listener_fd);
    };
    ServerOptions o = options_for(m, backend());
    o.threads = 1;
    server = std::make_unique<StreamServer>(
        Address::ipv4_loopback(0),
        reactor::EventHandlerFactory([&]() -> std::unique_ptr<EventHandler> {
          return std::make_unique<CountingEvents>(tally, first);
        }),
        o);
    inside.listener_fd = server->fileno();
    std::vector<Fd> clients = pending_stream_clients(server->address());
    {
      Serving serving(*server);
      EXPECT_TRUE(serving.wait_returned(3000ms)) << "serve_forever went on after server_close";
      EXPECT_EQ(serving.error(), "");
    }
    EXPECT_EQ(tally.connects, 1) << "connections started after server_close";
    EXPECT_EQ(tally.data, 0) << "data delivered after server_close";
    EXPECT_EQ(tally.closes, 1) << "the handler open at server_close gets on_close exactly once";
    EXPECT_EQ(tally.after_close, 0);
    EXPECT_EQ(inside.fileno_after_close, -1);
    EXPECT_TRUE(inside.listener_number_reused) << "no pipe took the listener's number";
    expect_ended_without_data(clients);
    EXPECT_TRUE(reuse.intact()) << "after serve_forever returned";
    server.reset();
    EXPECT_TRUE(reuse.intact()) << "after the server was destroyed";
    EXPECT_EQ(tally.closes, 1);
    for (Fd& c : clients) hang_up(c);
    reuse.close();
  }
}

// --- Listener level ----------------------------------------------------------------------

/// Raw non-blocking clients connected to `to` (handshake done), each having sent a byte.
std::vector<Fd> raw_clients(const Address& to) {
  std::vector<Fd> clients;
  for (std::size_t i = 0; i < kPending; ++i) {
    int err = 0;
    Fd fd = raw_connect(to, err);
    EXPECT_GE(fd.get(), 0) << std::strerror(err);
    if (fd.get() < 0) break;
    EXPECT_NE(wait_fd(fd.get(), POLLOUT, 5000) & POLLOUT, 0);
    ::send(fd.get(), "x", 1, MSG_NOSIGNAL);
    clients.push_back(std::move(fd));
  }
  return clients;
}

/// Each raw client's connection is ended by the other side (EOF or reset) within 2 s,
/// without data.
void expect_raw_clients_ended(std::vector<Fd>& clients) {
  for (std::size_t i = 0; i < clients.size(); ++i) {
    PeerInput in;
    const auto deadline = Clock::now() + 2s;
    while (!in.eof && in.error == 0 && Clock::now() < deadline) {
      wait_fd(clients[i].get(), POLLIN, 100);
      drain_into(clients[i].get(), in, 4096);
    }
    EXPECT_TRUE(in.eof || in.error != 0) << "client " << i;
    EXPECT_EQ(in.bytes, "") << "client " << i;
  }
}

TEST_P(CloseInAcceptTest, ListenerClosingTheAcceptedSocketInItsCallbackNeverClosesItTwice) {
  HangGuard hang(60s);
  FdLeakCheck leaks;
  Reactor loop(backend());
  for (const Address& bind : {Address::ipv4_loopback(0), unique_unix_address("listener")}) {
    SCOPED_TRACE(bind.to_string());
    ReusePipes reuse;
    std::size_t accepted = 0;
    std::size_t same_number = 0;
    {
      Listener listener(loop, bind, [&](Socket s, const Address&) {
        ++accepted;
        const int n = s.fd();
        s.close();
        reuse.open(1);  // takes the number just freed
        if (reuse.holds(n)) ++same_number;
      });
      const std::size_t watched = loop.watcher_count();
      std::vector<Fd> clients = raw_clients(listener.address());
      ASSERT_EQ(clients.size(), kPending);
      ASSERT_TRUE(run_until(
          loop, [&] { return accepted == kPending; }, 5000ms))
          << accepted;
      reuse.fill();
      run_iterations(loop, 20, 1ms);
      EXPECT_EQ(accepted, kPending);
      EXPECT_EQ(same_number, kPending) << "the closed socket's number was not reused at once";
      EXPECT_EQ(loop.watcher_count(), watched) << "only the listener should be watched";
      EXPECT_TRUE(reuse.intact()) << "while the listener lives";
      expect_raw_clients_ended(clients);
    }
    run_iterations(loop, 5, 1ms);
    EXPECT_TRUE(reuse.intact()) << "after the listener was destroyed";
  }
}

TEST_P(CloseInAcceptTest, ListenerDestroyedInItsCallbackWithClientsPendingDeliversNothingAfter) {
  HangGuard hang(60s);
  FdLeakCheck leaks;
  Reactor loop(backend());
  const std::size_t watched_before = loop.watcher_count();
  for (const Address& bind : {Address::ipv4_loopback(0), unique_unix_address("listener")}) {
    SCOPED_TRACE(bind.to_string());
    ReusePipes reuse;
    std::optional<Listener> listener;
    std::size_t accepted = 0;
    listener.emplace(loop, bind, [&](Socket s, const Address&) {
      ++accepted;
      s.close();
      listener.reset();
      reuse.open(kReusePipes);
    });
    const int listener_fd = listener->fd();
    std::vector<Fd> clients = raw_clients(listener->address());
    ASSERT_EQ(clients.size(), kPending);
    ASSERT_TRUE(run_until(
        loop, [&] { return accepted > 0; }, 5000ms));
    // Whatever the Listener released at the end of that iteration is free now too.
    reuse.open(kReusePipes);
    reuse.fill();
    EXPECT_TRUE(reuse.holds(listener_fd)) << "no pipe took the listener's number";
    run_iterations(loop, 50, 1ms);
    EXPECT_EQ(accepted, 1u) << "accepted after the Listener was destroyed";
    EXPECT_FALSE(listener.has_value());
    EXPECT_EQ(loop.watcher_count(), watched_before);
    EXPECT_TRUE(reuse.intact()) << "a reused number was closed or read by the dead listener";
    expect_raw_clients_ended(clients);
  }
}

REACTOR_INSTANTIATE_ALL_BACKENDS(CloseInAcceptTest);

}  // namespace
