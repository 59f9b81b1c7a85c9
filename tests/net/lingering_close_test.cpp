// SPDX-License-Identifier: MIT
// A graceful close while the peer's input is still unread, on every backend, over TCP v4,
// TCP v6 (when ::1 exists) and Unix stream. Linux answers a close with unread input by a
// reset, and the reset can destroy the answer still in flight; so the library shuts down the
// writing side, reads and discards what the peer still sends (bounded in bytes and in time),
// and only then closes:
// - a server that answers and closes with the request's tail unread: the peer reads the
//   whole answer, then end of stream, never ECONNRESET (50 rounds per transport: the plain
//   close failed most of them);
// - on_close runs once, with CloseReason::local, without waiting for the lingering;
// - the lingering ends as soon as the peer closes, after Options::linger_bytes from a peer
//   that never stops sending, and after Options::linger_timeout from a silent peer;
// - abort() still resets at once.
// linger_close(), the same for blocking code, is checked at the end.
#include <gtest/gtest.h>
#include <sys/socket.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <string>
#include <thread>

#include "reactor/core/reactor.hpp"
#include "reactor/net/connection.hpp"
#include "reactor/net/socket.hpp"
#include "tests/support/backends.hpp"
#include "tests/support/clients.hpp"
#include "tests/support/fds.hpp"
#include "tests/support/loop.hpp"
#include "tests/support/sockets.hpp"

namespace reactor {
namespace {

using namespace std::chrono_literals;
using namespace reactor::test;
using Clock = std::chrono::steady_clock;

constexpr int kRounds = 50;

class LingeringCloseTest : public BackendTest {};

// The peer's request: a line and a tail the server never reads (it reads 8 bytes and closes).
const std::string kRequest = "hi\n" + std::string(32 * 1024, 't');
const std::string kAnswer = "hello, and goodbye\n";

// A connection that answers its first data and closes, leaving most of the input unread.
struct Answering {
  std::shared_ptr<Connection> connection;
  int closes = 0;
  CloseReason reason = CloseReason::error;

  Answering(Reactor& loop, Socket s, Connection::Options o = {}) {
    o.read_size = 8;  // the first read takes "hi\n" and a little of the tail: the rest stays
    o.reads_per_iteration = 1;
    connection = Connection::make(loop, std::move(s), o);
    connection->on_data([](Connection& c, Buffer&) {
      c.send(kAnswer);
      c.close();
    });
    connection->on_close([this](Connection&, CloseReason r, std::error_code) {
      ++closes;
      reason = r;
    });
    connection->start();
  }
};

TEST_P(LingeringCloseTest, AnswerThenCloseWithUnreadInputReachesThePeerWithoutReset) {
  FdLeakCheck leaks;
  for (const Transport& t : stream_transports()) {
    SCOPED_TRACE(name(t));
    Reactor loop(backend());
    int resets = 0;
    for (int round = 0; round < kRounds; ++round) {
      StreamPair pair = make_stream_pair(t);
      ASSERT_TRUE(send_all(pair.peer.get(), kRequest));
      Answering server(loop, std::move(pair.ours));
      ASSERT_TRUE(run_until(
          loop, [&] { return server.closes > 0; }, 5s));
      EXPECT_EQ(server.reason, CloseReason::local);
      // The peer reads while the loop is idle: nothing of the library runs meanwhile.
      const ClientRead r = read_to_end(pair.peer.get());
      if (r.error == ECONNRESET) ++resets;
      EXPECT_EQ(r.bytes, kAnswer) << "round " << round << ": " << r.describe();
      EXPECT_TRUE(r.eof) << "round " << round << ": " << r.describe();
      // The peer closes: the lingering descriptor sees end of stream and goes at once.
      pair.peer.reset();
      ASSERT_TRUE(run_until(
          loop, [&] { return loop.watcher_count() == 0; }, 500ms))
          << "round " << round << ": the lingering outlived the peer";
      run_iterations(loop, 2);
      EXPECT_EQ(server.closes, 1);
    }
    EXPECT_EQ(resets, 0) << "of " << kRounds << " rounds";
  }
}

TEST_P(LingeringCloseTest, LingeringStopsAfterLingerBytesFromAPeerThatNeverStops) {
  FdLeakCheck leaks;
  for (const Transport& t : stream_transports()) {
    SCOPED_TRACE(name(t));
    Reactor loop(backend());
    StreamPair pair = make_stream_pair(t);
    set_io_timeouts(pair.peer.get(), 100ms);
    std::atomic<bool> stop{false};
    std::thread flood([&] {
      const std::string chunk(16 * 1024, 'f');
      const auto until = Clock::now() + 10s;  // bounded even if the library never cuts
      while (!stop && Clock::now() < until) {
        const ssize_t n = ::send(pair.peer.get(), chunk.data(), chunk.size(), MSG_NOSIGNAL);
        if (n < 0 && errno != EINTR && errno != EAGAIN && errno != EWOULDBLOCK) return;
      }
    });
    Connection::Options o;
    o.linger_bytes = 256 * 1024;
    o.linger_timeout = 20s;  // far past the test: only the byte bound can end it
    Answering server(loop, std::move(pair.ours), o);
    const auto t0 = Clock::now();
    const bool ended = run_until(
        loop, [&] { return loop.watcher_count() == 0; }, 5s);
    const auto took = Clock::now() - t0;
    stop = true;
    flood.join();
    EXPECT_TRUE(ended) << "still lingering after 5 s";
    EXPECT_LT(took, 3s);
    run_iterations(loop, 2);
    EXPECT_EQ(server.closes, 1);
  }
}

TEST_P(LingeringCloseTest, LingeringStopsAfterLingerTimeoutFromASilentPeer) {
  FdLeakCheck leaks;
  for (const Transport& t : stream_transports()) {
    SCOPED_TRACE(name(t));
    Reactor loop(backend());
    StreamPair pair = make_stream_pair(t);
    ASSERT_TRUE(send_all(pair.peer.get(), kRequest));
    Connection::Options o;
    o.linger_timeout = 200ms;
    Answering server(loop, std::move(pair.ours), o);
    ASSERT_TRUE(run_until(
        loop, [&] { return server.closes > 0; }, 5s));
    const auto t0 = Clock::now();
    // The peer neither reads nor closes: only the time bound ends the lingering.
    ASSERT_TRUE(run_until(
        loop, [&] { return loop.watcher_count() == 0; }, 5s));
    const auto took = Clock::now() - t0;
    EXPECT_GE(took, 150ms) << "closed before the peer could have closed";
    EXPECT_LT(took, 2s);
    const ClientRead r = read_to_end(pair.peer.get());
    EXPECT_EQ(r.bytes.substr(0, kAnswer.size()), kAnswer) << r.describe();
  }
}

TEST_P(LingeringCloseTest, AbortStillResetsAtOnce) {
  FdLeakCheck leaks;
  for (const Transport& t : stream_transports()) {
    if (t == Transport::unix_stream) continue;  // no RST on a Unix socket
    SCOPED_TRACE(name(t));
    Reactor loop(backend());
    StreamPair pair = make_stream_pair(t);
    auto c = Connection::make(loop, std::move(pair.ours));
    int closes = 0;
    c->on_close([&](Connection&, CloseReason, std::error_code) { ++closes; });
    c->start();
    c->abort();
    EXPECT_EQ(loop.watcher_count(), 0u) << "an abort lingers";
    const ClientRead r = read_to_end(pair.peer.get());
    EXPECT_EQ(r.error, ECONNRESET) << r.describe();
    run_iterations(loop, 2);
    EXPECT_EQ(closes, 1);
  }
}

REACTOR_INSTANTIATE_ALL_BACKENDS(LingeringCloseTest);

// linger_close(), the blocking form, needs no loop: one run, not one per backend.
TEST(LingerCloseTest, DeliversTheAnswerWithUnreadInputAndEndsWhenThePeerCloses) {
  FdLeakCheck leaks;
  for (const Transport& t : stream_transports()) {
    SCOPED_TRACE(name(t));
    int resets = 0;
    for (int round = 0; round < kRounds; ++round) {
      StreamPair pair = make_stream_pair(t);
      ASSERT_TRUE(send_all(pair.peer.get(), kRequest));
      ASSERT_TRUE(send_all(pair.ours.fd(), kAnswer));
      std::thread peer([&] {
        const ClientRead r = read_to_end(pair.peer.get());
        if (r.error == ECONNRESET) ++resets;
        EXPECT_EQ(r.bytes, kAnswer) << "round " << round << ": " << r.describe();
        pair.peer.reset();
      });
      const auto t0 = Clock::now();
      linger_close(pair.ours, 1 << 20, 5s);
      const auto took = Clock::now() - t0;
      peer.join();
      EXPECT_FALSE(pair.ours);
      EXPECT_LT(took, 2s) << "round " << round << ": waited past the peer's close";
    }
    EXPECT_EQ(resets, 0) << "of " << kRounds << " rounds";
  }
}

TEST(LingerCloseTest, IsBoundedInTimeAndInBytes) {
  FdLeakCheck leaks;
  for (const Transport& t : stream_transports()) {
    SCOPED_TRACE(name(t));
    {  // a silent peer: the time bound
      StreamPair pair = make_stream_pair(t);
      const auto t0 = Clock::now();
      linger_close(pair.ours, 1 << 20, 200ms);
      const auto took = Clock::now() - t0;
      EXPECT_GE(took, 150ms);
      EXPECT_LT(took, 2s);
      EXPECT_FALSE(pair.ours);
    }
    {  // a peer that never stops sending: the byte bound
      StreamPair pair = make_stream_pair(t);
      set_io_timeouts(pair.peer.get(), 100ms);
      std::atomic<bool> stop{false};
      std::thread flood([&] {
        const std::string chunk(16 * 1024, 'f');
        const auto until = Clock::now() + 10s;
        while (!stop && Clock::now() < until) {
          const ssize_t n = ::send(pair.peer.get(), chunk.data(), chunk.size(), MSG_NOSIGNAL);
          if (n < 0 && errno != EINTR && errno != EAGAIN && errno != EWOULDBLOCK) return;
        }
      });
      const auto t0 = Clock::now();
      linger_close(pair.ours, 256 * 1024, 20s);
      const auto took = Clock::now() - t0;
      stop = true;
      flood.join();
      EXPECT_LT(took, 3s) << "the byte bound did not end it";
      EXPECT_FALSE(pair.ours);
    }
  }
}

}  // namespace
}  // namespace reactor
