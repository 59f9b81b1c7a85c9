// SPDX-License-Identifier: MIT
// A slow reader, on every backend: a StreamServer (reactor model) pushes 256 MiB of a
// position-dependent pattern to one client over TCP on 127.0.0.1, with flow control — it
// stops producing when Connection::queued() reaches the high watermark (1 MiB) and resumes
// in EventHandler::on_low_watermark (256 KiB). The client reads 16 KiB per
// millisecond for about a second, then at full speed.
// - The queued output never exceeds the high watermark plus one 64 KiB chunk: checked after
//   every send and sampled every millisecond by a timer on the server's loop.
// - The producer really was paused and resumed (the slow phase makes the queue fill).
// - Every byte arrives, in order, then the end of stream (the handler closes gracefully).
// tests/net/flow_control_test.cpp checks the watermark callbacks one crossing at a time;
// this is the same contract under a long, lopsided load.
#include <gtest/gtest.h>
#include <sys/socket.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "reactor/core/timer.hpp"
#include "reactor/net/address.hpp"
#include "reactor/net/connection.hpp"
#include "reactor/server/handlers.hpp"
#include "reactor/server/options.hpp"
#include "reactor/server/stream_server.hpp"
#include "tests/support/backends.hpp"
#include "tests/support/clients.hpp"
#include "tests/support/fds.hpp"
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
using Clock = reactor::test::SteadyClock;
using reactor::test::fill_pattern;
using reactor::test::pattern_mismatch;
using namespace reactor::test;

constexpr std::size_t kKiB = 1024;
constexpr std::size_t kMiB = 1024 * kKiB;
constexpr std::uint64_t kTotal = 256 * kMiB;
constexpr std::size_t kChunk = 64 * kKiB;
constexpr std::size_t kHigh = 1 * kMiB;
constexpr std::size_t kLow = 256 * kKiB;
constexpr std::size_t kSlowRead = 16 * kKiB;
constexpr auto kSlowPhase = 1s;

class SlowReaderTest : public reactor::test::BackendTest {};

// What the producer did. Touched only on the server's loop thread; read by the test after
// the serving thread has been joined.
struct Push {
  Connection* connection = nullptr;  // while open
  std::uint64_t sent = 0;
  std::size_t max_after_send = 0;
  std::size_t max_sampled = 0;
  std::uint64_t samples = 0;
  std::uint64_t samples_nonempty = 0;
  int pauses = 0;   // the producer stopped at the high watermark
  int resumes = 0;  // on_low_watermark
  int closes = 0;
  CloseReason reason = CloseReason::error;
  std::error_code send_error;
  bool closing = false;

  void sample() {
    if (connection == nullptr) return;
    const std::size_t q = connection->queued();
    ++samples;
    samples_nonempty += q > 0 ? 1 : 0;
    max_sampled = std::max(max_sampled, q);
  }
};

class PushHandler : public EventHandler {
 public:
  explicit PushHandler(Push& push) : push_(push) {}
  void on_connect(Connection& c) override {
    push_.connection = &c;
    produce(c);
  }
  void on_data(Connection&, Buffer& in) override { in.consume(in.size()); }
  void on_low_watermark(Connection& c) override {
    ++push_.resumes;
    produce(c);
  }
  void on_close(Connection&, CloseReason reason, std::error_code) override {
    push_.connection = nullptr;
    ++push_.closes;
    push_.reason = reason;
  }

 private:
  void produce(Connection& c) {
    while (push_.sent < kTotal) {
      if (c.queued() >= kHigh) {
        ++push_.pauses;
        return;  // on_low_watermark resumes
      }
      fill_pattern(push_.sent, chunk_.data(), kChunk);
      if (const std::error_code ec = c.send(std::string_view(chunk_.data(), kChunk))) {
        push_.send_error = ec;
        return;
      }
      push_.sent += kChunk;
      push_.max_after_send = std::max(push_.max_after_send, c.queued());
    }
    if (!push_.closing) {
      push_.closing = true;
      c.close();  // graceful: the queue is flushed first
    }
  }

  Push& push_;
  std::vector<char> chunk_ = std::vector<char>(kChunk);
};

// The client: slow for kSlowPhase, then fast. Verifies every byte. Returns bytes read.
struct ReadResult {
  std::uint64_t bytes = 0;
  std::uint64_t slow_bytes = 0;
  bool eof = false;
  int error = 0;
  std::uint64_t mismatch_at = ~std::uint64_t{0};
};

ReadResult read_slowly_then_fast(int fd) {
  ReadResult r;
  std::vector<char> buf(256 * kKiB);
  const auto start = Clock::now();
  bool slow = true;
  while (Clock::now() - start < 60s) {
    if (slow && Clock::now() - start >= kSlowPhase) {
      slow = false;
      r.slow_bytes = r.bytes;
    }
    const ssize_t n = ::recv(fd, buf.data(), slow ? kSlowRead : buf.size(), 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      r.error = errno;
      return r;
    }
    if (n == 0) {
      r.eof = true;
      return r;
    }
    const std::size_t at =
        pattern_mismatch(std::string_view(buf.data(), static_cast<std::size_t>(n)), r.bytes);
    if (at != std::string_view::npos && r.mismatch_at == ~std::uint64_t{0}) {
      r.mismatch_at = r.bytes + at;
    }
    r.bytes += static_cast<std::uint64_t>(n);
    if (slow) std::this_thread::sleep_for(1ms);
  }
  return r;
}

TEST_P(SlowReaderTest, TwoHundredFiftySixMiBWithBoundedQueueAndEveryByteInOrder) {
  Push push;
  ServerOptions o;
  o.model = Model::reactor;
  o.backend = backend();
  o.connection.high_watermark = kHigh;
  o.connection.low_watermark = kLow;
  StreamServer server(
      Address::ipv4_loopback(0),
      [&push]() -> std::unique_ptr<EventHandler> { return std::make_unique<PushHandler>(push); },
      o);
  reactor::Timer sampler = server.loop().every(1ms, [&push] { push.sample(); });

  ReadResult got;
  const auto t0 = Clock::now();
  {
    Serving serving(server);
    int err = 0;
    Fd client = connect_stream(server.address(), err, {}, 20s);
    ASSERT_GE(client.get(), 0) << strerror(err);
    got = read_slowly_then_fast(client.get());
    client.reset();
    std::this_thread::sleep_for(50ms);  // the close reaches the handler
    serving.stop();
    EXPECT_EQ(serving.error(), "");
  }
  const double ms = reactor::test::ms_between(t0, Clock::now());
  const reactor::ServerStats stats = server.stats();
  sampler.cancel();
  server.server_close();

  std::printf(
      "[ info     ] %s: %llu MiB in %.0f ms (%llu MiB in the slow phase); queue max %zu KiB "
      "after a send, %zu KiB sampled (%llu samples, %llu non-empty); %d pauses, %d resumes\n",
      backend().c_str(), static_cast<unsigned long long>(got.bytes / kMiB), ms,
      static_cast<unsigned long long>(got.slow_bytes / kMiB), push.max_after_send / kKiB,
      push.max_sampled / kKiB, static_cast<unsigned long long>(push.samples),
      static_cast<unsigned long long>(push.samples_nonempty), push.pauses, push.resumes);
  EXPECT_EQ(got.bytes, kTotal);
  EXPECT_TRUE(got.eof) << "no end of stream: " << strerror(got.error);
  EXPECT_EQ(got.mismatch_at, ~std::uint64_t{0}) << "first wrong byte at " << got.mismatch_at;
  EXPECT_FALSE(push.send_error) << push.send_error.message();
  EXPECT_EQ(push.sent, kTotal);
  EXPECT_LE(push.max_after_send, kHigh + kChunk);
  EXPECT_LE(push.max_sampled, kHigh + kChunk);
  EXPECT_GT(push.samples_nonempty, 0u) << "the queue never held anything: no back-pressure";
  EXPECT_GE(push.pauses, 1) << "the producer never reached the high watermark";
  EXPECT_GE(push.resumes, 1) << "on_low_watermark never ran";
  EXPECT_EQ(push.closes, 1);
  EXPECT_EQ(push.reason, CloseReason::local) << to_string(push.reason);
  EXPECT_EQ(stats.accepted, 1u);
  EXPECT_EQ(stats.handled, 1u);
  EXPECT_EQ(stats.errors, 0u);
}

REACTOR_INSTANTIATE_ALL_BACKENDS(SlowReaderTest);

}  // namespace
