// SPDX-License-Identifier: MIT
// Shutdown on every backend. Twenty servers (every transport x every model) shut down at
// once from twenty threads: each serving thread returns within 1 s. shutdown() twice,
// server_close() twice, shutdown() after close: harmless. A server that never served: shutdown
// returns at once and a later serve_forever or handle_request returns at once. A shutdown
// racing the start of serve_forever never hangs. shutdown() from inside a handler of every
// kind does not deadlock. shutdown() while a blocking handler waits in read_line on an idle
// client cancels that wait (sync, threading and forking), within 1 s.
#include <gtest/gtest.h>

#include <chrono>
#include <cstddef>
#include <latch>
#include <memory>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include "reactor/server/blocking_stream.hpp"
#include "reactor/server/handlers.hpp"
#include "tests/support/backends.hpp"
#include "tests/support/clients.hpp"
#include "tests/support/fds.hpp"
#include "tests/support/loop.hpp"
#include "tests/support/processes.hpp"
#include "tests/support/servers.hpp"
#include "tests/support/sockets.hpp"
#include "tests/support/time.hpp"

namespace {

using namespace std::chrono_literals;
using reactor::Address;
using reactor::BlockingStream;
using reactor::Buffer;
using reactor::Connection;
using reactor::DatagramRequest;
using reactor::EventHandler;
using reactor::Model;
using reactor::StreamService;
using reactor::test::Fd;
using reactor::test::FdLeakCheck;
using namespace reactor::test;
using Clock = reactor::test::SteadyClock;

class ShutdownTest : public reactor::test::BackendTest {
 protected:
  void SetUp() override { reactor::test::warm_up(backend()); }
};

/// Every transport with every model, each once: (i % 4, i % 5) for i < 20.
struct Combo {
  Transport transport;
  Model model;
};
std::vector<Combo> all_combos() {
  std::vector<Combo> out;
  for (std::size_t i = 0; i < 20; ++i) {
    if (!testable(kAllModels[i % 5])) continue;
    out.push_back({kServerTransports[i % 4], kAllModels[i % 5]});
  }
  return out;
}

std::string describe(const Combo& c) {
  return std::string(name(c.transport)) + " " + model_name(c.model);
}

/// Nothing left behind by servers that are gone: threads back to `before`, no child.
void expect_no_threads_or_children(std::size_t before) {
  EXPECT_TRUE(wait_for([&] { return thread_count() <= before; }, 2000ms))
      << thread_count() << " threads, " << before << " before";
  EXPECT_TRUE(child_pids().empty()) << child_pids().size() << " children left";
  EXPECT_TRUE(waitpid_finds_no_child());
}

TEST_P(ShutdownTest, TwentyServersShutDownAtOnceEachWithinOneSecond) {
  HangGuard hang(120s);
  TempDir dir;
  const std::size_t threads_before = thread_count();
  {
    FdLeakCheck leaks;
    const std::vector<Combo> combos = all_combos();
    std::vector<std::unique_ptr<AnyServer>> servers;
    for (const Combo& c : combos) {
      servers.push_back(std::make_unique<AnyServer>(c.transport, bind_address(c.transport, &dir),
                                                    options_for(c.model, backend())));
    }
    std::vector<std::unique_ptr<Serving<AnyServer>>> serving;
    for (auto& s : servers) serving.push_back(std::make_unique<Serving<AnyServer>>(*s));
    for (std::size_t i = 0; i < servers.size(); ++i) {
      const std::string line = client_line("before", i);
      EXPECT_EQ(servers[i]->echo(line), line) << describe(combos[i]);
    }

    std::latch go(1);
    std::vector<double> shutdown_ms(servers.size(), -1);
    std::vector<std::thread> stoppers;
    for (std::size_t i = 0; i < servers.size(); ++i) {
      stoppers.emplace_back([&, i] {
        go.wait();
        const auto t = Clock::now();
        servers[i]->shutdown();
        shutdown_ms[i] = ms_between(t, Clock::now());
      });
    }
    const auto t0 = Clock::now();
    go.count_down();
    for (std::size_t i = 0; i < servers.size(); ++i) {
      SCOPED_TRACE(describe(combos[i]));
      ASSERT_TRUE(serving[i]->wait_returned(5000ms)) << "serve_forever did not return";
      EXPECT_LT(ms_between(t0, serving[i]->returned_at()), 1000.0);
      EXPECT_EQ(serving[i]->error(), "");
    }
    for (auto& t : stoppers) t.join();
    for (std::size_t i = 0; i < servers.size(); ++i) {
      EXPECT_GE(shutdown_ms[i], 0.0);
      EXPECT_LT(shutdown_ms[i], 1000.0) << describe(combos[i]);
      serving[i]->join();
      servers[i]->server_close();
      EXPECT_EQ(servers[i]->fileno(), -1);
    }
    serving.clear();
    servers.clear();
  }
  expect_no_threads_or_children(threads_before);
}

TEST_P(ShutdownTest, ShutdownTwiceAndCloseTwiceAreHarmless) {
  HangGuard hang(120s);
  const std::size_t threads_before = thread_count();
  {
    FdLeakCheck leaks;
    for (const Combo& c : all_combos()) {
      SCOPED_TRACE(describe(c));
      AnyServer server(c.transport, bind_address(c.transport), options_for(c.model, backend()));
      Serving serving(server);
      EXPECT_EQ(server.echo("one\n"), "one\n");
      server.shutdown();  // from another thread: returns when serve_forever has returned
      EXPECT_TRUE(serving.wait_returned(500ms));
      server.shutdown();
      {
        std::thread a([&] { server.shutdown(); });
        std::thread b([&] { server.shutdown(); });
        a.join();
        b.join();
      }
      serving.join();
      server.server_close();
      server.server_close();
      server.shutdown();
      EXPECT_EQ(server.fileno(), -1);
      EXPECT_EQ(server.stats().active, 0u);
    }
  }
  expect_no_threads_or_children(threads_before);
}

TEST_P(ShutdownTest, ServerThatNeverServedShutsDownAtOnceAndThenServesNothing) {
  HangGuard hang(120s);
  const std::size_t threads_before = thread_count();
  {
    FdLeakCheck leaks;
    for (const Combo& c : all_combos()) {
      SCOPED_TRACE(describe(c));
      reactor::ServerOptions options = options_for(c.model, backend());
      options.timeout = 3s;  // a handle_request that ignored the shutdown would wait this long
      AnyServer server(c.transport, bind_address(c.transport), options);

      auto t = Clock::now();
      server.shutdown();
      EXPECT_LT(ms_between(t, Clock::now()), 500.0) << "shutdown of an idle server";

      t = Clock::now();
      EXPECT_FALSE(server.handle_request());
      EXPECT_LT(ms_between(t, Clock::now()), 500.0) << "handle_request after shutdown";

      t = Clock::now();
      {
        Serving serving(server);
        EXPECT_TRUE(serving.wait_returned(2000ms)) << "serve_forever after shutdown";
        EXPECT_LT(ms_between(t, serving.returned_at()), 500.0);
        EXPECT_EQ(serving.error(), "");
      }
      server.server_close();
      EXPECT_EQ(server.stats().accepted, 0u);
    }
  }
  expect_no_threads_or_children(threads_before);
}

TEST_P(ShutdownTest, ShutdownRacingTheStartOfServeForeverNeverHangs) {
  HangGuard hang(120s);
  const std::size_t threads_before = thread_count();
  {
    FdLeakCheck leaks;
    for (const Combo& c : all_combos()) {
      SCOPED_TRACE(describe(c));
      for (int round = 0; round < 10; ++round) {
        AnyServer server(c.transport, bind_address(c.transport), options_for(c.model, backend()));
        Serving serving(server);
        // No wait: the shutdown lands anywhere in serve_forever's start (or before it).
        if (round % 2 == 1) std::this_thread::yield();
        const auto t = Clock::now();
        server.shutdown();
        EXPECT_LT(ms_between(t, Clock::now()), 1000.0) << "round " << round;
        EXPECT_TRUE(serving.wait_returned(1000ms)) << "round " << round;
        serving.join();
        server.server_close();
      }
    }
  }
  expect_no_threads_or_children(threads_before);
}

// --- shutdown() from inside a handler --------------------------------------------------

/// Where a handler finds its server (set once the server exists).
struct ServerSlot {
  AnyServer* server = nullptr;
};

/// On "stop\n": shutdown() from inside the handler, then reply "stopped\n". Else echo.
StreamService stopping_service(ServerSlot& slot) {
  class Events : public EventHandler {
   public:
    explicit Events(ServerSlot& slot) : slot_(slot) {}
    void on_data(Connection& c, Buffer& in) override {
      if (in.view().find("stop\n") != std::string_view::npos) {
        slot_.server->shutdown();
        c.send("stopped\n");
      } else {
        c.send(in.view());
      }
      in.consume(in.size());
    }

   private:
    ServerSlot& slot_;
  };
  return StreamService(reactor::stream_handler([&slot](BlockingStream& s, const Address&) {
                         while (auto line = s.read_line()) {
                           if (*line == "stop\n") {
                             slot.server->shutdown();
                             s.write("stopped\n");
                           } else {
                             s.write(*line);
                           }
                           s.flush();
                         }
                       }),
                       [&slot] { return std::make_unique<Events>(slot); });
}

reactor::DatagramHandler stopping_datagram_handler(ServerSlot& slot) {
  return [&slot](DatagramRequest& r) {
    if (r.data() == "stop\n") {
      slot.server->shutdown();
      r.reply("stopped\n");
    } else {
      r.reply(r.data());
    }
  };
}

TEST_P(ShutdownTest, ShutdownFromInsideAHandlerDoesNotDeadlock) {
  HangGuard hang(120s);
  const std::size_t threads_before = thread_count();
  {
    FdLeakCheck leaks;
    for (const Combo& c : all_combos()) {
      SCOPED_TRACE(describe(c));
      ServerSlot slot;
      AnyServer server(c.transport, bind_address(c.transport), options_for(c.model, backend()),
                       stopping_service(slot), stopping_datagram_handler(slot));
      slot.server = &server;
      Serving serving(server);
      EXPECT_EQ(server.echo("hello\n"), "hello\n");
      const auto t = Clock::now();
      EXPECT_EQ(server.echo("stop\n"), "stopped\n") << "the handler that called shutdown hung";
      if (c.model != Model::forking) {
        EXPECT_TRUE(serving.wait_returned(2000ms)) << "serve_forever went on after shutdown";
        EXPECT_LT(ms_between(t, serving.returned_at()), 1000.0);
      }
      // A forking handler runs in a child: its shutdown() is the child's copy and cannot
      // stop the parent; only that it returns is checked (the reply above came back).
      const auto t2 = Clock::now();
      serving.stop();
      EXPECT_LT(ms_between(t2, Clock::now()), 1000.0);
      EXPECT_EQ(serving.error(), "");
      server.server_close();
      EXPECT_EQ(server.stats().errors, 0u);
    }
  }
  expect_no_threads_or_children(threads_before);
}

// --- shutdown() cancels a blocked read_line ---------------------------------------------

TEST_P(ShutdownTest, ShutdownCancelsABlockingHandlerWaitingInReadLine) {
  HangGuard hang(60s);
  const std::size_t threads_before = thread_count();
  {
    FdLeakCheck leaks;
    for (Model m : {Model::sync, Model::threading, Model::forking}) {
      if (!testable(m)) continue;
      SCOPED_TRACE(model_name(m));
      PipeLog log;
      auto handler = reactor::stream_handler([&log](BlockingStream& s, const Address&) {
        s.write("ready\n");
        s.flush();
        try {
          auto line = s.read_line();  // the client sends nothing: only shutdown ends this
          log.write(line ? "line" : "eof");
        } catch (const std::system_error& e) {
          log.write(e.code() == std::errc::operation_canceled ? "canceled"
                                                              : std::string("error ") + e.what());
          throw;
        }
      });
      AnyServer server(Transport::tcp4, Address::ipv4_loopback(0), options_for(m, backend()),
                       StreamService(handler));
      Serving serving(server);

      int err = 0;
      Fd client = connect_stream(server.address(), err);
      ASSERT_GE(client.get(), 0) << std::strerror(err);
      ASSERT_EQ(read_line(client.get()).bytes, "ready\n");

      auto t = Clock::now();
      server.shutdown();
      EXPECT_LT(ms_between(t, Clock::now()), 1000.0) << "shutdown()";
      EXPECT_TRUE(serving.wait_returned(500ms));
      t = Clock::now();
      server.server_close();
      EXPECT_LT(ms_between(t, Clock::now()), 1000.0) << "server_close()";
      serving.join();

      EXPECT_EQ(log.lines(), std::vector<std::string>{"canceled"});
      const ClientRead end = read_to_end(client.get());
      EXPECT_TRUE(end.ended()) << end.describe();
      EXPECT_EQ(server.stats().errors, 0u) << "a cancelled wait is not a handler error";
    }
  }
  expect_no_threads_or_children(threads_before);
}

REACTOR_INSTANTIATE_ALL_BACKENDS(ShutdownTest);

}  // namespace
