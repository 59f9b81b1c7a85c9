// SPDX-License-Identifier: MIT
// The blocking models close a client's socket after its handler returns. When the client sent
// more than the handler read, a plain close would make Linux reset the connection, and the
// reset can destroy the answer in flight. Under the sync model (the threading and forking
// models close through the same call) a client that sends a line and a long tail the handler
// never reads gets the whole answer and then end of stream, never ECONNRESET, 50 times over
// TCP and over a Unix socket.
#include <gtest/gtest.h>
#include <sys/socket.h>

#include <cerrno>
#include <chrono>
#include <string>
#include <thread>

#include "reactor/server/stream_server.hpp"
#include "tests/support/backends.hpp"
#include "tests/support/clients.hpp"
#include "tests/support/fds.hpp"
#include "tests/support/io.hpp"
#include "tests/support/servers.hpp"
#include "tests/support/sockets.hpp"

namespace reactor {
namespace {

using namespace std::chrono_literals;
using namespace reactor::test;

constexpr int kRounds = 50;
const std::string kAnswer = "hello, and goodbye\n";

TEST(SyncLingeringCloseTest, AnswerReachesAClientWhoseTailWasNeverRead) {
  for (const Transport t : {Transport::tcp4, Transport::unix_stream}) {
    SCOPED_TRACE(name(t));
    TempDir dir;
    ServerOptions o;
    o.model = Model::sync;
    StreamServer server(bind_address(t, &dir),
                        StreamService(stream_handler([](BlockingStream& s, const Address&) {
                          s.read_line();  // the tail stays unread
                          s.write(kAnswer);
                        })),
                        o);
    Serving serving(server);
    // Longer than what read_line() buffers, so that part of it is still in the kernel.
    const std::string request = "hi\n" + std::string(200 * 1024, 't');
    int resets = 0;
    for (int round = 0; round < kRounds; ++round) {
      int err = 0;
      Fd client = connect_stream(server.address(), err);
      ASSERT_GE(client.get(), 0) << strerror(err);
      std::thread sender([&] { send_all(client.get(), request); });  // may fail once cut
      const ClientRead r = read_to_end(client.get());
      sender.join();
      if (r.error == ECONNRESET) ++resets;
      EXPECT_EQ(r.bytes, kAnswer) << "round " << round << ": " << r.describe();
      EXPECT_TRUE(r.eof) << "round " << round << ": " << r.describe();
      hang_up(client);
    }
    EXPECT_EQ(resets, 0) << "of " << kRounds << " rounds";
  }
}

}  // namespace
}  // namespace reactor
