// SPDX-License-Identifier: MIT
// Shutdown drains on every model: clients that have their answers and clients in the middle
// of a request both see a clean end of stream with every byte, a handler that does not
// finish is cut at the drain deadline, the counters say which was which, and a Ctrl-C that
// reaches a forking server's children too is not counted as their failure. Also the
// absolute connection deadline on every model, and the reports of datagrams a server lost.
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "reactor/core/log.hpp"
#include "reactor/server/datagram_server.hpp"
#include "reactor/server/stream_server.hpp"
#include "tests/support/backends.hpp"
#include "tests/support/clients.hpp"
#include "tests/support/processes.hpp"
#include "tests/support/servers.hpp"
#include "tests/support/sockets.hpp"

namespace reactor::test {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

constexpr auto kAnswerDelay = 300ms;

// Lines: "slow" is answered "done" after kAnswerDelay; "hang" starts an answer that never
// ends (blocking: an endless write; events: a request the handler says is still busy);
// anything else is echoed.
class LineEvents : public EventHandler {
 public:
  void on_data(Connection& c, Buffer& in) override {
    for (std::size_t nl; (nl = in.view().find('\n')) != std::string_view::npos;) {
      const std::string line(in.view().substr(0, nl + 1));
      in.consume(nl + 1);
      if (line == "slow\n") {
        answer_ = c.loop().after(kAnswerDelay, [&c] { c.send("done\n"); });
      } else if (line == "hang\n") {
        hanging_ = true;
      } else {
        c.send(line);
      }
    }
  }
  bool busy(const Connection&) const override { return hanging_ || answer_.active(); }

 private:
  Timer answer_;
  bool hanging_ = false;
};

StreamService line_service() {
  return {stream_handler([](BlockingStream& s, const Address&) {
            while (auto line = s.read_line()) {
              if (*line == "slow\n") {
                std::this_thread::sleep_for(kAnswerDelay);
                s.write("done\n");
              } else if (*line == "hang\n") {
                const std::string chunk(64 * 1024, 'h');
                for (;;) s.write(chunk);
              } else {
                s.write(*line);
              }
              s.flush();
            }
          }),
          EventHandlerFactory([] { return std::make_unique<LineEvents>(); })};
}

bool send_all(int fd, std::string_view bytes) {
  return ::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(bytes.size());
}

class GracefulShutdownTest : public ModelTest {
 protected:
  ServerOptions options(std::chrono::milliseconds drain) const {
    ServerOptions o = options_for(model(), backend());
    o.shutdown_drain = drain;
    return o;
  }
};

TEST_P(GracefulShutdownTest, ClientThatHasItsAnswerSeesACleanEndAndCountsAsServed) {
  StreamServer server(Address::parse("127.0.0.1:0"), line_service(), options(2000ms));
  Serving serving(server);
  int err = 0;
  Fd client = connect_stream(server.address(), err);
  ASSERT_GE(client.get(), 0) << std::strerror(err);
  ASSERT_TRUE(send_all(client.get(), "hello\n"));
  EXPECT_EQ(read_line(client.get()).bytes, "hello\n");
  const auto start = Clock::now();
  serving.stop();
  EXPECT_LT(Clock::now() - start, 1000ms) << "an idle connection does not wait for the drain";
  const ClientRead end = read_to_end(client.get());
  EXPECT_TRUE(end.eof && end.error == 0) << end.describe();
  server.server_close();
  const ServerStats s = server.stats();
  EXPECT_EQ(s.accepted, 1u);
  EXPECT_EQ(s.handled, 1u);
  EXPECT_EQ(s.cut, 0u);
  EXPECT_EQ(s.errors, 0u);
}

TEST_P(GracefulShutdownTest, ClientMidRequestGetsItsWholeAnswerThenACleanEnd) {
  StreamServer server(Address::parse("127.0.0.1:0"), line_service(), options(2000ms));
  Serving serving(server);
  int err = 0;
  Fd client = connect_stream(server.address(), err);
  ASSERT_GE(client.get(), 0) << std::strerror(err);
  ASSERT_TRUE(send_all(client.get(), "hello\n"));
  EXPECT_EQ(read_line(client.get()).bytes, "hello\n");
  ASSERT_TRUE(send_all(client.get(), "slow\n"));
  std::this_thread::sleep_for(100ms);  // the answer is due in 200 ms
  serving.stop();
  const ClientRead end = read_to_end(client.get());
  EXPECT_EQ(end.bytes, "done\n");
  EXPECT_TRUE(end.eof && end.error == 0) << end.describe();
  server.server_close();
  const ServerStats s = server.stats();
  EXPECT_EQ(s.handled, 1u);
  EXPECT_EQ(s.cut, 0u);
  EXPECT_EQ(s.errors, 0u);
}

TEST_P(GracefulShutdownTest, HandlerThatNeverFinishesIsCutAtTheDrainDeadline) {
  constexpr auto kDrain = 400ms;
  StreamServer server(Address::parse("127.0.0.1:0"), line_service(), options(kDrain));
  Serving serving(server);
  int err = 0;
  Fd client = connect_stream(server.address(), err);
  ASSERT_GE(client.get(), 0) << std::strerror(err);
  ASSERT_TRUE(send_all(client.get(), "hang\n"));  // and never read
  std::this_thread::sleep_for(200ms);
  const auto start = Clock::now();
  serving.stop();
  server.server_close();
  const auto took = Clock::now() - start;
  EXPECT_GE(took, kDrain - 50ms) << "cut before the drain deadline";
  EXPECT_LT(took, kDrain + 1500ms) << "not cut at the drain deadline";
  const ServerStats s = server.stats();
  EXPECT_EQ(s.cut, 1u);
  EXPECT_EQ(s.handled, 0u);
  EXPECT_EQ(s.errors, 0u);
}

TEST_P(GracefulShutdownTest, DrippingClientIsCutAtTheConnectionDeadline) {
  constexpr auto kDeadline = 500ms;
  ServerOptions o = options(2000ms);
  o.connection.deadline = kDeadline;
  StreamServer server(Address::parse("127.0.0.1:0"), line_service(), o);
  Serving serving(server);
  int err = 0;
  Fd client = connect_stream(server.address(), err);
  ASSERT_GE(client.get(), 0) << std::strerror(err);
  const auto start = Clock::now();
  bool ended = false;
  while (!ended && Clock::now() - start < 3000ms) {
    ended = !send_all(client.get(), "x");  // never a whole line
    pollfd p{client.get(), POLLIN, 0};
    if (::poll(&p, 1, 100) > 0) ended = true;  // end of stream or a reset
  }
  const auto took = Clock::now() - start;
  EXPECT_TRUE(ended) << "a client dripping a byte every 100 ms outlived a 500 ms deadline";
  EXPECT_LT(took, kDeadline + 700ms);
  serving.stop();
  server.server_close();
  EXPECT_EQ(server.stats().timeouts, 1u);
  EXPECT_EQ(server.stats().errors, 0u);
}

REACTOR_INSTANTIATE_MODEL(GracefulShutdownTest, Sync, sync);
REACTOR_INSTANTIATE_MODEL(GracefulShutdownTest, Threading, threading);
REACTOR_INSTANTIATE_MODEL(GracefulShutdownTest, Forking, forking);
REACTOR_INSTANTIATE_MODEL(GracefulShutdownTest, Reactor, reactor);
REACTOR_INSTANTIATE_MODEL(GracefulShutdownTest, Pool, pool);

// A Ctrl-C at a terminal goes to the whole foreground process group: the forking server's
// children get it too. They leave it to the parent, which drains them: no error counted.
// The server runs in a child of its own process group, so that the signal reaches nothing
// else.
TEST(ForkingGracefulShutdown, InterruptToTheWholeProcessGroupCountsNoError) {
  if (!kForkingTestable) GTEST_SKIP() << "forking under ASan";
  Child child([] {
    if (::setpgid(0, 0) != 0) return 10;
    ServerOptions o;
    o.model = Model::forking;
    o.shutdown_signals = {SIGINT};
    StreamServer server(Address::parse("127.0.0.1:0"), line_service(), o);
    std::atomic<int> answered{0};
    std::thread client([&] {
      int err = 0;
      Fd fd = connect_stream(server.address(), err);
      if (fd.get() < 0 || !send_all(fd.get(), "hello\n")) return;
      if (read_line(fd.get()).bytes == "hello\n") answered = 1;
      std::this_thread::sleep_for(100ms);  // connected, answered, idle
      ::kill(0, SIGINT);
      const ClientRead end = read_to_end(fd.get());
      if (end.eof && end.error == 0) answered = 2;
    });
    server.serve_forever();
    client.join();
    server.server_close();
    const ServerStats s = server.stats();
    if (answered != 2) return 11;
    if (s.errors != 0) return 12;
    if (s.handled != 1) return 13;
    return 0;
  });
  EXPECT_EQ(child.wait(10s), 0) << "11: the client missed its answer or a clean end; 12: errors "
                                   "counted; 13: not counted as served";
}

// Reports of the datagram server, captured through the log hook.
class CapturedLog {
 public:
  CapturedLog() {
    previous_ = set_log_handler([this](LogLevel level, std::string_view message) {
      std::lock_guard lock(mutex_);
      lines_.push_back(std::string(to_string(level)) + ": " + std::string(message));
    });
  }
  ~CapturedLog() { set_log_handler(std::move(previous_)); }
  std::vector<std::string> lines() {
    std::lock_guard lock(mutex_);
    return lines_;
  }

 private:
  LogHandler previous_;
  std::mutex mutex_;
  std::vector<std::string> lines_;
};

class DatagramReportTest : public BackendTest {};

TEST_P(DatagramReportTest, TruncatedDatagramsAreReportedOnceThenEveryThousandth) {
  CapturedLog log;
  ServerOptions o;
  o.backend = backend();
  o.max_datagram = 8;
  DatagramServer server(Address::parse("127.0.0.1:0"), datagram_echo_handler(), o);
  Serving serving(server);
  Fd client = datagram_client(server.address());
  ASSERT_GE(client.get(), 0);
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(send_datagram(client.get(), server.address(), std::string(100, 'x')));
    int err = 0;
    EXPECT_EQ(receive_datagram(client.get(), err), std::string(8, 'x')) << std::strerror(err);
  }
  serving.stop();
  const auto lines = log.lines();
  ASSERT_EQ(lines.size(), 1u) << "one report for a burst, not one per datagram";
  EXPECT_NE(lines[0].find("warning: "), std::string::npos) << lines[0];
  EXPECT_NE(lines[0].find("truncated"), std::string::npos) << lines[0];
  EXPECT_NE(lines[0].find("127.0.0.1"), std::string::npos) << lines[0];
}

TEST_P(DatagramReportTest, ReplyThatCannotBeSentIsReportedNotCountedAsAHandlerError) {
  CapturedLog log;
  ServerOptions o;
  o.backend = backend();
  // The reply goes out after the client is gone: a Unix datagram to a vanished name fails.
  DatagramServer server(
      unique_unix_address("lostreply"),
      [](DatagramRequest& r) {
        std::this_thread::sleep_for(200ms);
        r.reply(r.data());
      },
      o);
  Serving serving(server);
  {
    Fd client = datagram_client(server.address());
    ASSERT_GE(client.get(), 0);
    ASSERT_TRUE(send_datagram(client.get(), server.address(), "hello"));
  }
  EXPECT_TRUE(wait_for([&] { return server.stats().handled == 1; }, 5000ms));
  serving.stop();
  EXPECT_EQ(server.stats().errors, 0u);
  const auto lines = log.lines();
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_NE(lines[0].find("warning: "), std::string::npos) << lines[0];
  EXPECT_NE(lines[0].find("reply could not be sent"), std::string::npos) << lines[0];
}

REACTOR_INSTANTIATE_ALL_BACKENDS(DatagramReportTest);

}  // namespace
}  // namespace reactor::test
