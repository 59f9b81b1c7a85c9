// SPDX-License-Identifier: MIT
// EventHandler's hooks, through a StreamServer on the event models (reactor, pool) over every
// backend: data (what a handler leaves stays for the next call), the high and low watermarks
// (by default reading pauses at the high one and resumes at the low one; a handler that
// overrides them takes that over), end of input (by default queued output is flushed and the
// connection closes with CloseReason::eof; an override sees the leftover input and may still
// send), and close (exactly once, whoever closed). Handlers report through atomics, since
// they run on the server's loop threads.
#include <gtest/gtest.h>
#include <sys/socket.h>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "reactor/server/handlers.hpp"
#include "reactor/server/stream_server.hpp"
#include "tests/support/clients.hpp"
#include "tests/support/fds.hpp"
#include "tests/support/servers.hpp"
#include "tests/support/sockets.hpp"
#include "tests/support/time.hpp"

namespace {

using namespace std::chrono_literals;
using reactor::Buffer;
using reactor::CloseReason;
using reactor::Connection;
using reactor::EventHandler;
using reactor::EventHandlerFactory;
using reactor::Model;
using reactor::ServerOptions;
using reactor::StreamServer;
using reactor::test::Fd;
namespace su = reactor::test;

class EventHandlerTest : public su::ModelTest {
 protected:
  // A Unix stream socket: its kernel buffers are small (about 200 KiB each way), so queued
  // output reaches a watermark after a few hundred KiB, where TCP on loopback could take
  // many MiB into the kernel first.
  reactor::Address bind_address() { return dir_.socket_address(); }

 private:
  su::TempDir dir_;
};

/// What the handlers saw, summed over every connection.
struct Seen {
  std::atomic<int> connects{0};
  std::atomic<int> data_calls{0};
  std::atomic<int> highs{0};
  std::atomic<int> lows{0};
  std::atomic<int> eofs{0};
  std::atomic<int> closes{0};
  std::atomic<int> calls_after_close{0};
  std::atomic<std::size_t> max_queued{0};
  std::atomic<std::size_t> leftover_at_eof{0};
  std::atomic<int> last_reason{-1};

  CloseReason reason() const { return static_cast<CloseReason>(last_reason.load()); }
};

/// Echoes what arrives; records every hook and keeps each default behaviour (it calls the
/// base class) unless told otherwise.
class Recorder : public EventHandler {
 public:
  struct Config {
    std::size_t echo_at = 1;         // echo only once this many bytes are buffered
    bool default_watermarks = true;  // false: the watermark hooks do nothing
    bool reply_at_eof = false;       // on_eof: "left N\n", then shutdown()
  };
  Recorder(Seen& seen, Config config) : seen_(seen), config_(config) {}

  void on_connect(Connection&) override {
    check_open();
    ++seen_.connects;
  }
  void on_data(Connection& c, Buffer& in) override {
    check_open();
    ++seen_.data_calls;
    if (in.size() < config_.echo_at) return;  // left for the next call
    c.send(in.view());
    in.consume(in.size());
    std::size_t q = c.queued();
    std::size_t max = seen_.max_queued.load();
    while (q > max && !seen_.max_queued.compare_exchange_weak(max, q)) {
    }
  }
  void on_high_watermark(Connection& c) override {
    check_open();
    ++seen_.highs;
    if (config_.default_watermarks) EventHandler::on_high_watermark(c);
  }
  void on_low_watermark(Connection& c) override {
    check_open();
    ++seen_.lows;
    if (config_.default_watermarks) EventHandler::on_low_watermark(c);
  }
  void on_eof(Connection& c, Buffer& in) override {
    check_open();
    ++seen_.eofs;
    seen_.leftover_at_eof = in.size();
    if (config_.reply_at_eof) {
      c.send("left " + std::to_string(in.size()) + "\n");
      in.consume(in.size());
    }
    EventHandler::on_eof(c, in);
  }
  void on_close(Connection&, CloseReason reason, std::error_code) override {
    check_open();
    closed_ = true;
    seen_.last_reason = static_cast<int>(reason);
    ++seen_.closes;
  }

 private:
  void check_open() {
    if (closed_) ++seen_.calls_after_close;
  }
  Seen& seen_;
  Config config_;
  bool closed_ = false;
};

EventHandlerFactory recorders(Seen& seen, Recorder::Config config = {}) {
  return [&seen, config] { return std::make_unique<Recorder>(seen, config); };
}

/// Small watermarks and a small output cap: a queue that grows past the cap closes the
/// connection with CloseReason::limit, so flow control is visible.
ServerOptions small_queues(const su::ModelCase& c) {
  ServerOptions o = su::options_for(c.model, c.backend);
  o.connection.high_watermark = 64 * 1024;
  o.connection.low_watermark = 16 * 1024;
  o.connection.max_output = 1024 * 1024;
  return o;
}

Fd connect_to(const StreamServer& server) {
  int err = 0;
  Fd fd = su::connect_stream(server.address(), err);
  EXPECT_GE(fd.get(), 0) << std::strerror(err);
  return fd;
}

/// A pattern that shows a lost, repeated or reordered byte.
std::string pattern(std::size_t n) {
  std::string s(n, '\0');
  for (std::size_t i = 0; i < n; ++i) s[i] = static_cast<char>('a' + (i * 7 + i / 251) % 26);
  return s;
}

/// Reads exactly n bytes (fewer on EOF, error or timeout).
std::string read_exactly(int fd, std::size_t n) {
  std::string out;
  std::vector<char> buf(64 * 1024);
  while (out.size() < n) {
    const ssize_t got = ::recv(fd, buf.data(), std::min(buf.size(), n - out.size()), 0);
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) break;
    out.append(buf.data(), static_cast<std::size_t>(got));
  }
  return out;
}

TEST_P(EventHandlerTest, WhatOnDataLeavesStaysForTheNextCall) {
  Seen seen;
  StreamServer server(bind_address(), recorders(seen, {.echo_at = 6}),
                      su::options_for(model(), backend()));
  su::Serving serving(server);
  Fd fd = connect_to(server);
  ASSERT_TRUE(su::send_all(fd.get(), "abc"));
  ASSERT_TRUE(su::wait_for([&] { return seen.data_calls.load() >= 1; }));
  ASSERT_TRUE(su::send_all(fd.get(), "def"));
  EXPECT_EQ(read_exactly(fd.get(), 6), "abcdef");
  EXPECT_GE(seen.data_calls.load(), 2);
}

TEST_P(EventHandlerTest, ByDefaultReadingPausesAtTheHighWatermarkAndResumesAtTheLow) {
  // The client sends 8 MiB without reading: our echo queue would pass the 1 MiB output cap
  // unless reading pauses. Then it reads everything back, which drains the queue below the
  // low watermark and reading resumes, until all 8 MiB have come back intact.
  Seen seen;
  StreamServer server(bind_address(), recorders(seen), small_queues(GetParam()));
  su::Serving serving(server);
  Fd fd = connect_to(server);
  const std::string sent = pattern(8 << 20);
  std::thread writer([&] { su::send_all(fd.get(), sent); });
  ASSERT_TRUE(su::wait_for([&] { return seen.highs.load() >= 1; }));
  std::this_thread::sleep_for(100ms);  // time for the queue to grow if reading went on
  const std::string got = read_exactly(fd.get(), sent.size());
  writer.join();
  EXPECT_EQ(got.size(), sent.size()) << "closed: " << reactor::to_string(seen.reason());
  EXPECT_TRUE(got == sent) << "the echo came back altered";
  EXPECT_GE(seen.highs.load(), 1);
  EXPECT_GE(seen.lows.load(), 1) << "reading resumed without the low watermark hook";
  EXPECT_LT(seen.max_queued.load(), std::size_t{1024 * 1024});
  EXPECT_EQ(seen.closes.load(), 0);
}

TEST_P(EventHandlerTest, WatermarkHooksThatDoNotPauseLeaveTheQueueToGrow) {
  // The same client with handlers that override both watermark hooks and do nothing: the
  // default is gone, reading goes on, and the queue passes the output cap.
  Seen seen;
  StreamServer server(bind_address(), recorders(seen, {.default_watermarks = false}),
                      small_queues(GetParam()));
  su::Serving serving(server);
  Fd fd = connect_to(server);
  const std::string sent = pattern(8 << 20);
  std::thread writer([&] { su::send_all(fd.get(), sent); });  // fails once the server closes
  ASSERT_TRUE(su::wait_for([&] { return seen.closes.load() == 1; }, 10s));
  EXPECT_EQ(seen.reason(), CloseReason::limit);
  EXPECT_GE(seen.highs.load(), 1) << "the hook ran, even though it did not pause";
  // Shut the socket down to end a send still blocked, and close it only after the writer has
  // stopped using it (a close under a running send could hand its number to another file).
  ::shutdown(fd.get(), SHUT_RDWR);
  writer.join();
  su::hang_up(fd);
}

TEST_P(EventHandlerTest, ByDefaultEndOfInputFlushesThenClosesWithEof) {
  // 2 MiB, more than the kernel holds, so that output is still queued when the end of input
  // arrives: all of it comes back before the server's end.
  Seen seen;
  StreamServer server(bind_address(), recorders(seen), su::options_for(model(), backend()));
  su::Serving serving(server);
  Fd fd = connect_to(server);
  const std::string sent = pattern(2 << 20);
  std::thread writer([&] {
    su::send_all(fd.get(), sent);
    ::shutdown(fd.get(), SHUT_WR);
  });
  const su::ClientRead r = su::read_to_end(fd.get());
  writer.join();
  EXPECT_TRUE(r.eof) << r.error;
  EXPECT_TRUE(r.bytes == sent) << r.bytes.size() << " bytes of " << sent.size();
  ASSERT_TRUE(su::wait_for([&] { return seen.closes.load() == 1; }));
  EXPECT_EQ(seen.eofs.load(), 1);
  EXPECT_EQ(seen.reason(), CloseReason::eof);
}

TEST_P(EventHandlerTest, OnEofSeesTheLeftoverInputAndMaySendMore) {
  Seen seen;
  StreamServer server(bind_address(), recorders(seen, {.echo_at = 1000, .reply_at_eof = true}),
                      su::options_for(model(), backend()));
  su::Serving serving(server);
  Fd fd = connect_to(server);
  ASSERT_TRUE(su::send_all(fd.get(), "partial"));
  ASSERT_EQ(::shutdown(fd.get(), SHUT_WR), 0);
  const su::ClientRead r = su::read_to_end(fd.get());
  EXPECT_EQ(r.bytes, "left 7\n");
  EXPECT_TRUE(r.eof) << r.describe();
  ASSERT_TRUE(su::wait_for([&] { return seen.closes.load() == 1; }));
  EXPECT_EQ(seen.leftover_at_eof.load(), 7u);
  EXPECT_EQ(seen.reason(), CloseReason::eof);
}

TEST_P(EventHandlerTest, EndOfInputAfterOurShutdownClosesWithEof) {
  // The handler shut down writing first; the peer's end then finishes both directions: the
  // connection closes (on_eof is not called: there is nothing left to send).
  class ShutFirst : public Recorder {
   public:
    using Recorder::Recorder;
    void on_connect(Connection& c) override {
      Recorder::on_connect(c);
      c.send("bye\n");
      c.shutdown();
    }
  };
  Seen seen;
  StreamServer server(bind_address(), EventHandlerFactory([&seen] {
                        return std::make_unique<ShutFirst>(seen, Recorder::Config{});
                      }),
                      su::options_for(model(), backend()));
  su::Serving serving(server);
  Fd fd = connect_to(server);
  const su::ClientRead r = su::read_to_end(fd.get());
  EXPECT_EQ(r.bytes, "bye\n");
  EXPECT_TRUE(r.eof) << r.describe();
  ASSERT_EQ(::shutdown(fd.get(), SHUT_WR), 0);
  ASSERT_TRUE(su::wait_for([&] { return seen.closes.load() == 1; }))
      << "the connection stayed open with both directions finished";
  EXPECT_EQ(seen.reason(), CloseReason::eof);
  EXPECT_EQ(seen.eofs.load(), 0);
}

TEST_P(EventHandlerTest, OnCloseRunsExactlyOnceWhoeverCloses) {
  // One connection the peer ends, one the handler closes, one the server closes at
  // server_close(): one on_close each, and no call after it.
  class CloseOnQ : public Recorder {
   public:
    using Recorder::Recorder;
    void on_data(Connection& c, Buffer& in) override {
      if (in.view().starts_with("q")) {
        c.close();
        c.close();  // closing twice is still one close
        in.consume(in.size());
        return;
      }
      Recorder::on_data(c, in);
    }
  };
  Seen seen;
  StreamServer server(bind_address(), EventHandlerFactory([&seen] {
                        return std::make_unique<CloseOnQ>(seen, Recorder::Config{});
                      }),
                      su::options_for(model(), backend()));
  su::Serving serving(server);
  Fd leaves = connect_to(server);
  Fd quits = connect_to(server);
  Fd stays = connect_to(server);
  ASSERT_TRUE(su::wait_for([&] { return seen.connects.load() == 3; }));

  su::hang_up(leaves);
  ASSERT_TRUE(su::send_all(quits.get(), "q"));
  ASSERT_TRUE(su::wait_for([&] { return seen.closes.load() == 2; }));
  EXPECT_EQ(su::read_to_end(quits.get()).bytes, "");

  serving.stop();
  server.server_close();
  EXPECT_EQ(seen.closes.load(), 3);
  EXPECT_EQ(seen.reason(), CloseReason::local) << "the last one, closed by the server";
  EXPECT_EQ(seen.calls_after_close.load(), 0);
}

REACTOR_INSTANTIATE_MODEL(EventHandlerTest, Reactor, reactor);
REACTOR_INSTANTIATE_MODEL(EventHandlerTest, Pool, pool);

}  // namespace
