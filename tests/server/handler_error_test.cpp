// SPDX-License-Identifier: MIT
// Handler errors and refused requests, on every model (the event models over every
// backend). A handler that throws: ServerOptions::handle_error runs exactly once, with that
// client's address and that exception; that connection is closed (the client reads EOF or a
// reset, and no reply); the server goes on serving; stats().errors counts it. The same for
// datagram handlers (no reply to that datagram; the next one from the same client is
// answered). verify_request returning false closes the connection (drops the datagram)
// without running the handler, and stats().rejected counts it; an AccessList works as
// verify_request (an IP outside its ranges is refused; Unix clients only after allow_unix()).
//
// Handlers and handle_error write to a pipe, so that the forking model's children (where a
// forked handler and its handle_error run) report to the test like threads do.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <exception>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "reactor/core/log.hpp"
#include "reactor/server/access_list.hpp"
#include "reactor/server/blocking_stream.hpp"
#include "reactor/server/datagram_server.hpp"
#include "reactor/server/handlers.hpp"
#include "reactor/server/stream_server.hpp"
#include "tests/support/backends.hpp"
#include "tests/support/clients.hpp"
#include "tests/support/fds.hpp"
#include "tests/support/io.hpp"
#include "tests/support/loop.hpp"
#include "tests/support/servers.hpp"
#include "tests/support/sockets.hpp"
#include "tests/support/time.hpp"

namespace {

using namespace std::chrono_literals;
using reactor::AccessList;
using reactor::Address;
using reactor::BlockingStream;
using reactor::Buffer;
using reactor::Connection;
using reactor::DatagramRequest;
using reactor::DatagramServer;
using reactor::EventHandler;
using reactor::Model;
using reactor::ServerOptions;
using reactor::StreamServer;
using reactor::StreamService;
using reactor::test::Fd;
using reactor::test::FdLeakCheck;
using namespace reactor::test;

class HandlerErrorTest : public ModelTest {};

/// "H <client>" when a handler starts; throws "boom from <client>" on input starting with
/// "boom"; echoes anything else.
StreamService logging_service(PipeLog& log) {
  class Events : public EventHandler {
   public:
    explicit Events(PipeLog& log) : log_(log) {}
    void on_connect(Connection& c) override { log_.write("H " + c.peer_address().to_string()); }
    void on_data(Connection& c, Buffer& in) override {
      if (in.view().substr(0, 4) == "boom") {
        throw std::runtime_error("boom from " + c.peer_address().to_string());
      }
      c.send(in.view());
      in.consume(in.size());
    }

   private:
    PipeLog& log_;
  };
  return StreamService(reactor::stream_handler([&log](BlockingStream& s, const Address& client) {
                         log.write("H " + client.to_string());
                         while (auto line = s.read_line()) {
                           if (line->substr(0, 4) == "boom") {
                             throw std::runtime_error("boom from " + client.to_string());
                           }
                           s.write(*line);
                           s.flush();
                         }
                       }),
                       [&log] { return std::make_unique<Events>(log); });
}

reactor::DatagramHandler logging_datagram_handler(PipeLog& log) {
  return [&log](DatagramRequest& r) {
    log.write("H " + r.client_address().to_string());
    if (r.data().substr(0, 4) == "boom") {
      throw std::runtime_error("boom from " + r.client_address().to_string());
    }
    r.reply(r.data());
  };
}

/// Options whose handle_error writes "E <client> <what>" to `log`.
ServerOptions logging_options(Model m, const std::string& backend, PipeLog& log) {
  ServerOptions o = options_for(m, backend);
  o.handle_error = [&log](const Address& client, std::exception_ptr error) {
    std::string what = "(not a std::exception)";
    try {
      std::rethrow_exception(error);
    } catch (const std::exception& e) {
      what = e.what();
    } catch (...) {
    }
    log.write("E " + client.to_string() + " " + what);
  };
  return o;
}

/// A name for a Unix client, so that the server sees who it is (none for IP).
Address client_name(Transport t) { return is_unix(t) ? unique_unix_address("client") : Address{}; }

/// Waits until the server has counted `errors` handler errors and `handled` requests (the
/// forking model counts a child when it is reaped).
template <class Server>
void expect_counts(Server& server, std::uint64_t errors, std::uint64_t handled) {
  EXPECT_TRUE(wait_for(
      [&] { return server.stats().errors == errors && server.stats().handled == handled; }, 3000ms))
      << "errors " << server.stats().errors << " (want " << errors << "), handled "
      << server.stats().handled << " (want " << handled << ")";
}

TEST_P(HandlerErrorTest, ThrowingStreamHandlerIsReportedOnceItsConnectionClosedServingGoesOn) {
  HangGuard hang(60s);
  for (Transport t : {Transport::tcp4, Transport::unix_stream}) {
    SCOPED_TRACE(name(t));
    FdLeakCheck leaks;
    PipeLog log;
    StreamServer server(bind_address(t), logging_service(log),
                        logging_options(model(), backend(), log));
    Serving serving(server);

    int err = 0;
    Fd boom = connect_stream(server.address(), err, client_name(t));
    ASSERT_GE(boom.get(), 0) << std::strerror(err);
    const Address who = bound_address(boom.get());
    ASSERT_TRUE(send_all(boom.get(), "boom\n"));
    const ClientRead r = read_to_end(boom.get());
    EXPECT_TRUE(r.ended()) << "the failed connection was not closed: " << r.describe();
    EXPECT_EQ(r.bytes, "");
    hang_up(boom);

    for (std::size_t i = 0; i < 3; ++i) {
      const std::string line = client_line("after", i);
      EXPECT_EQ(stream_echo(server.address(), line, client_name(t)), line);
    }
    expect_counts(server, 1, 3);
    std::this_thread::sleep_for(100ms);  // a second report would come now
    const std::vector<std::string> errors = log.lines_starting("E ");
    ASSERT_EQ(errors.size(), 1u) << "handle_error calls";
    EXPECT_EQ(errors[0], "E " + who.to_string() + " boom from " + who.to_string());
    EXPECT_EQ(log.lines_starting("H ").size(), 4u) << "handler runs";
    EXPECT_EQ(server.stats().errors, 1u);

    serving.stop();
    server.server_close();
  }
}

TEST_P(HandlerErrorTest, WithoutHandleErrorTheLogHookGetsOneErrorReport) {
  HangGuard hang(60s);
  FdLeakCheck leaks;
  PipeLog log;
  // A forking server's children inherit the hook; the pipe carries their reports here.
  reactor::LogHandler previous =
      reactor::set_log_handler([&log](reactor::LogLevel level, std::string_view message) {
        log.write(std::string("L ") + reactor::to_string(level) + " " + std::string(message));
      });
  {
    ServerOptions options = logging_options(model(), backend(), log);
    options.handle_error = nullptr;
    StreamServer server(bind_address(Transport::tcp4), logging_service(log), options);
    Serving serving(server);

    int err = 0;
    Fd boom = connect_stream(server.address(), err);
    ASSERT_GE(boom.get(), 0) << std::strerror(err);
    const Address who = bound_address(boom.get());
    ASSERT_TRUE(send_all(boom.get(), "boom\n"));
    EXPECT_TRUE(read_to_end(boom.get()).ended());
    hang_up(boom);
    expect_counts(server, 1, 0);
    std::this_thread::sleep_for(100ms);  // a second report would come now
    const std::vector<std::string> reports = log.lines_starting("L ");
    ASSERT_EQ(reports.size(), 1u);
    EXPECT_EQ(reports[0], "L error error while handling a request from " + who.to_string() +
                              ": boom from " + who.to_string());
    serving.stop();
    server.server_close();
  }
  reactor::set_log_handler(std::move(previous));
}

/// Throws 42 (not a std::exception) when the first connection starts: from setup() for the
/// blocking models, from on_connect for the event models. The count lives in shared memory:
/// a forking server builds its handlers in the children. Echoes otherwise.
StreamService throwing_at_start(const SharedCounters& starts, PipeLog& log) {
  class Blocking : public reactor::StreamRequestHandler {
   public:
    Blocking(const SharedCounters& starts, PipeLog& log) : starts_(starts), log_(log) {}
    void setup() override {
      if (starts_[0].fetch_add(1) == 0) throw 42;
    }
    void handle() override {
      log_.write("H " + client_address().to_string());
      while (auto line = stream().read_line()) {
        stream().write(*line);
        stream().flush();
      }
    }

   private:
    const SharedCounters& starts_;
    PipeLog& log_;
  };
  class Events : public EchoEvents {
   public:
    Events(const SharedCounters& starts, PipeLog& log) : starts_(starts), log_(log) {}
    void on_connect(Connection& c) override {
      if (starts_[0].fetch_add(1) == 0) throw 42;
      log_.write("H " + c.peer_address().to_string());
    }

   private:
    const SharedCounters& starts_;
    PipeLog& log_;
  };
  return StreamService(
      reactor::StreamHandlerFactory([&]() -> std::unique_ptr<reactor::StreamRequestHandler> {
        return std::make_unique<Blocking>(starts, log);
      }),
      reactor::EventHandlerFactory([&]() -> std::unique_ptr<EventHandler> {
        return std::make_unique<Events>(starts, log);
      }));
}

TEST_P(HandlerErrorTest, HandlerThrowingANonStandardExceptionAtStartIsReportedOnce) {
  HangGuard hang(60s);
  FdLeakCheck leaks;
  PipeLog log;
  SharedCounters starts(1);
  StreamServer server(Address::ipv4_loopback(0), throwing_at_start(starts, log),
                      logging_options(model(), backend(), log));
  Serving serving(server);

  int err = 0;
  Fd first = connect_stream(server.address(), err);
  ASSERT_GE(first.get(), 0) << std::strerror(err);
  const Address who = bound_address(first.get());
  send_all(first.get(), "hello\n");
  const ClientRead r = read_to_end(first.get());
  EXPECT_TRUE(r.ended()) << "the failed connection was not closed: " << r.describe();
  EXPECT_EQ(r.bytes, "");
  hang_up(first);

  EXPECT_EQ(stream_echo(server.address(), "next\n"), "next\n");
  expect_counts(server, 1, 1);
  std::this_thread::sleep_for(100ms);
  const std::vector<std::string> errors = log.lines_starting("E ");
  ASSERT_EQ(errors.size(), 1u) << "handle_error calls";
  EXPECT_EQ(errors[0], "E " + who.to_string() + " (not a std::exception)");
  EXPECT_EQ(log.lines_starting("H ").size(), 1u);
  EXPECT_EQ(starts[0].load(), 2);

  serving.stop();
  server.server_close();
}

TEST_P(HandlerErrorTest, ThrowingDatagramHandlerIsReportedOnceAndServingGoesOn) {
  HangGuard hang(60s);
  for (Transport t : {Transport::udp4, Transport::unix_dgram}) {
    SCOPED_TRACE(name(t));
    FdLeakCheck leaks;
    PipeLog log;
    DatagramServer server(bind_address(t), logging_datagram_handler(log),
                          logging_options(model(), backend(), log));
    Serving serving(server);

    Fd client = datagram_client(server.address());
    ASSERT_GE(client.get(), 0);
    const Address who = bound_address(client.get());
    ASSERT_TRUE(send_datagram(client.get(), server.address(), "boom"));
    // Once the failure is counted, a reply (there must be none) would already be queued.
    EXPECT_TRUE(wait_for([&] { return server.stats().errors == 1; }, 3000ms));
    EXPECT_TRUE(nothing_queued(client.get())) << "a reply to the datagram whose handler threw";

    int err = 0;
    for (std::size_t i = 0; i < 3; ++i) {
      const std::string line = client_line("after", i);
      ASSERT_TRUE(send_datagram(client.get(), server.address(), line));
      EXPECT_EQ(receive_datagram(client.get(), err), line) << std::strerror(err);
    }
    expect_counts(server, 1, 3);
    std::this_thread::sleep_for(100ms);
    const std::vector<std::string> errors = log.lines_starting("E ");
    ASSERT_EQ(errors.size(), 1u) << "handle_error calls";
    EXPECT_EQ(errors[0], "E " + who.to_string() + " boom from " + who.to_string());
    EXPECT_EQ(log.lines_starting("H ").size(), 4u) << "handler runs";

    serving.stop();
    server.server_close();
  }
}

TEST_P(HandlerErrorTest, VerifyRequestFalseClosesWithoutRunningTheHandler) {
  HangGuard hang(60s);
  for (Transport t : kServerTransports) {
    SCOPED_TRACE(name(t));
    FdLeakCheck leaks;
    PipeLog log;
    std::atomic<int> calls{0};
    ServerOptions o = logging_options(model(), backend(), log);
    // Refuses the 1st, 3rd, ... request; lets the others in.
    o.verify_request = [&calls](const Address&) { return calls.fetch_add(1) % 2 == 1; };
    AnyServer server(t, bind_address(t), o, logging_service(log), logging_datagram_handler(log));
    Serving serving(server);

    for (int round = 0; round < 2; ++round) {
      if (is_stream(t)) {
        int err = 0;
        Fd refused = connect_stream(server.address(), err);
        ASSERT_GE(refused.get(), 0) << std::strerror(err);
        send_all(refused.get(), "hi\n");
        const ClientRead r = read_to_end(refused.get());
        EXPECT_TRUE(r.ended()) << "a refused connection stayed open: " << r.describe();
        EXPECT_EQ(r.bytes, "");
      } else {
        Fd refused = datagram_client(server.address());
        ASSERT_TRUE(send_datagram(refused.get(), server.address(), "hi"));
        EXPECT_TRUE(wait_for(
            [&] { return server.stats().rejected == static_cast<std::uint64_t>(round + 1); },
            3000ms));
        // Refused before any handler ran: nothing can come later.
        EXPECT_TRUE(nothing_queued(refused.get())) << "a refused datagram was answered";
      }
      const std::string line = client_line("allowed", static_cast<std::size_t>(round));
      EXPECT_EQ(server.echo(line), line);
    }
    EXPECT_TRUE(wait_for([&] { return server.stats().handled == 2; }, 3000ms));
    const reactor::ServerStats s = server.stats();
    EXPECT_EQ(s.rejected, 2u);
    EXPECT_EQ(s.accepted, 4u);
    EXPECT_EQ(s.errors, 0u);
    EXPECT_EQ(calls.load(), 4);
    EXPECT_EQ(log.lines_starting("H ").size(), 2u) << "the handler ran for a refused request";
    EXPECT_TRUE(log.lines_starting("E ").empty());

    serving.stop();
    server.server_close();
  }
}

TEST_P(HandlerErrorTest, AccessListAsVerifyRequest) {
  HangGuard hang(60s);
  AccessList elsewhere;  // no loopback in it
  ASSERT_FALSE(elsewhere.add("10.0.0.0/8"));
  ASSERT_FALSE(elsewhere.add("fd00::/8"));
  AccessList loopback;
  ASSERT_FALSE(loopback.add("127.0.0.0/8"));
  ASSERT_FALSE(loopback.add("::1"));
  AccessList unix_too = loopback;
  unix_too.allow_unix();

  struct Case {
    Transport transport;
    const AccessList* list;
    bool allowed;
  };
  const std::vector<Case> cases{
      {Transport::tcp4, &elsewhere, false},       {Transport::tcp4, &loopback, true},
      {Transport::udp4, &elsewhere, false},       {Transport::udp4, &loopback, true},
      {Transport::unix_stream, &loopback, false}, {Transport::unix_stream, &unix_too, true},
      {Transport::unix_dgram, &loopback, false},  {Transport::unix_dgram, &unix_too, true},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(std::string(name(c.transport)) + (c.allowed ? " allowed" : " refused"));
    FdLeakCheck leaks;
    PipeLog log;
    ServerOptions o = logging_options(model(), backend(), log);
    o.verify_request = *c.list;
    AnyServer server(c.transport, bind_address(c.transport), o, logging_service(log),
                     logging_datagram_handler(log));
    Serving serving(server);

    const std::string line = "let me in\n";
    if (c.allowed) {
      EXPECT_EQ(server.echo(line), line);
      EXPECT_TRUE(wait_for([&] { return server.stats().handled == 1; }, 3000ms));
      EXPECT_EQ(server.stats().rejected, 0u);
      EXPECT_EQ(log.lines_starting("H ").size(), 1u);
    } else {
      if (is_stream(c.transport)) {
        int err = 0;
        Fd client = connect_stream(server.address(), err);
        ASSERT_GE(client.get(), 0) << std::strerror(err);
        send_all(client.get(), line);
        const ClientRead r = read_to_end(client.get());
        EXPECT_TRUE(r.ended()) << r.describe();
        EXPECT_EQ(r.bytes, "");
      } else {
        Fd client = datagram_client(server.address());
        ASSERT_TRUE(send_datagram(client.get(), server.address(), line));
        EXPECT_TRUE(wait_for([&] { return server.stats().rejected == 1; }, 3000ms));
        EXPECT_TRUE(nothing_queued(client.get())) << "a refused datagram was answered";
      }
      EXPECT_TRUE(wait_for([&] { return server.stats().rejected == 1; }, 3000ms));
      EXPECT_EQ(server.stats().handled, 0u);
      EXPECT_TRUE(log.lines_starting("H ").empty()) << "the handler ran for a refused client";
    }
    EXPECT_EQ(server.stats().errors, 0u);
    serving.stop();
    server.server_close();
  }
}

REACTOR_INSTANTIATE_MODEL(HandlerErrorTest, Sync, sync);
REACTOR_INSTANTIATE_MODEL(HandlerErrorTest, Threading, threading);
REACTOR_INSTANTIATE_MODEL(HandlerErrorTest, Forking, forking);
REACTOR_INSTANTIATE_MODEL(HandlerErrorTest, Reactor, reactor);
REACTOR_INSTANTIATE_MODEL(HandlerErrorTest, Pool, pool);

}  // namespace
