// SPDX-License-Identifier: MIT
// Every transport (TCP, Unix stream, UDP, Unix datagram) on every model (sync, threading,
// forking, reactor, pool): 3 sequential and then 50 concurrent clients each get their line
// echoed; after shutdown() and server_close() the listening socket is closed (fileno() is -1,
// no fd refers to its inode, clients are refused, a socket file is removed), no thread and
// no child is left, and once the server is destroyed the fd count is back where it was.
// The event models (reactor, pool) run over every backend; the blocking models use their
// loop only to accept, so they run on the default backend.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <chrono>
#include <cstddef>
#include <memory>
#include <ostream>
#include <string>
#include <thread>
#include <vector>

#include "reactor/core/backend.hpp"
#include "reactor/server/datagram_server.hpp"
#include "reactor/server/stream_server.hpp"
#include "tests/support/backends.hpp"
#include "tests/support/clients.hpp"
#include "tests/support/fds.hpp"
#include "tests/support/loop.hpp"
#include "tests/support/processes.hpp"
#include "tests/support/servers.hpp"
#include "tests/support/signals.hpp"
#include "tests/support/sockets.hpp"
#include "tests/support/time.hpp"

namespace {

using namespace std::chrono_literals;
using reactor::Address;
using reactor::DatagramServer;
using reactor::Model;
using reactor::StreamServer;
using reactor::test::FdLeakCheck;
using reactor::test::Watchdog;
using namespace reactor::test;

struct MatrixCase {
  Transport transport;
  Model model;
  std::string backend;
};

/// Transport `t` served by model `m` on each backend `m` runs on (none when `m` cannot be
/// tested here).
std::vector<MatrixCase> matrix_cases(Transport t, Model m) {
  std::vector<MatrixCase> out;
  for (const ModelCase& c : model_cases(m)) out.push_back({t, c.model, c.backend});
  return out;
}

/// For gtest's messages (instead of a byte dump).
[[maybe_unused]] void PrintTo(const MatrixCase& c, std::ostream* os) {
  *os << name(c.transport) << "/" << reactor::to_string(c.model) << "/" << c.backend;
}

/// The backend: the model and the transport are in the instantiation prefix.
struct MatrixCaseName {
  std::string operator()(const ::testing::TestParamInfo<MatrixCase>& info) const {
    return info.param.backend;
  }
};

class ServerMatrixTest : public ::testing::TestWithParam<MatrixCase> {
 protected:
  void SetUp() override { reactor::test::warm_up(GetParam().backend); }
};

constexpr std::size_t kSequential = 3;
constexpr std::size_t kConcurrent = 50;

/// Serves, runs the clients, shuts down and closes; checks what must hold after the close.
template <class Server>
void exercise(Server& server, Transport t) {
  const Address at = server.address();
  const int listen_fd = server.fileno();
  ASSERT_GE(listen_fd, 0);
  const ino_t listen_inode = inode_of(listen_fd);
  ASSERT_NE(listen_inode, 0u);
  const std::string path = unix_path(at);
  if (!path.empty()) {
    struct stat st {};
    EXPECT_EQ(::stat(path.c_str(), &st), 0) << "the socket file " << path << " should exist";
  }

  {
    Watchdog watchdog(server.loop(), 60s);
    Serving serving(server);

    for (std::size_t i = 0; i < kSequential; ++i) {
      const std::string line = client_line("seq", i);
      EXPECT_EQ(echo(t, at, line), line) << "sequential client " << i;
    }

    std::vector<std::string> got(kConcurrent);
    {
      std::vector<std::thread> clients;
      for (std::size_t i = 0; i < kConcurrent; ++i) {
        clients.emplace_back([&, i] { got[i] = echo(t, at, client_line("con", i)); });
      }
      for (auto& c : clients) c.join();
    }
    for (std::size_t i = 0; i < kConcurrent; ++i) {
      EXPECT_EQ(got[i], client_line("con", i)) << "concurrent client " << i;
    }

    serving.stop();
    EXPECT_TRUE(serving.returned());
    EXPECT_EQ(serving.error(), "");
  }

  server.server_close();
  EXPECT_EQ(server.fileno(), -1);
  EXPECT_FALSE(socket_inode_open(listen_inode)) << "the listening socket is still open";
  const int err = unreachable_error(t, at);
  EXPECT_TRUE(err == ECONNREFUSED || err == ENOENT)
      << "after server_close a client got " << (err == 0 ? "an answer" : std::strerror(err));
  if (!path.empty()) {
    struct stat st {};
    EXPECT_NE(::stat(path.c_str(), &st), 0) << "server_close left the socket file " << path;
  }
}

TEST_P(ServerMatrixTest, EchoesSequentialThenConcurrentClientsAndLeavesNothing) {
  const MatrixCase& c = GetParam();
  HangGuard hang(120s);
  TempDir dir;
  const std::size_t threads_before = thread_count();
  {
    FdLeakCheck leaks;
    const Address bind = bind_address(c.transport, &dir);
    const reactor::ServerOptions options = options_for(c.model, c.backend);
    if (is_stream(c.transport)) {
      StreamServer server(bind, echo_service(), options);
      exercise(server, c.transport);
    } else {
      DatagramServer server(bind, datagram_echo_handler(), options);
      exercise(server, c.transport);
    }
  }
  EXPECT_TRUE(wait_for([&] { return thread_count() <= threads_before; }, 2000ms))
      << thread_count() << " threads, " << threads_before << " before the server";
  EXPECT_TRUE(child_pids().empty()) << child_pids().size() << " children left";
  EXPECT_TRUE(waitpid_finds_no_child());
}

// One instantiation per model and transport: ReactorTcp/ServerMatrixTest.Echoes.../epoll.
#define REACTOR_INSTANTIATE_MATRIX(ModelName, model, TransportName, transport)                   \
  INSTANTIATE_TEST_SUITE_P(ModelName##TransportName, ServerMatrixTest,                           \
                           ::testing::ValuesIn(matrix_cases(reactor::test::Transport::transport, \
                                                            reactor::Model::model)),             \
                           MatrixCaseName())
REACTOR_INSTANTIATE_MATRIX(Sync, sync, Tcp, tcp4);
REACTOR_INSTANTIATE_MATRIX(Sync, sync, UnixStream, unix_stream);
REACTOR_INSTANTIATE_MATRIX(Sync, sync, Udp, udp4);
REACTOR_INSTANTIATE_MATRIX(Sync, sync, UnixDgram, unix_dgram);
REACTOR_INSTANTIATE_MATRIX(Threading, threading, Tcp, tcp4);
REACTOR_INSTANTIATE_MATRIX(Threading, threading, UnixStream, unix_stream);
REACTOR_INSTANTIATE_MATRIX(Threading, threading, Udp, udp4);
REACTOR_INSTANTIATE_MATRIX(Threading, threading, UnixDgram, unix_dgram);
REACTOR_INSTANTIATE_MATRIX(Forking, forking, Tcp, tcp4);
REACTOR_INSTANTIATE_MATRIX(Forking, forking, UnixStream, unix_stream);
REACTOR_INSTANTIATE_MATRIX(Forking, forking, Udp, udp4);
REACTOR_INSTANTIATE_MATRIX(Forking, forking, UnixDgram, unix_dgram);
REACTOR_INSTANTIATE_MATRIX(Reactor, reactor, Tcp, tcp4);
REACTOR_INSTANTIATE_MATRIX(Reactor, reactor, UnixStream, unix_stream);
REACTOR_INSTANTIATE_MATRIX(Reactor, reactor, Udp, udp4);
REACTOR_INSTANTIATE_MATRIX(Reactor, reactor, UnixDgram, unix_dgram);
REACTOR_INSTANTIATE_MATRIX(Pool, pool, Tcp, tcp4);
REACTOR_INSTANTIATE_MATRIX(Pool, pool, UnixStream, unix_stream);
REACTOR_INSTANTIATE_MATRIX(Pool, pool, Udp, udp4);
REACTOR_INSTANTIATE_MATRIX(Pool, pool, UnixDgram, unix_dgram);

}  // namespace
