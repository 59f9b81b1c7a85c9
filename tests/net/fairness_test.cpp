// SPDX-License-Identifier: MIT
// Callbacks and fairness of stream connections, on every backend and every stream transport:
// no callback ever runs inside a call into the library (a fresh stack), the per-iteration
// read bound, and one connection flooding does not starve 100 doing ping-pong.
#include <gtest/gtest.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "reactor/core/reactor.hpp"
#include "reactor/net/buffer.hpp"
#include "reactor/net/connection.hpp"
#include "reactor/net/connector.hpp"
#include "reactor/net/listener.hpp"
#include "reactor/net/socket.hpp"
#include "tests/support/backends.hpp"
#include "tests/support/errors.hpp"
#include "tests/support/fds.hpp"
#include "tests/support/io.hpp"
#include "tests/support/loop.hpp"
#include "tests/support/patterns.hpp"
#include "tests/support/sanitizers.hpp"
#include "tests/support/sockets.hpp"
#include "tests/support/time.hpp"

namespace {

using namespace std::chrono_literals;
using namespace reactor::test;
using reactor::Address;
using reactor::Buffer;
using reactor::CloseReason;
using reactor::Connection;
using reactor::Connector;
using reactor::Reactor;
using reactor::Socket;
using reactor::test::Fd;

constexpr std::size_t kKiB = 1024;
constexpr std::size_t kMiB = 1024 * 1024;
constexpr std::size_t npos = std::string_view::npos;

// ---------------------------------------------------------------------------------------
// Fresh stack: no callback inside a call into the library

class FreshStackTest : public reactor::test::BackendTest {};

// Depth of the test's calls into the library now in progress. Every callback checks that it
// is 0: a callback run from inside send(), close(), start(), cancel()... would see it above 0.
int g_in_library = 0;
int g_nested_callbacks = 0;

struct InLibrary {
  InLibrary() { ++g_in_library; }
  ~InLibrary() { --g_in_library; }
  InLibrary(const InLibrary&) = delete;
  InLibrary& operator=(const InLibrary&) = delete;
};

// Evaluates `expr` (a call into the library) with the depth raised.
#define LIB(expr)          \
  [&]() {                  \
    InLibrary in_library_; \
    return expr;           \
  }()

void check_fresh_stack(const char* what) {
  if (g_in_library != 0) {
    ++g_nested_callbacks;
    ADD_FAILURE() << what << " ran inside a call into the library";
  }
}

/// A connection whose every callback checks the stack and records.
struct Watched {
  std::shared_ptr<Connection> c;
  Recorder rec;
  std::function<void(Connection&, Buffer&)> on_data_extra;
  std::function<void(Connection&)> on_eof_extra;

  void make(Reactor& loop, Socket s, Connection::Options options = {}) {
    c = LIB(Connection::make(loop, std::move(s), options));
    c->on_data([this](Connection& conn, Buffer& in) {
      check_fresh_stack("on_data");
      rec.record_data(in);
      if (on_data_extra) on_data_extra(conn, in);
    });
    c->on_close([this](Connection&, CloseReason r, std::error_code ec) {
      check_fresh_stack("on_close");
      rec.record_close(r, ec);
    });
    c->on_high_watermark([this](Connection&) {
      check_fresh_stack("on_high_watermark");
      ++rec.highs;
    });
    c->on_low_watermark([this](Connection&) {
      check_fresh_stack("on_low_watermark");
      ++rec.lows;
    });
  }
  void want_eof() {
    c->on_eof([this](Connection& conn) {
      check_fresh_stack("on_eof");
      ++rec.eofs;
      if (on_eof_extra) on_eof_extra(conn);
    });
  }
};

void fresh_stack_part(const std::string& backend, Transport t) {
  g_in_library = 0;
  g_nested_callbacks = 0;
  Reactor loop(backend);
  std::vector<Watched*> all;

  // A: input already waiting at start(); on_data answers and closes from inside itself.
  StreamPair pa = make_stream_pair(t, PeerMode::nonblocking);
  ASSERT_TRUE(send_all(pa.peer.get(), "ping"));
  Watched a;
  a.make(loop, std::move(pa.ours));
  a.on_data_extra = [&](Connection& conn, Buffer&) {
    EXPECT_FALSE(LIB(conn.send("pong")));
    LIB(conn.close());
    EXPECT_TRUE(IsErrc(LIB(conn.send("late")), std::errc::broken_pipe));
  };
  all.push_back(&a);
  LIB(a.c->start());

  // B: a send that completes at once, then a queue past the high watermark, pause and resume
  // with input waiting, an idle timeout re-armed, then abort().
  StreamPair pb = make_stream_pair(t, PeerMode::nonblocking);
  ASSERT_FALSE(pb.ours.set_send_buffer(4096));
  Watched b;
  Connection::Options ob;
  ob.high_watermark = 64 * kKiB;
  ob.low_watermark = 16 * kKiB;
  b.make(loop, std::move(pb.ours), ob);
  all.push_back(&b);
  LIB(b.c->start());
  EXPECT_FALSE(LIB(b.c->send("at once")));
  EXPECT_FALSE(LIB(b.c->send(pattern(0, 512 * kKiB))));
  LIB(b.c->pause_reading());
  ASSERT_TRUE(send_all(pb.peer.get(), "input while paused"));
  LIB(b.c->set_idle_timeout(10s));
  LIB(b.c->resume_reading());

  // C: one send past the output cap.
  StreamPair pc = make_stream_pair(t, PeerMode::nonblocking);
  ASSERT_FALSE(pc.ours.set_send_buffer(4096));
  Watched c;
  Connection::Options oc;
  oc.max_output = 64 * kKiB;
  c.make(loop, std::move(pc.ours), oc);
  all.push_back(&c);
  LIB(c.c->start());
  std::error_code ec;
  for (int i = 0; i < 1000 && !ec; ++i) ec = LIB(c.c->send(pattern(0, 8 * kKiB)));
  EXPECT_TRUE(IsErrc(ec, std::errc::no_buffer_space));

  // D: start() refused by the loop (the fd is already watched).
  StreamPair pd = make_stream_pair(t, PeerMode::nonblocking);
  reactor::IoWatcher squatter =
      loop.watch(pd.ours.fd(), reactor::Interest::none, [](reactor::IoEvents) {});
  Watched d;
  d.make(loop, std::move(pd.ours));
  all.push_back(&d);
  LIB(d.c->start());
  squatter.stop();

  // E: the peer has reset; send() finds out.
  StreamPair pe = make_stream_pair(t, PeerMode::nonblocking);
  Watched e;
  e.make(loop, std::move(pe.ours));
  all.push_back(&e);
  LIB(e.c->start());
  EXPECT_FALSE(LIB(e.c->send("unread")));
  std::this_thread::sleep_for(5ms);
  const int e_fd = e.c->fd();
  reset_close(pe.peer);
  if (t != Transport::unix_stream) {
    EXPECT_TRUE(wait_for([&] { return tcp_state(e_fd) == TCP_CLOSE; }));
  }
  ec.clear();
  for (int i = 0; i < 100 && !ec; ++i) ec = LIB(e.c->send("into the void"));
  EXPECT_TRUE(IsOneOf(ec, {std::errc::connection_reset, std::errc::broken_pipe}));

  // F: a deadline already due.
  StreamPair pf = make_stream_pair(t, PeerMode::nonblocking);
  Watched f;
  f.make(loop, std::move(pf.ours));
  all.push_back(&f);
  LIB(f.c->start());
  LIB(f.c->set_deadline(1ns));

  // G: the peer half-closes; on_eof shuts down from inside itself (which ends the
  // connection: both directions are done).
  StreamPair pg = make_stream_pair(t, PeerMode::nonblocking);
  Watched g;
  g.make(loop, std::move(pg.ours));
  g.want_eof();
  g.on_eof_extra = [&](Connection& conn) { EXPECT_FALSE(LIB(conn.shutdown())); };
  all.push_back(&g);
  LIB(g.c->start());
  ASSERT_EQ(::shutdown(pg.peer.get(), SHUT_WR), 0);

  // H: the loop-thread-safe calls, made from the loop thread.
  StreamPair ph = make_stream_pair(t, PeerMode::nonblocking);
  Watched h;
  h.make(loop, std::move(ph.ours));
  all.push_back(&h);
  LIB(h.c->start());
  LIB(h.c->send_from_any_thread("via post"));
  LIB(h.c->close_from_any_thread());

  // I: connectors: refused, and cancelled.
  int connector_calls = 0;
  auto count = [&](std::error_code, Socket) {
    check_fresh_stack("the connect handler");
    ++connector_calls;
  };
  Fd closed = raw_bound_socket(t);
  LIB(Connector::connect(loop, bound_address(closed.get()), count, 5s));
  Fd listening = raw_bound_socket(t);
  ASSERT_EQ(::listen(listening.get(), 4), 0);
  auto cancelled = LIB(Connector::connect(loop, bound_address(listening.get()), count, 5s));
  LIB(cancelled->cancel());

  // J: a listener with a client waiting before the loop runs.
  int accepted = 0;
  std::unique_ptr<reactor::Listener> listener;
  {
    InLibrary in_library;
    listener =
        std::make_unique<reactor::Listener>(loop, bind_address(t), [&](Socket, const Address&) {
          check_fresh_stack("the accept handler");
          ++accepted;
        });
  }
  const Address where = listener->address();
  Fd client(::socket(where.domain(), SOCK_STREAM | SOCK_CLOEXEC, 0));
  ASSERT_EQ(::connect(client.get(), where.native(), where.native_size()), 0);

  EXPECT_EQ(g_nested_callbacks, 0);
  for (Watched* w : all) EXPECT_EQ(w->rec.closes, 0) << "on_close before the loop ran";
  EXPECT_EQ(connector_calls, 0);

  EXPECT_TRUE(run_until(loop,
                        [&] {
                          PeerInput sink;
                          drain_into(pb.peer.get(), sink);  // let B's queue drain (low watermark)
                          return a.rec.closed() && b.rec.lows > 0 && b.rec.data.size() >= 18 &&
                                 c.rec.closed() && d.rec.closed() && e.rec.closed() &&
                                 f.rec.closed() && g.rec.closed() && h.rec.closed() &&
                                 connector_calls == 2 && accepted == 1;
                        }))
      << "a " << a.rec.closed() << " b lows " << b.rec.lows << " c " << c.rec.closed() << " d "
      << d.rec.closed() << " e " << e.rec.closed() << " f " << f.rec.closed() << " g "
      << g.rec.closed() << " h " << h.rec.closed() << " connects " << connector_calls
      << " accepted " << accepted;
  EXPECT_EQ(b.rec.highs, 1);
  EXPECT_EQ(b.rec.data, "input while paused");
  LIB(b.c->abort());
  EXPECT_EQ(b.rec.closes, 0) << "on_close ran inside abort()";
  EXPECT_TRUE(run_until(loop, [&] { return b.rec.closed(); }));
  listener.reset();
  run_iterations(loop, 5);

  EXPECT_EQ(g_nested_callbacks, 0);
  EXPECT_EQ(a.rec.reason, CloseReason::local) << to_string(a.rec.reason);
  EXPECT_EQ(b.rec.reason, CloseReason::local) << to_string(b.rec.reason);
  EXPECT_EQ(c.rec.reason, CloseReason::limit) << to_string(c.rec.reason);
  EXPECT_EQ(d.rec.reason, CloseReason::error) << to_string(d.rec.reason);
  EXPECT_TRUE(IsErrc(d.rec.error, std::errc::file_exists));
  EXPECT_EQ(e.rec.reason, CloseReason::reset) << to_string(e.rec.reason);
  EXPECT_EQ(f.rec.reason, CloseReason::timeout) << to_string(f.rec.reason);
  EXPECT_EQ(g.rec.reason, CloseReason::eof) << to_string(g.rec.reason);
  EXPECT_EQ(g.rec.eofs, 1);
  EXPECT_EQ(h.rec.reason, CloseReason::local) << to_string(h.rec.reason);
  for (Watched* w : all) {
    EXPECT_EQ(w->rec.closes, 1);
    EXPECT_EQ(w->rec.calls_after_close, 0);
  }
  EXPECT_EQ(connector_calls, 2);
  EXPECT_EQ(accepted, 1);
  PeerInput got_a, got_h;
  drain_into(pa.peer.get(), got_a);
  drain_into(ph.peer.get(), got_h);
  EXPECT_EQ(got_a.bytes, "pong");
  EXPECT_EQ(got_h.bytes, "via post");
}

TEST_P(FreshStackTest, NoCallbackInsideUserCalls) {
  for_each_transport([&](Transport t) { fresh_stack_part(backend(), t); });
}

REACTOR_INSTANTIATE_ALL_BACKENDS(FreshStackTest);

// ---------------------------------------------------------------------------------------
// Fairness

class FairnessTest : public reactor::test::BackendTest {};

// A peer thread pushes 2 MiB as fast as it can: the connection reads at most
// reads_per_iteration * read_size bytes per loop iteration, and on_data runs at most once per
// iteration.
void read_bound_part(const std::string& backend, Transport t) {
  Reactor loop(backend);
  StreamPair pair = make_stream_pair(t, PeerMode::blocking);
  const int peer_fd = pair.peer.get();
  Connection::Options options;
  options.reads_per_iteration = 2;
  options.read_size = 4 * kKiB;
  auto c = Connection::make(loop, std::move(pair.ours), options);
  Recorder rec;
  rec.attach(*c);
  std::size_t largest = 0;
  std::uint64_t last_iteration = ~std::uint64_t{0};
  int twice_in_one_iteration = 0;
  c->on_data([&](Connection&, Buffer& in) {
    largest = std::max(largest, in.size());
    if (loop.iterations() == last_iteration) ++twice_in_one_iteration;
    last_iteration = loop.iterations();
    rec.record_data(in);
  });
  c->start();
  const std::string payload = pattern(0, 2 * kMiB);
  std::atomic<bool> sent{false};
  PeerThread peer(peer_fd, [&] { sent.store(send_all(peer_fd, payload)); });
  EXPECT_TRUE(run_until(
      loop, [&] { return rec.data.size() >= payload.size(); }, 30000ms));
  peer.join();
  EXPECT_TRUE(sent.load());
  EXPECT_EQ(rec.data.size(), payload.size());
  EXPECT_EQ(pattern_mismatch(rec.data), npos);
  EXPECT_LE(largest, options.reads_per_iteration * options.read_size);
  EXPECT_EQ(twice_in_one_iteration, 0);
  EXPECT_GE(rec.data_calls, payload.size() / (options.reads_per_iteration * options.read_size));
  c->close();
  EXPECT_TRUE(run_until(loop, [&] { return rec.closed(); }));
}

TEST_P(FairnessTest, ReadsPerIterationAreBounded) {
  for_each_transport([&](Transport t) { read_bound_part(backend(), t); });
}

// Flooding does not starve: a server loop (this thread) serves 100 echo connections and one flood
// connection. A client loop in another thread runs 100 clients doing 200 ping-pong rounds each
// while a third thread floods with blocking writes for the whole time. The p99 round trip stays <
// 50 ms.
void flood_part(const std::string& backend, Transport t) {
  constexpr int kClients = 100;
  constexpr int kRounds = 200;
  constexpr std::size_t kMessage = 32;
  Reactor server(backend);

  // The server side: echo for the clients, a sink for the flood.
  std::vector<std::shared_ptr<Connection>> echoes;
  std::vector<Fd> client_fds;
  int server_closes = 0;
  for (int i = 0; i < kClients; ++i) {
    StreamPair pair = make_stream_pair(t, PeerMode::nonblocking);
    auto e = Connection::make(server, std::move(pair.ours));
    e->on_data([](Connection& c, Buffer& in) {
      EXPECT_FALSE(c.send(in.view()));
      in.consume(in.size());
    });
    e->on_close([&](Connection&, CloseReason, std::error_code) { ++server_closes; });
    e->start();
    echoes.push_back(e);
    client_fds.push_back(std::move(pair.peer));
  }
  StreamPair flood_pair = make_stream_pair(t, PeerMode::blocking);
  const int flood_fd = flood_pair.peer.get();
  auto sink = Connection::make(server, std::move(flood_pair.ours));
  std::uint64_t flooded = 0;
  bool sink_closed = false;
  sink->on_data([&](Connection&, Buffer& in) {
    flooded += in.size();
    in.consume(in.size());
  });
  sink->on_close([&](Connection&, CloseReason, std::error_code) { sink_closed = true; });
  sink->start();

  std::atomic<bool> stop_flood{false};
  PeerThread flooder(flood_fd, [&] {
    const std::string chunk = pattern(0, 64 * kKiB);
    while (!stop_flood.load()) {
      if (!send_all(flood_fd, chunk)) return;
    }
  });
  EXPECT_TRUE(run_until(server, [&] { return flooded >= 8 * kMiB; }))
      << "the flood never got going";

  // The clients, in their own loop and thread.
  std::atomic<bool> clients_done{false};
  std::vector<double> rtts_ms;
  std::string client_failure;
  std::uint64_t flood_before = flooded;
  std::thread client_thread([&] {
    Reactor loop(backend);
    struct Client {
      std::shared_ptr<Connection> c;
      int round = 0;
      std::string got;
      std::string sent;
      SteadyClock::time_point t0;
      bool closed = false;
    };
    std::vector<Client> clients(kClients);
    int finished = 0;
    auto ping = [&](Client& cl) {
      cl.sent = pattern(static_cast<std::uint64_t>(cl.round) * 977, kMessage);
      cl.got.clear();
      cl.t0 = SteadyClock::now();
      if (cl.c->send(cl.sent) && client_failure.empty()) client_failure = "send failed";
    };
    for (int i = 0; i < kClients; ++i) {
      Client& cl = clients[static_cast<std::size_t>(i)];
      cl.c = Connection::make(loop, Socket(client_fds[static_cast<std::size_t>(i)].release()));
      cl.c->on_data([&](Connection& conn, Buffer& in) {
        cl.got.append(in.view());
        in.consume(in.size());
        if (cl.got.size() < kMessage) return;
        rtts_ms.push_back(
            std::chrono::duration<double, std::milli>(SteadyClock::now() - cl.t0).count());
        if (cl.got != cl.sent && client_failure.empty()) client_failure = "echo differs";
        if (++cl.round < kRounds) {
          ping(cl);
        } else {
          ++finished;
          conn.close();
        }
      });
      cl.c->on_close([&](Connection&, CloseReason, std::error_code) { cl.closed = true; });
      cl.c->start();
    }
    for (Client& cl : clients) ping(cl);
    const auto deadline = SteadyClock::now() + 60s;
    auto all_closed = [&] {
      return std::all_of(clients.begin(), clients.end(), [](const Client& c) { return c.closed; });
    };
    for (std::uint64_t calls = 0; calls < 10'000'000 && SteadyClock::now() < deadline &&
                                  !(finished == kClients && all_closed());
         ++calls) {
      loop.run_once(10ms);
    }
    if (finished != kClients && client_failure.empty()) {
      client_failure = std::to_string(finished) + " of " + std::to_string(kClients) +
                       " clients finished in time";
    }
    for (Client& cl : clients) cl.c->close();
    for (int i = 0; i < 200 && !all_closed(); ++i) loop.run_once(10ms);
    clients_done.store(true);
  });
  const auto t0 = SteadyClock::now();
  EXPECT_TRUE(run_until(
      server, [&] { return clients_done.load(); }, 90000ms));
  const double period_ms =
      std::chrono::duration<double, std::milli>(SteadyClock::now() - t0).count();
  const std::uint64_t flood_during = flooded - flood_before;
  stop_flood.store(true);
  EXPECT_TRUE(run_until(
      server, [&] { return flooder.finished(); }, 10000ms));
  flooder.join();
  client_thread.join();
  EXPECT_TRUE(client_failure.empty()) << client_failure;

  // Tear down: clients are gone, so the echoes see EOF; the flood peer closes.
  flood_pair.peer.reset();
  EXPECT_TRUE(run_until(server, [&] { return server_closes == kClients && sink_closed; }))
      << server_closes << " echoes closed";
  run_iterations(server, 3);

  ASSERT_EQ(rtts_ms.size(), static_cast<std::size_t>(kClients * kRounds));
  std::sort(rtts_ms.begin(), rtts_ms.end());
  const double p50 = rtts_ms[rtts_ms.size() / 2];
  const double p99 = rtts_ms[rtts_ms.size() * 99 / 100];
  const double worst = rtts_ms.back();
  std::printf(
      "[ info     ] %s: %zu round trips, p50 %.2f ms, p99 %.2f ms, max %.2f ms; flood %.1f MiB "
      "in %.0f ms\n",
      name(t), rtts_ms.size(), p50, p99, worst, static_cast<double>(flood_during) / kMiB,
      period_ms);
  ::testing::Test::RecordProperty(std::string("p99_us_") + name(t), static_cast<int>(p99 * 1000));
  // 50 ms is the latency bound the ping-pong connections keep; sanitizer builds widen it by
  // kLatencySlack.
  EXPECT_LT(p99, 50.0 * reactor::test::kLatencySlack)
      << "the flood starved the ping-pong connections";
  EXPECT_GT(flood_during, 4 * kMiB) << "the flood was not flowing during the ping-pong";
}

TEST_P(FairnessTest, FloodDoesNotStarvePingPong) {
  for_each_transport([&](Transport t) { flood_part(backend(), t); });
}

REACTOR_INSTANTIATE_ALL_BACKENDS(FairnessTest);

}  // namespace
