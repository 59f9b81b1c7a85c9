// SPDX-License-Identifier: MIT
// Behaviour of buffered stream connections on every backend and every stream transport
// (TCP over 127.0.0.1 and ::1, Unix stream): integrity, writing a lot, order and half
// close.
#include <gtest/gtest.h>
#include <sys/socket.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <deque>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <string_view>
#include <vector>

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
using reactor::Socket;

constexpr std::size_t kKiB = 1024;
constexpr std::size_t kMiB = 1024 * 1024;
constexpr std::size_t npos = std::string_view::npos;

class StreamTest : public reactor::test::BackendTest {};

// ---------------------------------------------------------------------------------------
// Integrity

// A message of random length (mostly short, sometimes up to 64 KiB) and random content.
std::string random_message(std::mt19937_64& rng) {
  const unsigned kind = rng() % 100;
  std::size_t n = 0;
  if (kind < 70) {
    n = 1 + rng() % 256;
  } else if (kind < 95) {
    n = 257 + rng() % (8 * kKiB - 256);
  } else {
    n = 8 * kKiB + 1 + rng() % (56 * kKiB);
  }
  std::string s(n, '\0');
  for (char& c : s) c = static_cast<char>(rng() & 0xff);
  return s;
}

// Cuts `msg` into 1..8 pieces at random byte boundaries.
std::deque<std::string> cut(const std::string& msg, std::mt19937_64& rng) {
  const std::size_t pieces = 1 + rng() % 8;
  std::vector<std::size_t> cuts;
  for (std::size_t i = 1; i < pieces; ++i) cuts.push_back(rng() % msg.size());
  cuts.push_back(msg.size());
  std::sort(cuts.begin(), cuts.end());
  std::deque<std::string> out;
  std::size_t from = 0;
  for (std::size_t to : cuts) {
    if (to > from) out.push_back(msg.substr(from, to - from));
    from = std::max(from, to);
  }
  return out;
}

// 1,000 ping-pong rounds between two Connections in one loop: the client sends each message
// in random pieces spread over iterations, the echo side sends back what it gets in random
// pieces, both read with odd read sizes. Every round must come back byte-exact.
void ping_pong_part(const std::string& backend, Transport t) {
  constexpr int kRounds = 1000;
  const std::uint64_t seed = 0xB1000 + static_cast<unsigned>(t);
  SCOPED_TRACE("seed " + std::to_string(seed));
  std::mt19937_64 rng(seed);
  std::mt19937_64 echo_rng(seed ^ 0xECC0);

  Reactor loop(backend);
  StreamPair pair = make_stream_pair(t, PeerMode::nonblocking);
  Connection::Options client_options;
  client_options.read_size = 1000;  // reads cut messages too
  Connection::Options echo_options;
  echo_options.read_size = 777;
  auto client = Connection::make(loop, std::move(pair.ours), client_options);
  auto echo = Connection::make(loop, Socket(pair.peer.release()), echo_options);
  Recorder client_rec, echo_rec;
  client_rec.attach(*client);
  echo_rec.attach(*echo);

  int round = 0;
  bool failed = false;
  std::string expected, got;
  std::deque<std::string> pieces;
  std::uint64_t bytes_checked = 0;

  // Sends a random number of the remaining pieces now and the rest from a later task.
  std::function<void()> send_pieces = [&] {
    std::size_t n = 1 + rng() % pieces.size();
    while (n-- > 0 && !pieces.empty()) {
      EXPECT_FALSE(client->send(pieces.front())) << "round " << round;
      pieces.pop_front();
    }
    if (!pieces.empty()) loop.post([&] { send_pieces(); });
  };
  auto start_round = [&] {
    expected = random_message(rng);
    got.clear();
    pieces = cut(expected, rng);
    send_pieces();
  };

  client->on_data([&](Connection&, Buffer& in) {
    got.append(in.view());
    in.consume(in.size());
    if (failed || got.size() < expected.size()) return;
    const std::size_t diff = first_difference(got, expected);
    if (diff != npos) {
      ADD_FAILURE() << "round " << round << ": " << got.size() << " bytes back for "
                    << expected.size() << " sent; first difference at byte " << diff;
      failed = true;
      return;
    }
    bytes_checked += got.size();
    if (++round < kRounds) start_round();
  });
  echo->on_data([&](Connection& c, Buffer& in) {
    const std::string_view v = in.view();
    for (std::size_t off = 0; off < v.size();) {
      const std::size_t n = 1 + echo_rng() % (v.size() - off);
      EXPECT_FALSE(c.send(v.substr(off, n)));
      off += n;
    }
    in.consume(v.size());
  });
  client->start();
  echo->start();
  start_round();

  const auto t0 = SteadyClock::now();
  const std::uint64_t i0 = loop.iterations();
  EXPECT_TRUE(run_until(
      loop, [&] { return round >= kRounds || failed; }, 60s))
      << "only " << round << " rounds done";
  std::printf("[ info     ] %s: %d rounds, %llu bytes in %llu iterations, %.0f ms\n", name(t),
              round, static_cast<unsigned long long>(bytes_checked),
              static_cast<unsigned long long>(loop.iterations() - i0),
              std::chrono::duration<double, std::milli>(SteadyClock::now() - t0).count());
  EXPECT_EQ(round, kRounds);

  client->close();
  EXPECT_TRUE(run_until(
      loop, [&] { return client_rec.closed() && echo_rec.closed(); }, 10s));
  run_iterations(loop, 5);
  EXPECT_EQ(client_rec.closes, 1);
  EXPECT_EQ(client_rec.reason, CloseReason::local) << to_string(client_rec.reason);
  EXPECT_EQ(echo_rec.closes, 1);
  EXPECT_EQ(echo_rec.reason, CloseReason::eof) << to_string(echo_rec.reason);
  EXPECT_FALSE(echo_rec.error) << echo_rec.error.message();
  EXPECT_EQ(client_rec.calls_after_close + echo_rec.calls_after_close, 0);
}

TEST_P(StreamTest, PingPongRandomCutsIsByteExact) {
  for_each_transport([&](Transport t) { ping_pong_part(backend(), t); });
}

// ---------------------------------------------------------------------------------------
// Writing a lot

// Queues `total` bytes at once to a peer thread that echoes with blocking syscalls, asks for
// a shutdown of the writing side (done once the queue drains) and reads everything back.
void write_a_lot_part(const std::string& backend, Transport t, std::size_t total) {
  Reactor loop(backend);
  StreamPair pair = make_stream_pair(t, PeerMode::blocking);
  const int peer_fd = pair.peer.get();

  std::atomic<std::uint64_t> echoed{0};
  std::atomic<int> peer_errno{0};
  std::atomic<bool> peer_saw_eof{false};
  PeerThread peer(peer_fd, [&] {
    std::vector<char> buf(256 * kKiB);
    for (;;) {
      const ssize_t n = ::recv(peer_fd, buf.data(), buf.size(), 0);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) {
        peer_errno.store(errno);
        return;
      }
      if (n == 0) {
        peer_saw_eof.store(true);
        ::shutdown(peer_fd, SHUT_WR);
        return;
      }
      if (!send_all(peer_fd, std::string_view(buf.data(), static_cast<std::size_t>(n)))) {
        peer_errno.store(errno != 0 ? errno : -1);
        return;
      }
      echoed.fetch_add(static_cast<std::uint64_t>(n));
    }
  });

  Connection::Options options;
  options.max_output = total + 16 * kMiB;
  options.high_watermark = options.max_output;
  auto c = Connection::make(loop, std::move(pair.ours), options);
  Recorder rec;
  rec.attach(*c);
  Fnv1a sent, received;
  c->on_data([&](Connection&, Buffer& in) {
    received.update(in.view());
    in.consume(in.size());
  });
  c->start();

  const auto t0 = SteadyClock::now();
  std::string block = pattern(0, kMiB);
  for (std::uint64_t off = 0; off < total; off += block.size()) {
    std::memcpy(block.data(), &off, sizeof off);  // each block starts with its own offset
    sent.update(block);
    ASSERT_FALSE(c->send(block)) << "at offset " << off;
  }
  EXPECT_GT(c->queued(), 0u) << "all of it went straight into the kernel?";
  ASSERT_FALSE(c->shutdown());  // takes effect once the queue is drained

  EXPECT_TRUE(run_until(
      loop, [&] { return rec.closed(); }, 90s))
      << received.bytes << " of " << total << " bytes back";
  const double ms = std::chrono::duration<double, std::milli>(SteadyClock::now() - t0).count();
  peer.join();
  std::printf("[ info     ] %s: %zu MiB out and back in %.0f ms\n", name(t), total / kMiB, ms);

  EXPECT_EQ(peer_errno.load(), 0) << std::strerror(peer_errno.load());
  EXPECT_TRUE(peer_saw_eof.load()) << "the shutdown never reached the peer";
  EXPECT_EQ(echoed.load(), total);
  EXPECT_EQ(received.bytes, total);
  EXPECT_EQ(received.value, sent.value) << "checksums differ";
  EXPECT_EQ(rec.closes, 1);
  EXPECT_EQ(rec.reason, CloseReason::eof) << to_string(rec.reason) << " " << rec.error.message();
  EXPECT_FALSE(rec.error) << rec.error.message();
  EXPECT_EQ(c->queued(), 0u);
}

TEST_P(StreamTest, WriteHundredMiBToEchoPeer) {
  for_each_transport([&](Transport t) {
    // 100 MiB over TCP v4 and Unix; ::1 is the same TCP code, so less there for time.
    write_a_lot_part(backend(), t, t == Transport::tcp6 ? 16 * kMiB : 100 * kMiB);
  });
}

// ---------------------------------------------------------------------------------------
// Order

// A pair whose send buffer on our side is as small as it goes, so that a queue builds at
// once. (The peer's receive buffer is left alone: a tiny TCP window makes loopback crawl.
// Even so a tiny TCP send buffer waits on the peer's delayed ACKs: about 2 MB/s.)
StreamPair small_buffer_pair(Transport t) {
  StreamPair pair = make_stream_pair(t, PeerMode::nonblocking);
  EXPECT_FALSE(pair.ours.set_send_buffer(4096));
  return pair;
}

// 10,000 writes of 1..700 bytes through a small send buffer (both send() overloads, with
// the loop flushing part of the queue now and then), then close(): the peer gets every byte
// in order and then EOF; writes after close() fail cleanly.
void ordered_close_part(const std::string& backend, Transport t) {
  constexpr int kWrites = 10000;
  std::mt19937 rng(0xB3 + static_cast<unsigned>(t));
  Reactor loop(backend);
  StreamPair pair = small_buffer_pair(t);
  const int peer_fd = pair.peer.get();
  auto c = Connection::make(loop, std::move(pair.ours));
  Recorder rec;
  rec.attach(*c);
  c->start();

  PeerInput in;
  std::uint64_t offset = 0;
  int sends_behind_queue = 0;
  Buffer scratch;
  for (int i = 0; i < kWrites; ++i) {
    const std::string piece = pattern(offset, 1 + rng() % 700);
    if (c->queued() > 0) ++sends_behind_queue;
    std::error_code ec;
    if (i % 3 == 0) {
      ASSERT_FALSE(scratch.append(piece));
      ec = c->send(scratch);
      EXPECT_TRUE(scratch.empty()) << "send(Buffer&) did not empty its argument";
    } else {
      ec = c->send(piece);
    }
    ASSERT_FALSE(ec) << "write " << i << ": " << ec.message();
    offset += piece.size();
    if (i % 500 == 499) {  // the loop flushes some, the peer reads some, then more writes
      loop.run_once(0ms);
      drain_into(peer_fd, in, 16 * kKiB);
    }
  }
  EXPECT_GT(sends_behind_queue, kWrites / 2) << "the send buffer never filled";
  EXPECT_GT(c->queued(), 0u);

  c->close();
  EXPECT_TRUE(IsErrc(c->send("late"), std::errc::broken_pipe));
  Buffer late;
  ASSERT_FALSE(late.append("late"));
  EXPECT_TRUE(IsErrc(c->send(late), std::errc::broken_pipe));
  EXPECT_TRUE(IsErrc(c->shutdown(), std::errc::broken_pipe));
  EXPECT_EQ(rec.closes, 0) << "on_close ran inside close()";

  EXPECT_TRUE(run_until(loop,
                        [&] {
                          drain_into(peer_fd, in);
                          return in.eof || in.error != 0;
                        }))
      << in.bytes.size() << " of " << offset << " bytes arrived";
  EXPECT_EQ(in.error, 0) << "peer read failed: " << std::strerror(in.error);
  EXPECT_TRUE(in.eof);
  EXPECT_EQ(in.bytes.size(), offset);
  EXPECT_EQ(pattern_mismatch(in.bytes), npos) << "bytes out of order";

  EXPECT_TRUE(run_until(loop, [&] { return rec.closed(); }));
  run_iterations(loop, 5);
  EXPECT_EQ(rec.closes, 1);
  EXPECT_EQ(rec.reason, CloseReason::local) << to_string(rec.reason);
  EXPECT_FALSE(rec.error) << rec.error.message();
  EXPECT_EQ(rec.calls_after_close, 0);
  EXPECT_TRUE(IsErrc(c->send("after on_close"), std::errc::broken_pipe));
}

TEST_P(StreamTest, SmallSendBufferKeepsOrderThroughClose) {
  for_each_transport([&](Transport t) { ordered_close_part(backend(), t); });
}

// While the queue is not empty a send() must append to it even when the socket has room
// again (the peer read everything, the loop has not run yet): queued() grows by exactly the
// bytes given. Then the same with the loop flushing part of the queue between sends.
void no_overtaking_part(const std::string& backend, Transport t) {
  Reactor loop(backend);
  StreamPair pair = small_buffer_pair(t);
  const int peer_fd = pair.peer.get();
  auto c = Connection::make(loop, std::move(pair.ours));
  Recorder rec;
  rec.attach(*c);
  c->start();

  std::uint64_t offset = 0;
  ASSERT_FALSE(c->send(pattern(0, kMiB)));
  offset = kMiB;
  ASSERT_GT(c->queued(), 0u) << "1 MiB fitted in the kernel's buffers?";

  // The kernel's buffers empty out; the connection does not know yet.
  PeerInput in;
  drain_into(peer_fd, in);
  ASSERT_GT(in.bytes.size(), 0u);
  for (int i = 0; i < 100; ++i) {
    const std::string piece = pattern(offset, 1 + static_cast<std::size_t>(i) * 37);
    const std::size_t before = c->queued();
    ASSERT_FALSE(c->send(piece));
    EXPECT_EQ(c->queued(), before + piece.size()) << "send " << i << " overtook queued bytes";
    offset += piece.size();
  }

  // The loop flushes part of the queue; sends in between still go behind it.
  int interleaved = 0;
  for (int step = 0; step < 200 && c->queued() > 0; ++step) {
    loop.run_once(0ms);
    drain_into(peer_fd, in, 8 * kKiB);
    if (c->queued() == 0) break;
    const std::string piece = pattern(offset, 100 + static_cast<std::size_t>(step));
    const std::size_t before = c->queued();
    ASSERT_FALSE(c->send(piece));
    EXPECT_EQ(c->queued(), before + piece.size()) << "step " << step << " overtook queued bytes";
    offset += piece.size();
    ++interleaved;
  }
  EXPECT_GT(interleaved, 0);

  EXPECT_TRUE(run_until(loop,
                        [&] {
                          drain_into(peer_fd, in);
                          return in.bytes.size() >= offset || in.eof || in.error != 0;
                        }))
      << in.bytes.size() << " of " << offset << " bytes arrived";
  EXPECT_EQ(in.bytes.size(), offset);
  EXPECT_EQ(pattern_mismatch(in.bytes), npos) << "bytes out of order";
  EXPECT_EQ(c->queued(), 0u);

  c->close();
  EXPECT_TRUE(run_until(loop, [&] { return rec.closed(); }));
  run_iterations(loop, 3);
  EXPECT_EQ(rec.closes, 1);
  EXPECT_EQ(rec.reason, CloseReason::local) << to_string(rec.reason);
}

TEST_P(StreamTest, DirectWriteNeverOvertakesQueue) {
  for_each_transport([&](Transport t) { no_overtaking_part(backend(), t); });
}

// Sends before start() are queued and leave first, in order, once the connection starts.
void send_before_start_part(const std::string& backend, Transport t) {
  Reactor loop(backend);
  StreamPair pair = make_stream_pair(t, PeerMode::nonblocking);
  const int peer_fd = pair.peer.get();
  auto c = Connection::make(loop, std::move(pair.ours));
  Recorder rec;
  rec.attach(*c);
  std::uint64_t offset = 0;
  for (int i = 0; i < 50; ++i) {
    const std::string piece = pattern(offset, 1000 + static_cast<std::size_t>(i));
    ASSERT_FALSE(c->send(piece));
    offset += piece.size();
  }
  PeerInput in;
  drain_into(peer_fd, in);
  EXPECT_EQ(in.bytes.size(), 0u) << "bytes left before start()";
  c->start();
  for (int i = 0; i < 50; ++i) {
    const std::string piece = pattern(offset, 500 + static_cast<std::size_t>(i));
    ASSERT_FALSE(c->send(piece));
    offset += piece.size();
  }
  EXPECT_TRUE(run_until(loop, [&] {
    drain_into(peer_fd, in);
    return in.bytes.size() >= offset;
  }));
  EXPECT_EQ(in.bytes.size(), offset);
  EXPECT_EQ(pattern_mismatch(in.bytes), npos) << "bytes out of order";
  c->close();
  EXPECT_TRUE(run_until(loop, [&] { return rec.closed(); }));
  EXPECT_EQ(rec.closes, 1);
}

TEST_P(StreamTest, SendBeforeStartLeavesFirstInOrder) {
  for_each_transport([&](Transport t) { send_before_start_part(backend(), t); });
}

// ---------------------------------------------------------------------------------------
// Half close

// Queue writes, shutdown(): the peer gets every byte then EOF; a second shutdown() and a late
// send() fail with EPIPE; we still read what the peer sends afterwards; when the peer closes
// too, on_close(eof) runs once.
void half_close_part(const std::string& backend, Transport t) {
  Reactor loop(backend);
  StreamPair pair = small_buffer_pair(t);
  const int peer_fd = pair.peer.get();
  auto c = Connection::make(loop, std::move(pair.ours));
  Recorder rec;
  rec.attach(*c);
  c->start();

  std::uint64_t offset = 0;
  for (int i = 0; i < 256; ++i) {
    const std::string piece = pattern(offset, 2 * kKiB + static_cast<std::size_t>(i));
    ASSERT_FALSE(c->send(piece));
    offset += piece.size();
  }
  ASSERT_GT(c->queued(), 0u);
  ASSERT_FALSE(c->shutdown());
  EXPECT_TRUE(IsErrc(c->shutdown(), std::errc::broken_pipe)) << "second shutdown()";
  EXPECT_TRUE(IsErrc(c->send("late"), std::errc::broken_pipe)) << "send() after shutdown()";

  PeerInput in;
  EXPECT_TRUE(run_until(loop,
                        [&] {
                          drain_into(peer_fd, in);
                          return in.eof || in.error != 0;
                        }))
      << in.bytes.size() << " of " << offset << " bytes arrived, no EOF";
  EXPECT_EQ(in.error, 0) << std::strerror(in.error);
  EXPECT_EQ(in.bytes.size(), offset);
  EXPECT_EQ(pattern_mismatch(in.bytes), npos) << "bytes out of order";
  EXPECT_EQ(c->queued(), 0u);
  EXPECT_FALSE(rec.closed()) << "closed after shutdown(): " << to_string(rec.reason);
  EXPECT_TRUE(c->open());

  // Reading goes on after our EOF.
  const std::string reply = pattern(12345, 200 * kKiB);
  std::string pending = reply;
  EXPECT_TRUE(run_until(loop,
                        [&] {
                          EXPECT_EQ(send_some(peer_fd, pending), 0);
                          return rec.data.size() >= reply.size() || rec.closed();
                        }))
      << rec.data.size() << " of " << reply.size() << " bytes read after shutdown()";
  EXPECT_EQ(first_difference(rec.data, reply), npos);
  EXPECT_FALSE(rec.closed());
  EXPECT_TRUE(IsErrc(c->send("later"), std::errc::broken_pipe));

  // The peer closes as well: both directions are done.
  pair.peer.reset();
  EXPECT_TRUE(run_until(loop, [&] { return rec.closed(); }));
  run_iterations(loop, 5);
  EXPECT_EQ(rec.closes, 1);
  EXPECT_EQ(rec.reason, CloseReason::eof) << to_string(rec.reason) << " " << rec.error.message();
  EXPECT_FALSE(rec.error) << rec.error.message();
  EXPECT_EQ(rec.calls_after_close, 0);
  EXPECT_TRUE(IsErrc(c->shutdown(), std::errc::broken_pipe));
}

TEST_P(StreamTest, HalfCloseFlushesFirstAndKeepsReading) {
  for_each_transport([&](Transport t) { half_close_part(backend(), t); });
}

// shutdown() with nothing queued sends the EOF at once (the peer sees it without the loop).
void empty_shutdown_part(const std::string& backend, Transport t) {
  Reactor loop(backend);
  StreamPair pair = make_stream_pair(t, PeerMode::nonblocking);
  const int peer_fd = pair.peer.get();
  auto c = Connection::make(loop, std::move(pair.ours));
  Recorder rec;
  rec.attach(*c);
  c->start();
  ASSERT_FALSE(c->send("all of it"));
  ASSERT_EQ(c->queued(), 0u);
  ASSERT_FALSE(c->shutdown());
  PeerInput in;
  EXPECT_TRUE(wait_for([&] {
    drain_into(peer_fd, in);
    return in.eof || in.error != 0;
  }));
  EXPECT_EQ(in.bytes, "all of it");
  EXPECT_TRUE(in.eof);
  EXPECT_TRUE(IsErrc(c->shutdown(), std::errc::broken_pipe));
  EXPECT_TRUE(IsErrc(c->send("x"), std::errc::broken_pipe));

  ASSERT_TRUE(send_all(peer_fd, "still listening?"));
  EXPECT_TRUE(run_until(loop, [&] { return rec.data.size() >= 16; }));
  EXPECT_EQ(rec.data, "still listening?");
  pair.peer.reset();
  EXPECT_TRUE(run_until(loop, [&] { return rec.closed(); }));
  run_iterations(loop, 3);
  EXPECT_EQ(rec.closes, 1);
  EXPECT_EQ(rec.reason, CloseReason::eof) << to_string(rec.reason);
}

TEST_P(StreamTest, ShutdownWithEmptyQueueSendsEofAtOnce) {
  for_each_transport([&](Transport t) { empty_shutdown_part(backend(), t); });
}

// The peer shuts down its writing side; with on_eof set the connection stays open, we answer
// and shut down in turn: the peer gets the whole answer then EOF, and on_close(eof) runs once
// (both directions are done). Three ways: a short answer and shutdown() from inside on_eof;
// the same from a later task; a long answer (queued, so the shutdown waits for the flush)
// from a later task.
enum class Answer { inside, later, later_queued };

void peer_half_close_part(const std::string& backend, Transport t, Answer how) {
  SCOPED_TRACE(how == Answer::inside  ? "short answer inside on_eof"
               : how == Answer::later ? "short answer from a later task"
                                      : "long, queued answer from a later task");
  Reactor loop(backend);
  StreamPair pair = small_buffer_pair(t);
  const int peer_fd = pair.peer.get();
  auto c = Connection::make(loop, std::move(pair.ours));
  Recorder rec;
  rec.attach(*c);
  int eofs = 0;
  const std::string answer =
      how == Answer::later_queued ? pattern(0, 512 * kKiB) : std::string("short answer");
  auto respond = [&](Connection& conn) {
    EXPECT_TRUE(conn.open());
    EXPECT_FALSE(conn.send(answer));
    EXPECT_FALSE(conn.shutdown());
  };
  c->on_eof([&](Connection& conn) {
    ++eofs;
    EXPECT_EQ(rec.data, "request");
    if (how == Answer::inside) {
      respond(conn);
    } else {
      loop.post([&] { respond(*c); });
    }
  });
  c->start();

  ASSERT_TRUE(send_all(peer_fd, "request"));
  ASSERT_EQ(::shutdown(peer_fd, SHUT_WR), 0);
  PeerInput in;
  EXPECT_TRUE(run_until(
      loop,
      [&] {
        drain_into(peer_fd, in);
        return (in.eof || in.error != 0) && rec.closed();
      },
      5000ms))
      << "eof at peer: " << in.eof << ", " << in.bytes.size()
      << " bytes; on_close ran: " << rec.closed();
  run_iterations(loop, 3);
  EXPECT_EQ(eofs, 1);
  EXPECT_EQ(in.error, 0) << std::strerror(in.error);
  EXPECT_TRUE(in.eof);
  EXPECT_EQ(in.bytes.size(), answer.size());
  EXPECT_EQ(first_difference(in.bytes, answer), npos);
  EXPECT_EQ(rec.closes, 1) << "both directions are shut down, yet the connection stays open";
  EXPECT_EQ(rec.reason, CloseReason::eof) << to_string(rec.reason);
  EXPECT_EQ(rec.calls_after_close, 0);
  if (!rec.closed()) c->close();  // do not leave it behind when the test has failed
  run_until(
      loop, [&] { return rec.closed(); }, 1000ms);
}

TEST_P(StreamTest, PeerHalfCloseThenWeAnswerAndShutDown) {
  for_each_transport([&](Transport t) {
    peer_half_close_part(backend(), t, Answer::inside);
    peer_half_close_part(backend(), t, Answer::later);
    peer_half_close_part(backend(), t, Answer::later_queued);
  });
}

// ---------------------------------------------------------------------------------------
// Addresses: the peer's is kept from the start; this end's is asked of the kernel on each
// call (not stored, to keep a connection small), and is empty with an error once closed.

TEST_P(StreamTest, AddressesOfBothEnds) {
  for_each_transport([&](Transport t) {
    Reactor loop(backend());
    StreamPair pair = make_stream_pair(t);
    const reactor::Address peer_end = bound_address(pair.peer.get());
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    ASSERT_EQ(::getpeername(pair.peer.get(), reinterpret_cast<sockaddr*>(&ss), &len), 0);
    std::error_code ec;
    const reactor::Address our_end =
        reactor::Address::from_native(reinterpret_cast<sockaddr*>(&ss), len, ec);
    ASSERT_FALSE(ec) << ec.message();
    auto c = Connection::make(loop, std::move(pair.ours));
    c->start();
    EXPECT_EQ(c->local_address(ec), our_end) << our_end.to_string();
    EXPECT_FALSE(ec) << ec.message();
    EXPECT_EQ(c->local_address(), our_end);
    EXPECT_EQ(c->peer_address(), peer_end);
    c->abort();
    EXPECT_TRUE(c->local_address(ec).empty()) << c->local_address(ec).to_string();
    EXPECT_TRUE(ec) << "local_address() after close reports an error";
    EXPECT_EQ(c->peer_address(), peer_end) << "kept after close";
  });
}

// We shut down first; the peer's end then finishes both directions: the connection closes
// with CloseReason::eof even though an on_eof callback is set (it is not called: nothing is
// left to send).
void shut_first_part(const std::string& backend, Transport t) {
  Reactor loop(backend);
  StreamPair pair = make_stream_pair(t, PeerMode::nonblocking);
  const int peer_fd = pair.peer.get();
  auto c = Connection::make(loop, std::move(pair.ours));
  Recorder rec;
  rec.attach(*c);
  int eofs = 0;
  c->on_eof([&](Connection&) { ++eofs; });
  c->start();
  ASSERT_FALSE(c->send("bye"));
  ASSERT_FALSE(c->shutdown());
  PeerInput in;
  EXPECT_TRUE(wait_for([&] {
    drain_into(peer_fd, in);
    return in.eof || in.error != 0;
  }));
  EXPECT_EQ(in.bytes, "bye");
  ASSERT_EQ(::shutdown(peer_fd, SHUT_WR), 0);
  EXPECT_TRUE(run_until(
      loop, [&] { return rec.closed(); }, 5000ms))
      << "both directions are shut down, yet the connection stays open";
  run_iterations(loop, 3);
  EXPECT_EQ(rec.closes, 1);
  EXPECT_EQ(rec.reason, CloseReason::eof) << to_string(rec.reason);
  EXPECT_EQ(eofs, 0);
  if (!rec.closed()) c->close();
  run_until(
      loop, [&] { return rec.closed(); }, 1000ms);
}

TEST_P(StreamTest, PeerEndAfterOurShutdownClosesWithEof) {
  for_each_transport([&](Transport t) { shut_first_part(backend(), t); });
}

REACTOR_INSTANTIATE_ALL_BACKENDS(StreamTest);

}  // namespace
