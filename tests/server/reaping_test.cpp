// SPDX-License-Identifier: MIT
// Threads and children are reaped, on every backend (the loop's backend carries the
// thread-finished posts and the SIGCHLD wake-ups).
// - Threading: 1,000 sequential requests; the live thread count, sampled every millisecond,
//   stays small (finished handler threads are joined at once, none is kept), the parent's fd
//   count does not grow, and after server_close the thread count is back to its baseline.
//   With max_threads = 8 and 200 overlapping requests, at most 8 handlers run at once.
// - Forking, max_children = 40: 1,000 sequential requests and then a burst of 200 concurrent
//   slow ones (250 and 100 on the non-default backends). Each child reports in its reply
//   whether it still holds the listening socket (it must not: /proc/self/fd is searched for
//   the listener's inode). The live children, sampled every 2 ms, are never more than 40
//   (zombies count: they hold a slot until reaped); once the clients are done every child is
//   reaped by SIGCHLD handling alone (no zombie, before server_close); the parent closes its
//   copy of each accepted socket (its fd count does not grow); after server_close waitpid
//   finds no child.
//
// The clients live in this process, so every child inherits a copy of the client sockets
// open when it was forked: clients end their connections with shutdown(2), not close(2)
// alone (hang_up), or a child would wait forever for an end of stream.
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "reactor/core/backend.hpp"
#include "reactor/server/blocking_stream.hpp"
#include "reactor/server/handlers.hpp"
#include "reactor/server/stream_server.hpp"
#include "tests/support/backends.hpp"
#include "tests/support/clients.hpp"
#include "tests/support/fds.hpp"
#include "tests/support/processes.hpp"
#include "tests/support/servers.hpp"
#include "tests/support/sockets.hpp"
#include "tests/support/time.hpp"

namespace {

using namespace std::chrono_literals;
using reactor::Address;
using reactor::BlockingStream;
using reactor::Model;
using reactor::ServerOptions;
using reactor::StreamServer;
using reactor::StreamService;
using reactor::test::FdLeakCheck;
using reactor::test::open_fd_count;
using namespace reactor::test;

class ReapingTest : public reactor::test::BackendTest {
 protected:
  void SetUp() override { reactor::test::warm_up(backend()); }
};

constexpr std::size_t kSequential = 1000;

TEST_P(ReapingTest, ThreadingServerKeepsNoFinishedThreads) {
  HangGuard hang(150s);
  const std::size_t threads_before = thread_count();
  {
    FdLeakCheck leaks;
    StreamServer server(Address::ipv4_loopback(0), echo_service(),
                        options_for(Model::threading, backend()));
    Serving serving(server);
    ASSERT_EQ(stream_echo(server.address(), "first\n"), "first\n");
    ASSERT_TRUE(wait_for([&] { return server.stats().active == 0; }, 2000ms));
    const std::size_t fds_serving = open_fd_count();
    const std::size_t threads_serving = thread_count();  // + the serving thread

    Sampler threads([] { return thread_count(); });
    Sampler fds([] { return open_fd_count(); });
    for (std::size_t i = 0; i < kSequential; ++i) {
      const std::string line = client_line("seq", i);
      const std::string got = stream_echo(server.address(), line);
      ASSERT_EQ(got, line) << "request " << i;
    }
    ASSERT_TRUE(wait_for([&] { return server.stats().active == 0; }, 2000ms));
    threads.stop();
    fds.stop();

    // Sampler threads: 2. Handler threads alive at once with sequential clients: a few
    // finishing while the next starts. Anything growing with the request count fails.
    EXPECT_LT(threads.max(), threads_serving + 2 + 20)
        << "threads: " << threads.max() << " at most, " << threads_serving << " when idle";
    EXPECT_TRUE(wait_for([&] { return thread_count() <= threads_serving; }, 2000ms))
        << thread_count() << " threads after the requests, " << threads_serving << " before";
    EXPECT_EQ(open_fd_count(), fds_serving) << "the server's fd count grew";
    EXPECT_LT(fds.max(), fds_serving + 2 + 20);  // the samplers' opendir, client, accepted
    const reactor::ServerStats s = server.stats();
    EXPECT_EQ(s.handled, kSequential + 1);
    EXPECT_EQ(s.errors, 0u);
    EXPECT_LT(s.peak_active, 20u);

    serving.stop();
    server.server_close();
  }
  EXPECT_TRUE(wait_for([&] { return thread_count() <= threads_before; }, 2000ms))
      << thread_count() << " threads, " << threads_before << " before the server";
}

TEST_P(ReapingTest, ThreadingServerNeverRunsMoreThanMaxThreads) {
  HangGuard hang(60s);
  constexpr std::size_t kMaxThreads = 8;
  constexpr std::size_t kRequests = 200;
  constexpr std::size_t kClients = 50;
  const std::size_t threads_before = thread_count();
  {
    FdLeakCheck leaks;
    SharedCounters running(2);  // handlers running now, the most at once
    ServerOptions o = options_for(Model::threading, backend());
    o.max_threads = kMaxThreads;
    StreamServer server(
        Address::ipv4_loopback(0),
        StreamService(reactor::stream_handler([&running](BlockingStream& s, const Address&) {
          running.enter(0, 1);
          while (auto line = s.read_line()) {
            std::this_thread::sleep_for(20ms);  // so that requests pile up
            s.write(*line);
            s.flush();
          }
          --running[0];
        })),
        o);
    Serving serving(server);
    const std::size_t threads_serving = thread_count();
    Sampler threads([] { return thread_count(); });
    std::vector<std::string> replies(kRequests);
    {
      std::atomic<std::size_t> next{0};
      std::vector<std::thread> clients;
      for (std::size_t c = 0; c < kClients; ++c) {
        clients.emplace_back([&] {
          for (std::size_t i; (i = next.fetch_add(1)) < kRequests;) {
            replies[i] = stream_echo(server.address(), client_line("burst", i));
          }
        });
      }
      for (auto& t : clients) t.join();
    }
    threads.stop();
    for (std::size_t i = 0; i < kRequests; ++i) {
      EXPECT_EQ(replies[i], client_line("burst", i));
    }
    EXPECT_LE(running[1].load(), static_cast<std::int64_t>(kMaxThreads));
    EXPECT_GE(running[1].load(), 2) << "requests never overlapped: the bound was not tested";
    EXPECT_LE(server.stats().peak_active, kMaxThreads);
    // The sampler, the clients and at most max_threads handler threads (a finished one may
    // linger a moment before it is joined: a small allowance).
    EXPECT_LE(threads.max(), threads_serving + 1 + kClients + kMaxThreads + 4)
        << threads_serving << " threads when idle";
    EXPECT_TRUE(wait_for([&] { return server.stats().handled == kRequests; }, 3000ms));
    serving.stop();
    server.server_close();
  }
  EXPECT_TRUE(wait_for([&] { return thread_count() <= threads_before; }, 2000ms));
}

/// Replies "<pid> <1 if the listener's socket is open in this process, else 0>\n" to each
/// line; on "slow\n" first waits 20 ms (so that children pile up).
StreamService reporting_service(const std::atomic<ino_t>& listener_inode) {
  return StreamService(
      reactor::stream_handler([&listener_inode](BlockingStream& s, const Address&) {
        while (auto line = s.read_line()) {
          if (*line == "slow\n") std::this_thread::sleep_for(20ms);
          const bool holds = socket_inode_open(listener_inode.load());
          s.write(std::to_string(::getpid()) + " " + (holds ? "1" : "0") + "\n");
          s.flush();
        }
      }));
}

/// Checks one reply of reporting_service.
void expect_child_reply(const std::string& reply, std::size_t i) {
  std::istringstream in(reply);
  long pid = 0;
  int holds = -1;
  in >> pid >> holds;
  ASSERT_TRUE(in && pid > 0) << "request " << i << ": \"" << reply << "\"";
  EXPECT_NE(pid, static_cast<long>(::getpid())) << "request " << i << " was not handled in a child";
  EXPECT_EQ(holds, 0) << "request " << i << ": the child " << pid << " holds the listener";
}

TEST_P(ReapingTest, ForkingServerReapsEveryChildKeepsTheBoundAndClosesWhatItMustNotHold) {
  if (!testable(Model::forking)) GTEST_SKIP() << "forking under ASan (see kForkingTestable)";
  HangGuard hang(170s);
  // A fork costs milliseconds on a loaded 2-core machine: the full 1,000 on the default
  // backend; on the others (whose part is only the SIGCHLD wake-up, taken on every request
  // all the same) a quarter, to keep the binary's runtime reasonable.
  const bool full = backend() == reactor::default_backend_name();
  const std::size_t sequential = full ? kSequential : kSequential / 4;
  const std::size_t burst = full ? 200 : 100;
  constexpr std::size_t kMaxChildren = 40;
  constexpr std::size_t kBurstClients = 50;
  const std::size_t threads_before = thread_count();
  {
    FdLeakCheck leaks;
    std::atomic<ino_t> listener_inode{0};
    ServerOptions o = options_for(Model::forking, backend());
    o.max_children = kMaxChildren;
    StreamServer server(Address::ipv4_loopback(0), reporting_service(listener_inode), o);
    listener_inode = inode_of(server.fileno());
    ASSERT_NE(listener_inode.load(), 0u);
    Serving serving(server);

    // The first fork sets up the SIGCHLD watch: count the parent's fds after it.
    expect_child_reply(stream_echo(server.address(), "first\n"), 0);
    ASSERT_TRUE(wait_for([&] { return server.stats().active == 0; }, 3000ms));
    const std::size_t fds_serving = open_fd_count();

    Sampler children([] { return child_pids().size(); }, 2ms);
    Sampler fds([] { return open_fd_count(); }, 2ms);
    for (std::size_t i = 0; i < sequential; ++i) {
      const std::string reply = stream_echo(server.address(), "fast\n");
      expect_child_reply(reply, i);
      if (::testing::Test::HasFailure()) break;
    }
    fds.stop();
    EXPECT_LE(children.max(), kMaxChildren) << "sequential phase";
    // The accepted socket of the request in flight, the client's end, the samplers' opendir.
    EXPECT_LT(fds.max(), fds_serving + 8) << "the parent keeps accepted sockets";

    // A burst: concurrent slow requests pile up to the bound (and must stay under it).
    std::vector<std::string> replies(burst);
    {
      std::atomic<std::size_t> next{0};
      std::vector<std::thread> clients;
      for (std::size_t c = 0; c < kBurstClients; ++c) {
        clients.emplace_back([&] {
          for (std::size_t i; (i = next.fetch_add(1)) < burst;) {
            replies[i] = stream_echo(server.address(), "slow\n");
          }
        });
      }
      for (auto& t : clients) t.join();
    }
    for (std::size_t i = 0; i < burst; ++i) expect_child_reply(replies[i], sequential + i);

    // Reaped by SIGCHLD handling, without server_close.
    EXPECT_TRUE(wait_for([] { return child_pids().empty(); }, 3000ms))
        << child_pids().size() << " children (" << zombie_children()
        << " zombies) long after the last request";
    children.stop();
    EXPECT_LE(children.max(), kMaxChildren) << "live children (zombies included)";
    EXPECT_GE(children.max(), kMaxChildren / 2) << "the burst never piled children up";
    EXPECT_TRUE(wait_for([&] { return server.stats().active == 0; }, 3000ms));
    EXPECT_EQ(open_fd_count(), fds_serving) << "the parent's fd count grew";

    const reactor::ServerStats s = server.stats();
    EXPECT_EQ(s.handled, 1 + sequential + burst);
    EXPECT_EQ(s.errors, 0u);
    EXPECT_LE(s.peak_active, kMaxChildren);

    serving.stop();
    server.server_close();
    EXPECT_EQ(zombie_children(), 0u);
    EXPECT_TRUE(child_pids().empty());
    EXPECT_TRUE(waitpid_finds_no_child());
  }
  EXPECT_TRUE(wait_for([&] { return thread_count() <= threads_before; }, 2000ms));
}

REACTOR_INSTANTIATE_ALL_BACKENDS(ReapingTest);

}  // namespace
