// SPDX-License-Identifier: MIT
// Buffer allocation failure on every backend, over TCP v4, TCP v6 (when ::1 exists) and Unix
// stream: a buffer allocation that fails (injected with reactor::set_buffer_allocator) when a
// connection's input must grow, and when a send must queue, gives that connection an error — the
// send's return value and/or on_close(CloseReason::limit) exactly once — leaves it closable, and
// does not disturb the other connections on the loop, which keep echoing byte-exactly.
// Leaks are ASan's to find.
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>

#include <chrono>
#include <cstddef>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include "reactor/core/reactor.hpp"
#include "reactor/net/address.hpp"
#include "reactor/net/buffer.hpp"
#include "reactor/net/connection.hpp"
#include "reactor/net/listener.hpp"
#include "reactor/net/socket.hpp"
#include "tests/support/allocators.hpp"
#include "tests/support/backends.hpp"
#include "tests/support/fds.hpp"
#include "tests/support/io.hpp"
#include "tests/support/loop.hpp"
#include "tests/support/patterns.hpp"
#include "tests/support/sockets.hpp"

namespace {

using namespace std::chrono_literals;
using namespace reactor::test;
using reactor::Address;
using reactor::Buffer;
using reactor::CloseReason;
using reactor::Connection;
using reactor::Listener;
using reactor::Reactor;
using reactor::Socket;
using reactor::test::drain_into;
using reactor::test::Fd;
using reactor::test::FdLeakCheck;
using reactor::test::make_stream_pair;
using reactor::test::PeerInput;
using reactor::test::random_bytes;
using reactor::test::raw_connect;
using reactor::test::run_until;
using reactor::test::ScopedFailingAllocator;
using reactor::test::send_some;
using reactor::test::stream_transports;
using reactor::test::StreamPair;
using reactor::test::Transport;
using reactor::test::wait_fd;

/// Allocations of this size or more fail while injection is on. The bystanders never need
/// that much (100-byte ping-pong), the victims always do.
constexpr std::size_t kFailFrom = 16 * 1024;
constexpr int kBystanders = 5;

class AllocFailureTest : public reactor::test::BackendTest {
 protected:
  void SetUp() override { reactor::test::warm_up(backend()); }
};

/// A client that ping-pongs 100-byte random messages with the echo server and checks every
/// echo byte for byte.
struct Pinger {
  std::shared_ptr<Connection> conn;
  std::mt19937_64 rng;
  std::string expect;
  std::string got;
  int rounds = 0;
  int mismatches = 0;
  int closes = 0;
  bool running = true;

  void send_next() {
    expect = random_bytes(rng, 100);
    got.clear();
    EXPECT_FALSE(conn->send(expect));
  }
};

/// The README echo server plus kBystanders pingers on one loop.
class EchoBench {
 public:
  EchoBench(Reactor& loop, const Address& bind)
      : loop_(loop), listener_(loop, bind, [this](Socket socket, const Address&) {
          auto c = Connection::make(loop_, std::move(socket));
          c->on_data([](Connection& c, Buffer& in) {
            c.send(in.view());
            in.clear();
          });
          c->on_close([this](Connection& c, CloseReason, std::error_code) {
            server_side_.erase(c.shared_from_this());
          });
          server_side_.insert(c);
          c->start();
        }) {}

  /// Connects the pingers and starts their ping-pong. False if a connect failed.
  bool start() {
    for (int i = 0; i < kBystanders; ++i) {
      int err = 0;
      Fd fd = raw_connect(listener_.address(), err);
      if (fd.get() < 0 || (wait_fd(fd.get(), POLLOUT, 5000) & POLLOUT) == 0) return false;
      auto p = std::make_unique<Pinger>();
      p->rng.seed(1000 + static_cast<unsigned>(i));
      p->conn = Connection::make(loop_, Socket(fd.release()));
      Pinger* raw = p.get();
      p->conn->on_data([raw](Connection&, Buffer& in) {
        raw->got.append(in.view());
        in.clear();
        if (raw->got.size() < raw->expect.size()) return;
        if (raw->got != raw->expect) ++raw->mismatches;
        ++raw->rounds;
        if (raw->running) raw->send_next();
      });
      p->conn->on_close([raw](Connection&, CloseReason, std::error_code) { ++raw->closes; });
      p->conn->start();
      p->send_next();
      pingers_.push_back(std::move(p));
    }
    return true;
  }

  /// Least number of rounds any pinger has completed.
  int min_rounds() const {
    int least = 1 << 30;
    for (const auto& p : pingers_) least = std::min(least, p->rounds);
    return least;
  }

  /// Every pinger completed `more` rounds beyond `from` (bounded wait).
  bool advance(int from, int more, std::chrono::milliseconds cap = 5000ms) {
    return run_until(
        loop_, [&] { return min_rounds() >= from + more; }, cap);
  }

  /// The pingers are healthy: nothing closed, no echo differed.
  void expect_healthy() const {
    for (std::size_t i = 0; i < pingers_.size(); ++i) {
      EXPECT_EQ(pingers_[i]->closes, 0) << "bystander " << i << " was closed";
      EXPECT_EQ(pingers_[i]->mismatches, 0) << "bystander " << i << " got a wrong echo";
      EXPECT_TRUE(pingers_[i]->conn->open()) << "bystander " << i;
    }
  }

  /// Closes the pingers and waits until both sides of every connection reported on_close.
  void finish() {
    for (auto& p : pingers_) {
      p->running = false;
      p->conn->close();
    }
    EXPECT_TRUE(run_until(
        loop_,
        [&] {
          for (const auto& p : pingers_) {
            if (p->closes != 1) return false;
          }
          return server_side_.empty();
        },
        5000ms))
        << server_side_.size() << " server connections left";
  }

 private:
  Reactor& loop_;
  std::set<std::shared_ptr<Connection>> server_side_;
  Listener listener_;
  std::vector<std::unique_ptr<Pinger>> pingers_;
};

/// What a victim connection reported.
struct VictimLog {
  int closes = 0;
  CloseReason reason = CloseReason::local;
  std::error_code ec;
  int data_calls_after_close = 0;
};

bool is_memory_error(std::error_code ec) {
  return ec == std::errc::not_enough_memory || ec == std::errc::no_buffer_space;
}

/// The victim is closed, stays closed through more calls, and its peer sees the end.
void expect_closed_and_closable(Reactor& loop, Connection& victim, const VictimLog& log,
                                int peer_fd) {
  EXPECT_EQ(log.closes, 1);
  EXPECT_EQ(log.reason, CloseReason::limit) << to_string(log.reason);
  EXPECT_TRUE(is_memory_error(log.ec)) << log.ec.message();
  EXPECT_FALSE(victim.open());
  victim.close();  // closable after the failure: a no-op, no second on_close
  victim.abort();
  EXPECT_TRUE(victim.send("late") == std::errc::broken_pipe);
  run_until(
      loop, [] { return false; }, 50ms);
  EXPECT_EQ(log.closes, 1) << "on_close ran again";
  EXPECT_EQ(log.data_calls_after_close, 0);
  // Its socket is really closed: the peer reads everything that was sent, then EOF/reset.
  PeerInput in;
  const auto deadline = std::chrono::steady_clock::now() + 2s;
  while (!in.eof && in.error == 0 && std::chrono::steady_clock::now() < deadline) {
    wait_fd(peer_fd, POLLIN, 50);
    in.bytes.clear();
    drain_into(peer_fd, in, std::size_t{64} << 20);
  }
  EXPECT_TRUE(in.eof || in.error != 0) << "the victim's fd is still open";
}

// ---------------------------------------------------------------------------------------

TEST_P(AllocFailureTest, ReadThatMustGrowTheInputClosesOnlyThatConnection) {
  FdLeakCheck leaks;
  ScopedFailingAllocator allocator;
  Reactor loop(backend());
  std::mt19937_64 rng(5);
  for (const Transport& t : stream_transports()) {
    SCOPED_TRACE(name(t));
    EchoBench bench(loop, bind_address(t));
    ASSERT_TRUE(bench.start());
    ASSERT_TRUE(bench.advance(0, 10)) << "the echo server does not work";

    StreamPair pair = make_stream_pair(t, PeerMode::nonblocking);
    ASSERT_TRUE(pair.ours);
    // The connecting end is the victim; the accepted end is the raw peer.
    auto victim = Connection::make(loop, Socket(pair.peer.release()));
    VictimLog log;
    victim->on_data([&](Connection& c, Buffer&) {  // never consumes: the input must grow
      if (!c.open()) ++log.data_calls_after_close;
    });
    victim->on_close([&](Connection&, CloseReason r, std::error_code ec) {
      ++log.closes;
      log.reason = r;
      log.ec = ec;
    });
    victim->start();

    const std::size_t failures_before = allocator.failures();
    allocator.fail_from(kFailFrom);
    const std::string flood = random_bytes(rng, std::size_t{1} << 20);
    std::string pending = flood;
    std::size_t sent = 0;
    const int rounds_before = bench.min_rounds();
    ASSERT_TRUE(run_until(
        loop,
        [&] {
          send_some(pair.ours.fd(), pending);
          sent = flood.size() - pending.size();
          return log.closes > 0;
        },
        5000ms))
        << "no close after the input allocation failed; sent " << sent;
    EXPECT_GT(allocator.failures(), failures_before) << "no allocation was refused";
    // The bystanders went on during the failure and go on after it, still injecting.
    ASSERT_TRUE(bench.advance(rounds_before, 20));
    bench.expect_healthy();
    allocator.stop_failing();
    expect_closed_and_closable(loop, *victim, log, pair.ours.fd());
    ASSERT_TRUE(bench.advance(bench.min_rounds(), 10));
    bench.expect_healthy();
    bench.finish();
  }
}

TEST_P(AllocFailureTest, SendThatMustQueueFailsAndClosesOnlyThatConnection) {
  FdLeakCheck leaks;
  ScopedFailingAllocator allocator;
  Reactor loop(backend());
  std::mt19937_64 rng(6);
  for (const Transport& t : stream_transports()) {
    // Two ways to need memory for the queue: the first bytes queued, and a queue that must
    // grow past what it holds.
    for (const bool already_queued : {false, true}) {
      SCOPED_TRACE(std::string(name(t)) + (already_queued ? " growing queue" : " first queue"));
      EchoBench bench(loop, bind_address(t));
      ASSERT_TRUE(bench.start());
      ASSERT_TRUE(bench.advance(0, 10)) << "the echo server does not work";

      StreamPair pair = make_stream_pair(t, PeerMode::nonblocking);
      ASSERT_TRUE(pair.ours);
      Socket victim_end(pair.peer.release());  // the connecting end; the accepted one is the peer
      victim_end.set_send_buffer(16 * 1024);
      pair.ours.set_receive_buffer(16 * 1024);  // and the peer never reads
      auto victim = Connection::make(loop, std::move(victim_end));
      VictimLog log;
      victim->on_data([&](Connection& c, Buffer& in) {
        if (!c.open()) ++log.data_calls_after_close;
        in.clear();
      });
      victim->on_close([&](Connection&, CloseReason r, std::error_code ec) {
        ++log.closes;
        log.reason = r;
        log.ec = ec;
      });
      victim->start();
      if (already_queued) {
        ASSERT_FALSE(victim->send(random_bytes(rng, 2 * kFailFrom)));
        ASSERT_FALSE(victim->send(random_bytes(rng, 2 * kFailFrom)));
        ASSERT_GT(victim->queued(), 0u) << "nothing queued: the socket took it all";
      }

      const std::size_t failures_before = allocator.failures();
      allocator.fail_from(kFailFrom);
      const int rounds_before = bench.min_rounds();
      const std::error_code ec = victim->send(random_bytes(rng, std::size_t{4} << 20));
      EXPECT_TRUE(is_memory_error(ec)) << "send returned " << (ec ? ec.message() : "success");
      EXPECT_GT(allocator.failures(), failures_before) << "no allocation was refused";
      EXPECT_EQ(log.closes, 0) << "on_close ran inside send()";
      ASSERT_TRUE(run_until(
          loop, [&] { return log.closes > 0; }, 5000ms))
          << "no on_close";
      ASSERT_TRUE(bench.advance(rounds_before, 20));
      bench.expect_healthy();
      allocator.stop_failing();
      expect_closed_and_closable(loop, *victim, log, pair.ours.fd());
      ASSERT_TRUE(bench.advance(bench.min_rounds(), 10));
      bench.expect_healthy();
      bench.finish();
    }
  }
}

REACTOR_INSTANTIATE_ALL_BACKENDS(AllocFailureTest);

}  // namespace
