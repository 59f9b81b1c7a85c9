// SPDX-License-Identifier: MIT
// ServerOptions::shutdown_signals: a watched signal shuts a server down at once, even while
// a sync handler blocks the serving thread, on every model; dispositions come back after.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <stdexcept>
#include <thread>

#include "reactor/server/stream_server.hpp"
#include "tests/support/backends.hpp"
#include "tests/support/clients.hpp"
#include "tests/support/fds.hpp"
#include "tests/support/processes.hpp"
#include "tests/support/servers.hpp"
#include "tests/support/signals.hpp"
#include "tests/support/sockets.hpp"

namespace reactor::test {
namespace {

using namespace std::chrono_literals;

struct Silent : EventHandler {
  void on_data(Connection&, Buffer& in) override { in.clear(); }
};

// A handler that blocks until its client speaks (it never does).
StreamService blocking_service(std::atomic<bool>& entered) {
  return {stream_handler([&entered](BlockingStream& s, const Address&) {
            entered = true;
            s.read_line();
          }),
          EventHandlerFactory([&entered] {
            entered = true;
            return std::make_unique<Silent>();
          })};
}

class ShutdownSignalsTest : public ::testing::TestWithParam<Model> {};

TEST_P(ShutdownSignalsTest, SignalEndsServeForeverWhileAHandlerBlocks) {
  if (!testable(GetParam())) GTEST_SKIP() << "forking under ASan";
  ScopedDisposition keep(SIGUSR2);
  std::atomic<bool> entered{false};
  ServerOptions o;
  o.model = GetParam();
  o.threads = 2;
  o.shutdown_signals = {SIGUSR2};
  StreamServer server(Address::parse("127.0.0.1:0"), blocking_service(entered), o);
  std::atomic<bool> returned{false};
  std::thread serving([&] {
    server.serve_forever();
    returned = true;
  });
  int err = 0;
  Fd client = connect_stream(server.address(), err, {}, 5s);
  EXPECT_GE(client.get(), 0) << std::strerror(err);
  if (GetParam() == Model::forking) {
    std::this_thread::sleep_for(300ms);  // the handler runs in a child: no flag to watch
  } else {
    for (int i = 0; i < 500 && !entered; ++i) std::this_thread::sleep_for(10ms);
    EXPECT_TRUE(entered);
  }
  const auto start = std::chrono::steady_clock::now();
  ::kill(::getpid(), SIGUSR2);
  for (int i = 0; i < 200 && !returned; ++i) std::this_thread::sleep_for(5ms);
  EXPECT_TRUE(returned) << "serve_forever still running 1 s after the signal";
  EXPECT_LT(std::chrono::steady_clock::now() - start, 1s);
  server.shutdown();  // in case it did not return: lets the test end
  serving.join();
  server.server_close();
  // The client sees its connection end.
  char c;
  EXPECT_LE(::recv(client.get(), &c, 1, 0), 0);
  client.reset();
}

/// Names a test after the backend its server runs on, the default one (the model is in the
/// instantiation prefix).
struct DefaultBackendName {
  std::string operator()(const ::testing::TestParamInfo<Model>&) const {
    return default_backend_name();
  }
};

INSTANTIATE_TEST_SUITE_P(Sync, ShutdownSignalsTest, ::testing::Values(Model::sync),
                         DefaultBackendName());
INSTANTIATE_TEST_SUITE_P(Threading, ShutdownSignalsTest, ::testing::Values(Model::threading),
                         DefaultBackendName());
INSTANTIATE_TEST_SUITE_P(Forking, ShutdownSignalsTest, ::testing::Values(Model::forking),
                         DefaultBackendName());
INSTANTIATE_TEST_SUITE_P(Reactor, ShutdownSignalsTest, ::testing::Values(Model::reactor),
                         DefaultBackendName());
INSTANTIATE_TEST_SUITE_P(Pool, ShutdownSignalsTest, ::testing::Values(Model::pool),
                         DefaultBackendName());

TEST(ShutdownSignals, DispositionComesBackWithTheServer) {
  ScopedDisposition keep(SIGUSR2);
  struct sigaction before {};
  ::sigaction(SIGUSR2, nullptr, &before);
  {
    ServerOptions o;
    o.model = Model::reactor;
    o.shutdown_signals = {SIGUSR2};
    StreamServer server(Address::parse("127.0.0.1:0"),
                        EventHandlerFactory([] { return std::make_unique<Silent>(); }), o);
    struct sigaction during {};
    ::sigaction(SIGUSR2, nullptr, &during);
    EXPECT_NE(during.sa_handler, before.sa_handler);
  }
  struct sigaction after {};
  ::sigaction(SIGUSR2, nullptr, &after);
  EXPECT_EQ(after.sa_handler, before.sa_handler);
}

TEST(ShutdownSignals, UncatchableSignalIsRefusedAndLeaksNothing) {
  FdLeakCheck leaks;
  ServerOptions o;
  o.model = Model::reactor;
  o.shutdown_signals = {SIGKILL};
  EXPECT_THROW(StreamServer(Address::parse("127.0.0.1:0"),
                            EventHandlerFactory([] { return std::make_unique<Silent>(); }), o),
               std::invalid_argument);
}

}  // namespace
}  // namespace reactor::test
