// SPDX-License-Identifier: MIT
// A peer that resets while a large write is queued, on every backend, with SIGPIPE at its
// default disposition (asserted first: a single send without MSG_NOSIGNAL kills the test
// process). tests/net/peer_failure_test.cpp resets under a 4 MiB flush; here 32 MiB
// are queued as 512 separate sends, the peer reads the first MiB (checked in order), then
// resets:
// - Connection level (TCP v4, TCP v6 when ::1 exists, Unix stream): on_close(reset) exactly
//   once with ECONNRESET or EPIPE, nothing after it; every later send() fails with EPIPE,
//   one after another; the queue is released; SIGPIPE is neither raised nor touched.
//   Connection::send() has no per-write completion (the queue is one byte stream), so "each
//   queued write fails in order" can only be checked as: the peer got an in-order prefix,
//   and from the close on every send fails the same way.
// - Server level (reactor and pool models): an EventHandler that queued 32 MiB gets
//   on_close(reset) once; the server keeps serving the next client; stats count no error.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/socket.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "reactor/core/reactor.hpp"
#include "reactor/net/address.hpp"
#include "reactor/net/connection.hpp"
#include "reactor/server/handlers.hpp"
#include "reactor/server/options.hpp"
#include "reactor/server/stream_server.hpp"
#include "tests/support/backends.hpp"
#include "tests/support/clients.hpp"
#include "tests/support/errors.hpp"
#include "tests/support/fds.hpp"
#include "tests/support/io.hpp"
#include "tests/support/loop.hpp"
#include "tests/support/patterns.hpp"
#include "tests/support/sanitizers.hpp"
#include "tests/support/servers.hpp"
#include "tests/support/signals.hpp"
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
using reactor::test::Fd;
using reactor::test::fill_pattern;
using reactor::test::pattern_mismatch;

constexpr std::size_t kKiB = 1024;
constexpr std::size_t kMiB = 1024 * kKiB;
constexpr std::size_t kWrites = 512;
constexpr std::size_t kWriteSize = 64 * kKiB;  // 512 x 64 KiB = 32 MiB
constexpr std::size_t kPeerReads = kMiB;
// How long to wait for a close to be reported: a sanity bound. Under TSan, queueing the
// 32 MiB alone takes over a second.
const auto kPatience =
    std::chrono::milliseconds(static_cast<long long>(5000 * reactor::test::kLatencySlack));

class ResetQueuedTest : public reactor::test::BackendTest {
 protected:
  void SetUp() override {
    ASSERT_EQ(reactor::test::handler_of(reactor::test::query_disposition(SIGPIPE)),
              reinterpret_cast<void*>(SIG_DFL))
        << "SIGPIPE must be at its default disposition for this test to mean anything";
  }
  void TearDown() override {
    EXPECT_EQ(reactor::test::handler_of(reactor::test::query_disposition(SIGPIPE)),
              reinterpret_cast<void*>(SIG_DFL))
        << "SIGPIPE's disposition was changed behind the user's back";
  }
};

std::string chunk_at(std::uint64_t offset, std::size_t n) {
  std::string s(n, '\0');
  fill_pattern(offset, s.data(), n);
  return s;
}

// The 32 MiB, made once (a std::string_view of it is cheap to send piecewise). Under ASan,
// making them per connection takes long enough for the client's reset to arrive in the middle
// of on_connect (which the server test allows, but then less of the flood is queued).
const std::string& flood() {
  static const std::string bytes = chunk_at(0, kWrites * kWriteSize);
  return bytes;
}

// Connection level.
void connection_part(const std::string& backend, Transport t) {
  Reactor loop(backend);
  StreamPair pair = make_stream_pair(t, PeerMode::nonblocking);
  auto c = Connection::make(loop, std::move(pair.ours));
  Recorder rec;
  rec.attach(*c);
  c->start();

  for (std::size_t i = 0; i < kWrites; ++i) {
    const std::error_code ec =
        c->send(std::string_view(flood()).substr(i * kWriteSize, kWriteSize));
    ASSERT_FALSE(ec) << "write " << i << ": " << ec.message();
  }
  EXPECT_GT(c->queued(), 16 * kMiB) << "the kernel took most of it: nothing large is queued";
  const std::size_t queued_before = c->queued();

  // The peer reads the first MiB while the loop flushes, then resets with the rest queued.
  PeerInput in;
  EXPECT_TRUE(run_until(
      loop,
      [&] {
        drain_into(pair.peer.get(), in, kPeerReads - std::min(kPeerReads, in.bytes.size()));
        return in.bytes.size() >= kPeerReads || in.eof || in.error != 0;
      },
      kPatience, 1ms));
  ASSERT_GE(in.bytes.size(), kPeerReads);
  EXPECT_EQ(pattern_mismatch(in.bytes, 0), std::string_view::npos) << "bytes out of order";
  // For a Unix peer, its close is a reset only while our bytes wait unread in it.
  ASSERT_GT(unread_bytes(pair.peer.get()), 0);
  EXPECT_FALSE(rec.closed());
  reset_close(pair.peer);

  // The loop has not looked yet: a send now may still be queued, or fail; never crash.
  const std::error_code racing = c->send("racing the reset");
  EXPECT_TRUE(!racing || IsOneOf(racing, {std::errc::broken_pipe, std::errc::connection_reset}))
      << racing.message();

  EXPECT_TRUE(run_until(
      loop, [&] { return rec.closed(); }, kPatience))
      << "the reset was never reported";
  run_iterations(loop, 20);
  EXPECT_EQ(rec.closes, 1);
  EXPECT_EQ(rec.reason, CloseReason::reset) << to_string(rec.reason);
  EXPECT_TRUE(IsOneOf(rec.error, {std::errc::connection_reset, std::errc::broken_pipe}));
  EXPECT_EQ(rec.calls_after_close, 0);
  EXPECT_FALSE(c->open());
  EXPECT_EQ(c->queued(), 0u) << "the dead queue (" << queued_before << " bytes) is still held";

  // Later writes: each fails, clearly and the same way, from inside the loop too.
  int failed = 0;
  for (int i = 0; i < 100; ++i) {
    if (IsErrc(c->send(chunk_at(0, 4096)), std::errc::broken_pipe)) ++failed;
    if (i % 10 == 0) loop.run_once(0ms);
  }
  EXPECT_EQ(failed, 100);
  EXPECT_TRUE(IsErrc(c->shutdown(), std::errc::broken_pipe));
  c->close();  // harmless now
  c->abort();
  run_iterations(loop, 5);
  EXPECT_EQ(rec.closes, 1);
  EXPECT_EQ(rec.calls_after_close, 0);
}

TEST_P(ResetQueuedTest, ThirtyTwoMiBQueuedThenResetFailsOnceWithoutSigpipe) {
  reactor::test::warm_up(backend());
  for_each_transport([&](Transport t) { connection_part(backend(), t); });
}

// Server level: queues 32 MiB on connect.
struct Seen {
  std::atomic<int> closes{0};
  std::atomic<int> resets{0};
  std::atomic<int> error{0};
  std::atomic<int> calls_after_close{0};
  // Sends that failed, and sends that succeeded after one had failed (must stay 0: once a
  // write fails, every later one fails too, in the order they are made).
  std::atomic<int> send_failures{0};
  std::atomic<int> success_after_failure{0};
  std::atomic<int> unclear_failures{0};  // anything but EPIPE or ECONNRESET
};

class FloodHandler : public EventHandler {
 public:
  explicit FloodHandler(Seen& seen) : seen_(seen) {}
  void on_connect(Connection& c) override {
    const std::string_view all = flood();
    bool failed = false;
    for (std::size_t i = 0; i < kWrites; ++i) {
      const std::error_code ec = c.send(all.substr(i * kWriteSize, kWriteSize));
      if (ec) {
        failed = true;
        ++seen_.send_failures;
        if (ec != std::errc::broken_pipe && ec != std::errc::connection_reset) {
          ++seen_.unclear_failures;
        }
      } else if (failed) {
        ++seen_.success_after_failure;
      }
    }
  }
  void on_data(Connection& c, Buffer& in) override {
    if (closed_) ++seen_.calls_after_close;
    c.send(in.view());
    in.consume(in.size());
  }
  void on_low_watermark(Connection&) override {
    if (closed_) ++seen_.calls_after_close;
  }
  void on_close(Connection&, CloseReason reason, std::error_code ec) override {
    if (closed_) ++seen_.calls_after_close;
    closed_ = true;
    ++seen_.closes;
    if (reason == CloseReason::reset) ++seen_.resets;
    seen_.error = ec.value();
  }

 private:
  Seen& seen_;
  bool closed_ = false;
};

void server_part(const std::string& backend, Model model) {
  SCOPED_TRACE(std::string("model ") + std::string(to_string(model)));
  Seen seen;
  flood();
  ServerOptions o;
  o.model = model;
  o.threads = 2;
  o.backend = backend;
  StreamServer server(
      Address::ipv4_loopback(0),
      [&seen]() -> std::unique_ptr<EventHandler> { return std::make_unique<FloodHandler>(seen); },
      o);
  Serving serving(server);
  {
    int err = 0;
    Fd client = connect_stream(server.address(), err, {}, 10s);
    ASSERT_GE(client.get(), 0) << strerror(err);
    std::string got;
    char buf[65536];
    while (got.size() < kPeerReads) {
      const ssize_t n = ::recv(client.get(), buf, std::min(sizeof buf, kPeerReads - got.size()), 0);
      if (n < 0 && errno == EINTR) continue;
      ASSERT_GT(n, 0) << "the flood stopped early: " << (n == 0 ? "EOF" : strerror(errno));
      got.append(buf, static_cast<std::size_t>(n));
    }
    EXPECT_EQ(pattern_mismatch(got, 0), std::string_view::npos);
    std::this_thread::sleep_for(20ms);  // more arrives unread: the close is a reset
    reset_close(client);
  }
  EXPECT_TRUE(wait_for([&] { return seen.closes.load() > 0; }, kPatience)) << "no on_close";
  // The server goes on: the next client gets its own flood, from the start.
  {
    int err = 0;
    Fd next = connect_stream(server.address(), err, {}, 10s);
    ASSERT_GE(next.get(), 0) << strerror(err);
    std::string got(64 * kKiB, '\0');
    ASSERT_EQ(::recv(next.get(), got.data(), got.size(), MSG_WAITALL),
              static_cast<ssize_t>(got.size()));
    EXPECT_EQ(pattern_mismatch(got, 0), std::string_view::npos);
    std::this_thread::sleep_for(20ms);
    reset_close(next);
  }
  EXPECT_TRUE(wait_for([&] { return seen.closes.load() >= 2; }, kPatience));
  std::this_thread::sleep_for(20ms);
  const reactor::ServerStats stats = server.stats();
  serving.stop();
  EXPECT_EQ(serving.error(), "");
  server.server_close();
  EXPECT_EQ(seen.closes.load(), 2);
  EXPECT_EQ(seen.resets.load(), 2);
  EXPECT_TRUE(seen.error.load() == ECONNRESET || seen.error.load() == EPIPE)
      << strerror(seen.error.load());
  // The reset may come while on_connect is still sending (slow builds): from then on every
  // send fails, clearly.
  EXPECT_EQ(seen.success_after_failure.load(), 0);
  EXPECT_EQ(seen.unclear_failures.load(), 0);
  std::printf("[ info     ] %s, %s: %d of %zu sends failed in on_connect\n", backend.c_str(),
              std::string(to_string(model)).c_str(), seen.send_failures.load(), 2 * kWrites);
  EXPECT_EQ(seen.calls_after_close.load(), 0);
  EXPECT_EQ(stats.accepted, 2u);
  EXPECT_EQ(stats.handled, 2u);
  EXPECT_EQ(stats.errors, 0u);
  EXPECT_EQ(stats.active, 0u);
}

TEST_P(ResetQueuedTest, ServerHandlerWithThirtyTwoMiBQueuedSeesTheResetOnce) {
  for (Model m : {Model::reactor, Model::pool}) server_part(backend(), m);
}

REACTOR_INSTANTIATE_ALL_BACKENDS(ResetQueuedTest);

}  // namespace
