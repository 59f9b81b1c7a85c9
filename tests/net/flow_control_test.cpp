// SPDX-License-Identifier: MIT
// Flow control of stream connections on every backend and every stream transport: paused
// reading does not spin, pause/resume, high and low watermarks, and the input and output
// caps.
#include <gtest/gtest.h>
#include <sys/socket.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>
#include <thread>

#include "reactor/core/reactor.hpp"
#include "reactor/net/buffer.hpp"
#include "reactor/net/connection.hpp"
#include "reactor/net/socket.hpp"
#include "tests/support/backends.hpp"
#include "tests/support/errors.hpp"
#include "tests/support/fds.hpp"
#include "tests/support/io.hpp"
#include "tests/support/loop.hpp"
#include "tests/support/patterns.hpp"
#include "tests/support/sockets.hpp"
#include "tests/support/time.hpp"

namespace {

using namespace std::chrono_literals;
using namespace reactor::test;
using reactor::Buffer;
using reactor::CloseReason;
using reactor::Connection;
using reactor::Reactor;
using reactor::Timer;

constexpr std::size_t kKiB = 1024;
constexpr std::size_t kMiB = 1024 * 1024;
constexpr std::size_t npos = std::string_view::npos;

class FlowControlTest : public reactor::test::BackendTest {};

// Closes `c` (when the test left it open) and runs the loop until its on_close has run.
void close_and_settle(Reactor& loop, Connection& c, const Recorder& rec) {
  if (!rec.closed()) c.close();
  EXPECT_TRUE(run_until(
      loop, [&] { return rec.closed(); }, 5000ms))
      << "on_close never ran";
  run_iterations(loop, 3);
  EXPECT_EQ(rec.closes, 1);
  EXPECT_EQ(rec.calls_after_close, 0);
}

// ---------------------------------------------------------------------------------------
// Paused reading does not spin

// Reading is paused; a peer thread sends 1 MiB (blocking once the kernel buffers are full).
// For the 1 s pause the loop must sleep: at most 20 iterations and no on_data. After
// resume_reading() every byte arrives, in order.
void paused_reading_part(const std::string& backend, Transport t) {
  Reactor loop(backend);
  StreamPair pair = make_stream_pair(t, PeerMode::blocking);
  const int peer_fd = pair.peer.get();
  auto c = Connection::make(loop, std::move(pair.ours));
  Recorder rec;
  rec.attach(*c);
  c->start();
  run_iterations(loop, 2);
  c->pause_reading();
  EXPECT_FALSE(c->reading());
  run_iterations(loop, 2);

  const std::string payload = pattern(0, kMiB);
  std::atomic<bool> sent_all{false};
  PeerThread peer(peer_fd, [&] { sent_all.store(send_all(peer_fd, payload)); });
  // The pause only means something once input is waiting.
  ASSERT_TRUE(wait_for([&] { return unread_bytes(c->fd()) > 0; })) << "no input arrived";
  std::this_thread::sleep_for(20ms);  // let the peer fill the kernel buffers

  bool resumed = false;
  std::uint64_t paused_iterations = 0;
  std::size_t data_calls_while_paused = 0;
  const std::uint64_t before = loop.iterations();
  const auto t0 = SteadyClock::now();
  Timer resume = loop.after(1s, [&] {
    resumed = true;
    paused_iterations = loop.iterations() - before;
    data_calls_while_paused = rec.data_calls;
    c->resume_reading();
  });
  // Long waits: a sleeping loop makes a handful of iterations, a spinning one thousands
  // (bounded by the call count and a 5 s wall-clock cap).
  for (int calls = 0; calls < 100000 && !resumed && SteadyClock::now() - t0 < 5s; ++calls) {
    loop.run_once(500ms);
  }
  ASSERT_TRUE(resumed) << "the 1 s timer never fired";
  const double ms = std::chrono::duration<double, std::milli>(SteadyClock::now() - t0).count();
  std::printf("[ info     ] %s: %llu iterations during a %.0f ms pause\n", name(t),
              static_cast<unsigned long long>(paused_iterations), ms);
  ::testing::Test::RecordProperty(std::string("paused_iterations_") + name(t),
                                  static_cast<int>(paused_iterations));
  EXPECT_LE(paused_iterations, 20u) << "the paused connection kept the loop busy";
  EXPECT_EQ(data_calls_while_paused, 0u) << "on_data while paused";
  EXPECT_TRUE(c->reading());

  EXPECT_TRUE(run_until(loop, [&] { return rec.data.size() >= payload.size() || rec.closed(); }))
      << rec.data.size() << " of " << payload.size() << " bytes after resume";
  peer.join();
  EXPECT_TRUE(sent_all.load());
  EXPECT_EQ(rec.data.size(), payload.size());
  EXPECT_EQ(pattern_mismatch(rec.data), npos) << "bytes out of order";
  EXPECT_FALSE(rec.closed());
  close_and_settle(loop, *c, rec);
  EXPECT_EQ(rec.reason, CloseReason::local) << to_string(rec.reason);
}

TEST_P(FlowControlTest, PausedReadingDoesNotSpin) {
  for_each_transport([&](Transport t) { paused_reading_part(backend(), t); });
}

// A peer that has hung up while we are paused must not make the loop spin either (hang-up
// and error are reported even for an empty interest by poll and epoll).
void paused_on_dead_socket_part(const std::string& backend, Transport t) {
  Reactor loop(backend);
  StreamPair pair = make_stream_pair(t, PeerMode::nonblocking);
  auto c = Connection::make(loop, std::move(pair.ours));
  Recorder rec;
  rec.attach(*c);
  c->start();
  c->pause_reading();
  ASSERT_TRUE(send_all(pair.peer.get(), "bye"));
  reset_close(pair.peer);
  std::this_thread::sleep_for(20ms);

  const std::uint64_t before = loop.iterations();
  const auto t0 = SteadyClock::now();
  for (int calls = 0; calls < 100000 && SteadyClock::now() - t0 < 500ms; ++calls) {
    loop.run_once(100ms);
  }
  const std::uint64_t iterations = loop.iterations() - before;
  EXPECT_LE(iterations, 20u) << "a paused connection on a dead socket made the loop spin";
  EXPECT_EQ(rec.data_calls, 0u);
  EXPECT_FALSE(rec.closed()) << "closed while paused: " << to_string(rec.reason);

  c->resume_reading();
  EXPECT_TRUE(run_until(loop, [&] { return rec.closed(); }));
  EXPECT_EQ(rec.closes, 1);
  EXPECT_TRUE(rec.reason == CloseReason::reset || rec.reason == CloseReason::eof)
      << to_string(rec.reason);
  close_and_settle(loop, *c, rec);
}

TEST_P(FlowControlTest, PausedOnDeadSocketDoesNotSpin) {
  for_each_transport([&](Transport t) { paused_on_dead_socket_part(backend(), t); });
}

// ---------------------------------------------------------------------------------------
// Pause and resume

// pause_reading() before start(): nothing is read until resume_reading().
void pause_before_start_part(const std::string& backend, Transport t) {
  Reactor loop(backend);
  StreamPair pair = make_stream_pair(t, PeerMode::nonblocking);
  ASSERT_TRUE(send_all(pair.peer.get(), "early"));
  auto c = Connection::make(loop, std::move(pair.ours));
  Recorder rec;
  rec.attach(*c);
  c->pause_reading();
  EXPECT_FALSE(c->reading());
  c->start();
  EXPECT_FALSE(c->reading());
  run_iterations(loop, 20);
  EXPECT_EQ(rec.data_calls, 0u) << "read while paused (paused before start())";
  EXPECT_EQ(rec.data, "");
  c->resume_reading();
  EXPECT_TRUE(run_until(loop, [&] { return rec.data.size() >= 5; }));
  EXPECT_EQ(rec.data, "early");
  close_and_settle(loop, *c, rec);
}

TEST_P(FlowControlTest, PauseBeforeStartHoldsInput) {
  for_each_transport([&](Transport t) { pause_before_start_part(backend(), t); });
}

// pause_reading() inside on_data: no further on_data until resume_reading(), then the rest
// arrives in order.
void pause_inside_on_data_part(const std::string& backend, Transport t) {
  Reactor loop(backend);
  StreamPair pair = make_stream_pair(t, PeerMode::nonblocking);
  const int peer_fd = pair.peer.get();
  auto c = Connection::make(loop, std::move(pair.ours));
  Recorder rec;
  rec.attach(*c);
  c->on_data([&](Connection& conn, Buffer& in) {
    rec.record_data(in);
    if (rec.data_calls == 1) conn.pause_reading();
  });
  c->start();
  ASSERT_TRUE(send_all(peer_fd, "first"));
  EXPECT_TRUE(run_until(loop, [&] { return rec.data_calls > 0; }));
  EXPECT_FALSE(c->reading());
  std::string pending = pattern(0, 100 * kKiB);
  const std::string rest = pending;
  for (int i = 0; i < 20; ++i) {
    EXPECT_EQ(send_some(peer_fd, pending), 0);
    loop.run_once(5ms);
  }
  EXPECT_EQ(rec.data_calls, 1u) << "on_data after pause_reading()";
  EXPECT_EQ(rec.data, "first");
  c->resume_reading();
  EXPECT_TRUE(run_until(loop, [&] {
    EXPECT_EQ(send_some(peer_fd, pending), 0);
    return rec.data.size() >= 5 + rest.size();
  }));
  EXPECT_EQ(first_difference(rec.data, "first" + rest), npos);
  close_and_settle(loop, *c, rec);
}

TEST_P(FlowControlTest, PauseInsideOnDataStopsDelivery) {
  for_each_transport([&](Transport t) { pause_inside_on_data_part(backend(), t); });
}

// ---------------------------------------------------------------------------------------
// Watermarks

// Queued output crosses the high watermark: on_high_watermark once, from the loop (not inside
// send()); it falls to the low watermark as the peer reads: on_low_watermark once, with
// queued() at or below the low mark. A second crossing gives a second pair.
void watermarks_part(const std::string& backend, Transport t) {
  Reactor loop(backend);
  StreamPair pair = make_stream_pair(t, PeerMode::nonblocking);
  const int peer_fd = pair.peer.get();
  ASSERT_FALSE(pair.ours.set_send_buffer(4096));
  Connection::Options options;
  options.high_watermark = 256 * kKiB;
  options.low_watermark = 64 * kKiB;
  auto c = Connection::make(loop, std::move(pair.ours), options);
  Recorder rec;
  rec.attach(*c);
  bool in_send = false;
  std::size_t queued_at_high = 0, queued_at_low = npos;
  c->on_high_watermark([&](Connection& conn) {
    EXPECT_FALSE(in_send) << "on_high_watermark inside send()";
    ++rec.highs;
    queued_at_high = conn.queued();
  });
  c->on_low_watermark([&](Connection& conn) {
    EXPECT_FALSE(in_send) << "on_low_watermark inside send()";
    ++rec.lows;
    queued_at_low = conn.queued();
  });
  c->start();

  std::uint64_t offset = 0;
  // Sends 16 KiB pieces until the queue holds twice the high mark (the kernel's share grows
  // as TCP autotunes its buffers, so a fixed amount may not be enough), at most 32 MiB.
  auto produce = [&] {
    for (std::size_t done = 0; done < 32 * kMiB && c->queued() < 2 * options.high_watermark;
         done += 16 * kKiB) {
      in_send = true;
      const std::error_code ec = c->send(pattern(offset, 16 * kKiB));
      in_send = false;
      ASSERT_FALSE(ec) << ec.message();
      offset += 16 * kKiB;
    }
  };
  PeerInput in;
  for (int round = 1; round <= 2; ++round) {
    SCOPED_TRACE("crossing " + std::to_string(round));
    produce();
    ASSERT_GE(c->queued(), options.high_watermark) << "the queue never reached the high mark";
    EXPECT_EQ(rec.highs, round - 1) << "on_high_watermark ran inside send()";
    run_iterations(loop, 5);  // the peer is not reading yet
    EXPECT_EQ(rec.highs, round);
    EXPECT_GE(queued_at_high, options.low_watermark);
    EXPECT_EQ(rec.lows, round - 1);
    EXPECT_TRUE(run_until(loop,
                          [&] {
                            drain_into(peer_fd, in);
                            return in.bytes.size() >= offset;
                          }))
        << in.bytes.size() << " of " << offset;
    EXPECT_EQ(rec.lows, round);
    EXPECT_LE(queued_at_low, options.low_watermark);
    EXPECT_EQ(rec.highs, round) << "on_high_watermark more than once per crossing";
  }
  EXPECT_EQ(in.bytes.size(), offset);
  EXPECT_EQ(pattern_mismatch(in.bytes), npos);
  close_and_settle(loop, *c, rec);
  EXPECT_EQ(rec.reason, CloseReason::local) << to_string(rec.reason);
}

TEST_P(FlowControlTest, HighAndLowWatermarksFireOncePerCrossing) {
  for_each_transport([&](Transport t) { watermarks_part(backend(), t); });
}

// ---------------------------------------------------------------------------------------
// Caps

// A producer that ignores the watermarks: the send() that would pass max_output returns
// ENOBUFS, the queue never exceeds the cap, on_close(limit, ENOBUFS) runs once from the loop,
// and later sends fail with EPIPE. What the peer gets is an in-order prefix.
void output_cap_part(const std::string& backend, Transport t) {
  Reactor loop(backend);
  StreamPair pair = make_stream_pair(t, PeerMode::nonblocking);
  const int peer_fd = pair.peer.get();
  ASSERT_FALSE(pair.ours.set_send_buffer(4096));
  Connection::Options options;
  options.max_output = 256 * kKiB;
  options.high_watermark = 128 * kKiB;
  options.low_watermark = 16 * kKiB;
  auto c = Connection::make(loop, std::move(pair.ours), options);
  Recorder rec;
  rec.attach(*c);
  c->start();

  std::error_code ec;
  std::uint64_t accepted = 0;
  for (int i = 0; i < 10000 && !ec; ++i) {
    ec = c->send(pattern(accepted, 16 * kKiB));
    if (!ec) {
      accepted += 16 * kKiB;
      EXPECT_LE(c->queued(), options.max_output);
    }
  }
  EXPECT_TRUE(IsErrc(ec, std::errc::no_buffer_space));
  EXPECT_EQ(rec.closes, 0) << "on_close ran inside send()";
  EXPECT_FALSE(c->open());
  EXPECT_TRUE(IsErrc(c->send("more"), std::errc::broken_pipe));
  EXPECT_TRUE(run_until(loop, [&] { return rec.closed(); }));
  run_iterations(loop, 5);
  EXPECT_EQ(rec.closes, 1);
  EXPECT_EQ(rec.reason, CloseReason::limit) << to_string(rec.reason);
  EXPECT_TRUE(IsErrc(rec.error, std::errc::no_buffer_space));
  EXPECT_EQ(rec.calls_after_close, 0);

  PeerInput in;
  EXPECT_TRUE(wait_for([&] {
    drain_into(peer_fd, in);
    return in.eof || in.error != 0;
  })) << "the peer never saw the connection end";
  EXPECT_LE(in.bytes.size(), accepted);
  EXPECT_EQ(pattern_mismatch(in.bytes), npos);

  // One send() larger than the whole cap fails the same way.
  StreamPair pair2 = make_stream_pair(t, PeerMode::nonblocking);
  ASSERT_FALSE(pair2.ours.set_send_buffer(4096));
  auto c2 = Connection::make(loop, std::move(pair2.ours), options);
  Recorder rec2;
  rec2.attach(*c2);
  c2->start();
  // Fill the kernel first so that the big send cannot go out directly.
  for (int i = 0; i < 1000 && c2->queued() == 0; ++i) ASSERT_FALSE(c2->send(pattern(0, 4096)));
  EXPECT_TRUE(IsErrc(c2->send(pattern(0, options.max_output + 1)), std::errc::no_buffer_space));
  EXPECT_TRUE(run_until(loop, [&] { return rec2.closed(); }));
  EXPECT_EQ(rec2.reason, CloseReason::limit) << to_string(rec2.reason);
  close_and_settle(loop, *c2, rec2);
}

TEST_P(FlowControlTest, OutputCapClosesWithLimit) {
  for_each_transport([&](Transport t) { output_cap_part(backend(), t); });
}

// A user that never consumes input: the input buffer stays within max_input, and when it is
// full the connection closes with on_close(limit, ENOBUFS), once, nothing after.
void input_cap_part(const std::string& backend, Transport t) {
  Reactor loop(backend);
  StreamPair pair = make_stream_pair(t, PeerMode::nonblocking);
  const int peer_fd = pair.peer.get();
  Connection::Options options;
  options.max_input = 64 * kKiB;
  options.read_size = 16 * kKiB;
  auto c = Connection::make(loop, std::move(pair.ours), options);
  Recorder rec;
  rec.attach(*c);
  std::size_t largest = 0;
  c->on_data([&](Connection&, Buffer& in) {
    if (rec.closed()) ++rec.calls_after_close;
    ++rec.data_calls;
    largest = std::max(largest, in.size());
    EXPECT_TRUE(in.valid());
    EXPECT_EQ(pattern_mismatch(in.view()), npos);
  });
  c->start();

  std::string pending = pattern(0, kMiB);
  EXPECT_TRUE(run_until(loop,
                        [&] {
                          const int e = send_some(peer_fd, pending);
                          EXPECT_TRUE(e == 0 || e == ECONNRESET || e == EPIPE) << std::strerror(e);
                          return rec.closed();
                        }))
      << "the input cap was never enforced (largest input " << largest << ")";
  run_iterations(loop, 5);
  EXPECT_LE(largest, options.max_input);
  EXPECT_GT(rec.data_calls, 0u);
  EXPECT_EQ(rec.closes, 1);
  EXPECT_EQ(rec.reason, CloseReason::limit) << to_string(rec.reason);
  EXPECT_TRUE(IsErrc(rec.error, std::errc::no_buffer_space));
  EXPECT_EQ(rec.calls_after_close, 0);
  EXPECT_TRUE(IsErrc(c->send("x"), std::errc::broken_pipe));
}

TEST_P(FlowControlTest, InputCapClosesWithLimit) {
  for_each_transport([&](Transport t) { input_cap_part(backend(), t); });
}

REACTOR_INSTANTIATE_ALL_BACKENDS(FlowControlTest);

}  // namespace
