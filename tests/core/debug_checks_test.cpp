// SPDX-License-Identifier: MIT
// The debug checks (reactor/core/debug.hpp), on every backend.
//
// Death tests: each kind of misuse aborts with one line on stderr naming the call.
// - Wrong thread: a loop-thread-only call made on another thread while the loop runs, for
//   the Reactor itself, IoWatcher, Timer, SignalWatcher, Connection, Listener, Connector and
//   DatagramSocket; run() or run_once() entered while another thread runs the loop; the loop
//   destroyed while another thread runs it, or from inside its own callback.
// - Closed handle: set_interest() on a stopped, a moved-from and a default watcher;
//   Connection::start() twice.
// Built without REACTOR_DEBUG_CHECKS the death tests skip: nothing is checked then.
//
// Positive tests (they run either way): the legitimate patterns never trip a check. post()
// and stop() from other threads, the Connection's any-thread calls, handles destroyed inside
// their own callbacks, a loop built on one thread and run on others in turn, handles closed
// on the loop thread and destroyed on another while the loop runs, a child process taking a
// loop over with after_fork(), the pool servers' loops, and re-entering run_once() from a
// callback, which stays a std::logic_error.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdio>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include "reactor/core/debug.hpp"
#include "reactor/core/reactor.hpp"
#include "reactor/net/address.hpp"
#include "reactor/net/connection.hpp"
#include "reactor/net/connector.hpp"
#include "reactor/net/datagram.hpp"
#include "reactor/net/listener.hpp"
#include "reactor/net/socket.hpp"
#include "reactor/server/datagram_server.hpp"
#include "reactor/server/handlers.hpp"
#include "reactor/server/stream_server.hpp"
#include "tests/support/backends.hpp"
#include "tests/support/clients.hpp"
#include "tests/support/fds.hpp"
#include "tests/support/io.hpp"
#include "tests/support/loop.hpp"
#include "tests/support/patterns.hpp"
#include "tests/support/sanitizers.hpp"
#include "tests/support/signals.hpp"
#include "tests/support/sockets.hpp"
#include "tests/support/time.hpp"

namespace {

using namespace std::chrono_literals;
using namespace reactor::test;
using reactor::Address;
using reactor::Buffer;
using reactor::Connection;
using reactor::Connector;
using reactor::DatagramSocket;
using reactor::Interest;
using reactor::IoEvents;
using reactor::IoWatcher;
using reactor::Listener;
using reactor::Reactor;
using reactor::SignalWatcher;
using reactor::Socket;
using reactor::Timer;
using reactor::test::drain_into;
using reactor::test::Fd;
using reactor::test::FdLeakCheck;
using reactor::test::make_stream_pair;
using reactor::test::PeerInput;
using reactor::test::PeerMode;
using reactor::test::set_io_timeouts;
using reactor::test::SocketPair;
using reactor::test::Transport;

// What every failed check starts its line with, and the middle of a wrong-thread line.
constexpr const char* kFailed = "reactor: debug check failed at [^ ]+:[0-9]+: ";
constexpr const char* kWrongThread = ": called on thread [0-9]+ while thread [0-9]+ runs the loop";

/// The regex a wrong-thread failure of `api` ("IoWatcher::stop") matches.
std::string wrong_thread(const std::string& api) {
  return std::string(kFailed) + api + "\\(\\)" + kWrongThread;
}

/// Runs `loop` on this thread and, while it runs, calls `misuse` on another thread, then
/// stops the loop. Bounded: a timer stops the loop after 10 s whatever happens.
void misuse_while_running(Reactor& loop, const std::function<void()>& misuse) {
  std::atomic<bool> running{false};
  loop.post([&] { running.store(true); });
  Timer bound = loop.after(10s, [&] { loop.stop(); });
  std::thread other([&] {
    if (wait_for([&] { return running.load(); }, 10s)) misuse();
    loop.stop();
  });
  loop.run();
  other.join();
}

// ---------------------------------------------------------------------------------------
// Death tests

class DebugChecksDeathTest : public reactor::test::BackendTest {
 protected:
  void SetUp() override {
    if (!reactor::kDebugChecks) {
      GTEST_SKIP() << "built without REACTOR_DEBUG_CHECKS: misuse is not checked, so nothing "
                      "aborts (the release behaviour is covered by the other suites)";
    }
    // The loop and the misusing thread are made inside the statement, in a fresh process.
    GTEST_FLAG_SET(death_test_style, "threadsafe");
  }
};

TEST_P(DebugChecksDeathTest, ReactorCallsFromAnotherThreadWhileItRuns) {
  EXPECT_DEATH(
      {
        Reactor loop(backend());
        SocketPair p;
        misuse_while_running(
            loop, [&] { IoWatcher w = loop.watch(p.a.get(), Interest::read, [](IoEvents) {}); });
      },
      wrong_thread("Reactor::watch"));
  EXPECT_DEATH(
      {
        Reactor loop(backend());
        misuse_while_running(loop, [&] { Timer t = loop.after(1h, [] {}); });
      },
      wrong_thread("Reactor::after"));
  EXPECT_DEATH(
      {
        Reactor loop(backend());
        misuse_while_running(loop, [&] { Timer t = loop.every(1h, [] {}); });
      },
      wrong_thread("Reactor::every"));
  EXPECT_DEATH(
      {
        Reactor loop(backend());
        misuse_while_running(loop, [&] { SignalWatcher s = loop.on_signal(SIGUSR2, [](int) {}); });
      },
      wrong_thread("Reactor::on_signal"));
  EXPECT_DEATH(
      {
        Reactor loop(backend());
        misuse_while_running(loop, [&] { (void)loop.iterations(); });
      },
      wrong_thread("Reactor::iterations"));
  EXPECT_DEATH(
      {
        Reactor loop(backend());
        misuse_while_running(loop, [&] { (void)loop.now(); });
      },
      wrong_thread("Reactor::now"));
  EXPECT_DEATH(
      {
        Reactor loop(backend());
        misuse_while_running(loop, [&] { (void)loop.watcher_count(); });
      },
      wrong_thread("Reactor::watcher_count"));
  EXPECT_DEATH(
      {
        Reactor loop(backend());
        misuse_while_running(loop, [&] { (void)loop.timer_count(); });
      },
      wrong_thread("Reactor::timer_count"));
}

TEST_P(DebugChecksDeathTest, RunEnteredWhileAnotherThreadRunsTheLoop) {
  EXPECT_DEATH(
      {
        Reactor loop(backend());
        misuse_while_running(loop, [&] { loop.run_once(0ms); });
      },
      wrong_thread("Reactor::run_once"));
  EXPECT_DEATH(
      {
        Reactor loop(backend());
        misuse_while_running(loop, [&] { loop.run(); });
      },
      wrong_thread("Reactor::run"));
}

TEST_P(DebugChecksDeathTest, LoopDestroyedWhileAnotherThreadRunsIt) {
  EXPECT_DEATH(
      {
        auto loop = std::make_unique<Reactor>(backend());
        Reactor& l = *loop;
        misuse_while_running(l, [&] { loop.reset(); });
      },
      wrong_thread("Reactor::~Reactor"));
}

TEST_P(DebugChecksDeathTest, LoopDestroyedInsideItsOwnCallback) {
  EXPECT_DEATH(
      {
        auto loop = std::make_unique<Reactor>(backend());
        Reactor& l = *loop;
        l.post([&] { loop.reset(); });
        l.run_once(1s);
      },
      std::string(kFailed) +
          "Reactor::~Reactor\\(\\): the loop is destroyed from inside one of its own callbacks");
}

TEST_P(DebugChecksDeathTest, HandleCallsFromAnotherThreadWhileTheLoopRuns) {
  EXPECT_DEATH(
      {
        Reactor loop(backend());
        SocketPair p;
        IoWatcher w = loop.watch(p.a.get(), Interest::read, [](IoEvents) {});
        misuse_while_running(loop, [&] { (void)w.set_interest(Interest::write); });
      },
      wrong_thread("IoWatcher::set_interest"));
  EXPECT_DEATH(
      {
        Reactor loop(backend());
        SocketPair p;
        IoWatcher w = loop.watch(p.a.get(), Interest::read, [](IoEvents) {});
        misuse_while_running(loop, [&] { (void)w.active(); });
      },
      wrong_thread("IoWatcher::active"));
  EXPECT_DEATH(
      {
        Reactor loop(backend());
        SocketPair p;
        IoWatcher w = loop.watch(p.a.get(), Interest::read, [](IoEvents) {});
        misuse_while_running(loop, [&] { (void)w.interest(); });
      },
      wrong_thread("IoWatcher::interest"));
  EXPECT_DEATH(
      {
        Reactor loop(backend());
        SocketPair p;
        std::optional<IoWatcher> w = loop.watch(p.a.get(), Interest::read, [](IoEvents) {});
        misuse_while_running(loop, [&] { w.reset(); });  // destroying an active watcher
      },
      wrong_thread("IoWatcher::stop"));
  EXPECT_DEATH(
      {
        Reactor loop(backend());
        Timer t = loop.after(1h, [] {});
        misuse_while_running(loop, [&] { t.cancel(); });
      },
      wrong_thread("Timer::cancel"));
  EXPECT_DEATH(
      {
        Reactor loop(backend());
        Timer t = loop.every(1h, [] {});
        misuse_while_running(loop, [&] { (void)t.active(); });
      },
      wrong_thread("Timer::active"));
  EXPECT_DEATH(
      {
        Reactor loop(backend());
        SignalWatcher s = loop.on_signal(SIGUSR2, [](int) {});
        misuse_while_running(loop, [&] { s.stop(); });
      },
      wrong_thread("SignalWatcher::stop"));
  EXPECT_DEATH(
      {
        Reactor loop(backend());
        SignalWatcher s = loop.on_signal(SIGUSR2, [](int) {});
        misuse_while_running(loop, [&] { (void)s.active(); });
      },
      wrong_thread("SignalWatcher::active"));
}

TEST_P(DebugChecksDeathTest, ConnectionCallsFromAnotherThreadWhileTheLoopRuns) {
  // One statement per call: each builds its own loop and connection in the child.
  const std::vector<std::pair<std::string, std::function<void(Connection&)>>> calls = {
      {"Connection::start", [](Connection& c) { c.start(); }},
      {"Connection::send", [](Connection& c) { (void)c.send("x"); }},
      {"Connection::shutdown", [](Connection& c) { (void)c.shutdown(); }},
      {"Connection::close", [](Connection& c) { c.close(); }},
      {"Connection::abort", [](Connection& c) { c.abort(); }},
      {"Connection::pause_reading", [](Connection& c) { c.pause_reading(); }},
      {"Connection::resume_reading", [](Connection& c) { c.resume_reading(); }},
      {"Connection::set_idle_timeout", [](Connection& c) { c.set_idle_timeout(1s); }},
      {"Connection::set_deadline", [](Connection& c) { c.set_deadline(1s); }},
      {"Connection::on_data", [](Connection& c) { c.on_data(nullptr); }},
      {"Connection::on_close", [](Connection& c) { c.on_close(nullptr); }},
      {"Connection::open", [](Connection& c) { (void)c.open(); }},
      {"Connection::queued", [](Connection& c) { (void)c.queued(); }},
      {"Connection::input", [](Connection& c) { (void)c.input(); }},
      {"Connection::fd", [](Connection& c) { (void)c.fd(); }},
  };
  for (const auto& [api, call] : calls) {
    SCOPED_TRACE(api);
    EXPECT_DEATH(
        {
          Reactor loop(backend());
          auto pair = make_stream_pair(Transport::unix_stream, PeerMode::nonblocking);
          auto c = Connection::make(loop, std::move(pair.ours));
          if (api != "Connection::start") c->start();
          misuse_while_running(loop, [&] { call(*c); });
        },
        wrong_thread(api));
  }
}

TEST_P(DebugChecksDeathTest, ListenerCallsFromAnotherThreadWhileTheLoopRuns) {
  const auto none = [](Socket, const Address&) {};
  EXPECT_DEATH(
      {
        Reactor loop(backend());
        Listener l(loop, Address::ipv4_loopback(0), none);
        misuse_while_running(loop, [&] { l.pause(); });
      },
      wrong_thread("Listener::pause"));
  EXPECT_DEATH(
      {
        Reactor loop(backend());
        Listener l(loop, Address::ipv4_loopback(0), none);
        misuse_while_running(loop, [&] { (void)l.accepting(); });
      },
      wrong_thread("Listener::accepting"));
  EXPECT_DEATH(
      {
        Reactor loop(backend());
        misuse_while_running(loop, [&] { Listener l(loop, Address::ipv4_loopback(0), none); });
      },
      wrong_thread("Reactor::watch"));
  EXPECT_DEATH(
      {
        Reactor loop(backend());
        std::optional<Listener> l;
        l.emplace(loop, Address::ipv4_loopback(0), none);
        misuse_while_running(loop, [&] { l.reset(); });
      },
      wrong_thread("IoWatcher::stop"));
}

TEST_P(DebugChecksDeathTest, ConnectorAndDatagramCallsFromAnotherThreadWhileTheLoopRuns) {
  EXPECT_DEATH(
      {
        Reactor loop(backend());
        Listener l(loop, Address::ipv4_loopback(0), [](Socket, const Address&) {});
        misuse_while_running(loop, [&] {
          Connector::connect(
              loop, l.address(), [](std::error_code, Socket) {}, 1s);
        });
      },
      wrong_thread("Connector::connect"));
  EXPECT_DEATH(
      {
        Reactor loop(backend());
        Listener l(loop, Address::ipv4_loopback(0), [](Socket, const Address&) {});
        auto c = Connector::connect(
            loop, l.address(), [](std::error_code, Socket) {}, 1s);
        misuse_while_running(loop, [&] { c->cancel(); });
      },
      wrong_thread("Connector::cancel"));
  EXPECT_DEATH(
      {
        Reactor loop(backend());
        DatagramSocket s(loop, Address::ipv4_loopback(0));
        misuse_while_running(loop, [&] { (void)s.send_to(s.local_address(), "x"); });
      },
      wrong_thread("DatagramSocket::send_to"));
  EXPECT_DEATH(
      {
        Reactor loop(backend());
        DatagramSocket s(loop, Address::ipv4_loopback(0));
        misuse_while_running(loop, [&] { (void)s.start(); });
      },
      wrong_thread("DatagramSocket::start"));
  EXPECT_DEATH(
      {
        Reactor loop(backend());
        DatagramSocket s(loop, Address::ipv4_loopback(0));
        ASSERT_FALSE(s.start());
        misuse_while_running(loop, [&] { s.stop(); });
      },
      wrong_thread("DatagramSocket::stop"));
}

TEST_P(DebugChecksDeathTest, SetInterestOnAStoppedWatcher) {
  EXPECT_DEATH(
      {
        Reactor loop(backend());
        SocketPair p;
        IoWatcher w = loop.watch(p.a.get(), Interest::read, [](IoEvents) {});
        w.stop();
        (void)w.set_interest(Interest::write);
      },
      std::string(kFailed) + "IoWatcher::set_interest\\(\\): the watcher was stopped");
  // Stopped from inside its own callback, used after the callback.
  EXPECT_DEATH(
      {
        Reactor loop(backend());
        SocketPair p;
        ASSERT_EQ(::write(p.b.get(), "x", 1), 1);
        IoWatcher w;
        w = loop.watch(p.a.get(), Interest::read, [&](IoEvents) { w.stop(); });
        loop.run_once(1s);
        (void)w.set_interest(Interest::read);
      },
      std::string(kFailed) + "IoWatcher::set_interest\\(\\): the watcher was stopped");
}

TEST_P(DebugChecksDeathTest, SetInterestOnAnEmptyWatcher) {
  EXPECT_DEATH(
      {
        Reactor loop(backend());
        SocketPair p;
        IoWatcher w = loop.watch(p.a.get(), Interest::read, [](IoEvents) {});
        IoWatcher other = std::move(w);
        (void)w.set_interest(Interest::write);  // NOLINT(bugprone-use-after-move)
      },
      std::string(kFailed) +
          "IoWatcher::set_interest\\(\\): the watcher is empty \\(default-constructed or moved");
  EXPECT_DEATH(
      {
        IoWatcher w;
        (void)w.set_interest(Interest::read);
      },
      std::string(kFailed) + "IoWatcher::set_interest\\(\\): the watcher is empty");
}

TEST_P(DebugChecksDeathTest, ConnectionStartedTwice) {
  EXPECT_DEATH(
      {
        Reactor loop(backend());
        auto pair = make_stream_pair(Transport::unix_stream, PeerMode::nonblocking);
        auto c = Connection::make(loop, std::move(pair.ours));
        c->start();
        loop.run_once(0ms);
        c->start();
      },
      std::string(kFailed) + "Connection::start\\(\\): called a second time");
}

REACTOR_INSTANTIATE_ALL_BACKENDS(DebugChecksDeathTest);

// ---------------------------------------------------------------------------------------
// Legitimate patterns: none of these may trip a check.

class DebugChecksTest : public reactor::test::BackendTest {};

TEST_P(DebugChecksTest, PostAndStopFromOtherThreads) {
  FdLeakCheck leaks;
  Reactor loop(backend());
  constexpr int kThreads = 3;
  constexpr int kPerThread = 2000;
  int ran = 0;  // loop thread only
  std::atomic<int> ran_seen{0};
  std::atomic<bool> running{false};
  loop.post([&] { running.store(true); });
  bool rescued = false;
  Timer bound = loop.after(20s, [&] {
    rescued = true;
    loop.stop();
  });
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      if (!wait_for([&] { return running.load(); }, 10s)) return;
      EXPECT_FALSE(loop.backend_name().empty());  // any thread
      for (int i = 0; i < kPerThread; ++i) loop.post([&] { ran_seen.store(++ran); });
    });
  }
  std::thread stopper([&] {
    const auto deadline = std::chrono::steady_clock::now() + 15s;
    while (ran_seen.load() < kThreads * kPerThread && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(1ms);
    }
    loop.stop();
  });
  loop.run();
  for (auto& t : threads) t.join();
  stopper.join();
  EXPECT_FALSE(rescued) << "stop() from another thread did not end run()";
  EXPECT_EQ(ran, kThreads * kPerThread);
}

TEST_P(DebugChecksTest, ConnectionAnyThreadCalls) {
  FdLeakCheck leaks;
  Reactor loop(backend());
  auto pair = make_stream_pair(Transport::unix_stream, PeerMode::blocking);
  auto c = Connection::make(loop, std::move(pair.ours));
  bool closed = false;
  c->on_close([&](Connection&, reactor::CloseReason, std::error_code) {
    closed = true;
    loop.stop();
  });
  c->start();
  Timer bound = loop.after(20s, [&] { loop.stop(); });
  std::atomic<bool> running{false};
  loop.post([&] { running.store(true); });
  std::thread other([&] {
    if (!wait_for([&] { return running.load(); }, 10s)) return;
    EXPECT_EQ(&c->loop(), &loop);
    EXPECT_FALSE(c->peer_address().to_string().empty());
    (void)c->local_address();
    c->send_from_any_thread("hello\n");
    c->close_from_any_thread();
  });
  loop.run();
  other.join();
  EXPECT_TRUE(closed);
  PeerInput in;
  drain_into(pair.peer.get(), in);
  EXPECT_EQ(in.bytes, "hello\n");
  EXPECT_TRUE(in.eof) << "close_from_any_thread() did not close";
}

TEST_P(DebugChecksTest, HandlesDestroyedInsideTheirOwnCallbacks) {
  FdLeakCheck leaks;
  Reactor loop(backend());
  SocketPair p;
  ASSERT_EQ(::write(p.b.get(), "x", 1), 1);  // never read: readable every iteration
  int io_calls = 0, timer_calls = 0, signal_calls = 0;
  std::optional<IoWatcher> w;
  w = loop.watch(p.a.get(), Interest::read, [&](IoEvents) {
    ++io_calls;
    w.reset();
  });
  std::optional<Timer> t;
  t = loop.every(1ms, [&] {
    ++timer_calls;
    t.reset();
  });
  reactor::test::ScopedDisposition usr2(SIGUSR2);
  reactor::test::ScopedUnblock unblock(SIGUSR2);
  std::optional<SignalWatcher> s;
  s = loop.on_signal(SIGUSR2, [&](int) {
    ++signal_calls;
    s->stop();
    s.reset();
  });
  ASSERT_EQ(::raise(SIGUSR2), 0);
  for (int i = 0; i < 100 && (io_calls == 0 || timer_calls == 0 || signal_calls == 0); ++i) {
    loop.run_once(10ms);
  }
  for (int i = 0; i < 5; ++i) loop.run_once(2ms);
  EXPECT_EQ(io_calls, 1);
  EXPECT_EQ(timer_calls, 1);
  EXPECT_EQ(signal_calls, 1);
  EXPECT_EQ(loop.watcher_count(), 0u);
  EXPECT_EQ(loop.timer_count(), 0u);
}

TEST_P(DebugChecksTest, LoopBuiltOnOneThreadRunOnOthersInTurn) {
  FdLeakCheck leaks;
  SocketPair p;
  ASSERT_EQ(::write(p.b.get(), "x", 1), 1);
  // Built here.
  Reactor loop(backend());
  int io_calls = 0;
  IoWatcher w = loop.watch(p.a.get(), Interest::read, [&](IoEvents) { ++io_calls; });
  int fires = 0;
  Timer stopper = loop.every(5ms, [&] {
    if (++fires % 3 == 0) loop.stop();
  });
  // Run on a second thread: the handles are used from the callbacks there.
  std::thread second([&] {
    Timer inside = loop.after(1ms, [&] { EXPECT_FALSE(w.set_interest(Interest::read)); });
    loop.run();
    EXPECT_TRUE(w.active());
  });
  second.join();  // hands the loop back
  // Used here again, and run here.
  EXPECT_TRUE(w.active());
  EXPECT_FALSE(w.set_interest(Interest::none));
  EXPECT_GE(loop.iterations(), 1u);
  loop.run();
  // The 5 ms timer has done its job (6 fires, two stops); cancelled here so that the third
  // thread's 5 ms of run_once cannot make it fire a seventh time on a slow machine.
  stopper.cancel();
  // And by a third thread, one iteration at a time.
  std::thread third([&] {
    EXPECT_FALSE(w.set_interest(Interest::read));
    for (int i = 0; i < 5; ++i) loop.run_once(1ms);
  });
  third.join();
  EXPECT_EQ(fires, 6);
  EXPECT_GE(io_calls, 2);
  w.stop();
  stopper.cancel();
  EXPECT_EQ(loop.watcher_count(), 0u);
}

TEST_P(DebugChecksTest, HandlesClosedOnTheLoopThreadThenDestroyedOnAnother) {
  FdLeakCheck leaks;
  Reactor loop(backend());
  SocketPair p;
  auto pair = make_stream_pair(Transport::unix_stream, PeerMode::nonblocking);
  reactor::test::ScopedDisposition usr2(SIGUSR2);
  std::optional<IoWatcher> w;
  std::optional<Timer> t;
  std::optional<SignalWatcher> s;
  std::shared_ptr<Connection> c;
  std::atomic<bool> closed{false};
  std::atomic<bool> connection_gone{false};
  std::thread runner([&] { loop.run(); });
  loop.post([&] {
    w = loop.watch(p.a.get(), Interest::read, [](IoEvents) {});
    t = loop.after(1h, [] {});
    s = loop.on_signal(SIGUSR2, [](int) {});
    // No lingering after close(): the loop would keep watching the fd until the peer,
    // which this test never closes, hangs up.
    Connection::Options no_linger;
    no_linger.linger_timeout = std::chrono::nanoseconds{0};
    c = Connection::make(loop, std::move(pair.ours), no_linger);
    c->on_close(
        [&](Connection&, reactor::CloseReason, std::error_code) { connection_gone.store(true); });
    c->set_idle_timeout(1h);
    c->start();
    w->stop();
    t->cancel();
    s->stop();
    c->close();
    closed.store(true);
  });
  ASSERT_TRUE(wait_for([&] { return closed.load(); }, 10s));
  ASSERT_TRUE(wait_for([&] { return connection_gone.load(); },
                       10s));  // on_close ran: the loop let go of it
  // Destroyed here while the loop runs on `runner`: they touch no loop state any more.
  w.reset();
  t.reset();
  s.reset();
  c.reset();
  IoWatcher empty;
  empty.stop();
  { IoWatcher moved_from = std::move(empty); }
  loop.stop();
  runner.join();
  EXPECT_EQ(loop.watcher_count(), 0u);
  EXPECT_EQ(loop.timer_count(), 0u);
}

TEST_P(DebugChecksTest, RunOnceInsideACallbackStillThrowsLogicError) {
  FdLeakCheck leaks;
  Reactor loop(backend());
  bool threw = false;
  loop.post([&] {
    try {
      loop.run_once(0ms);
    } catch (const std::logic_error&) {
      threw = true;
    }
  });
  loop.run_once(1s);
  EXPECT_TRUE(threw);
  loop.run_once(0ms);  // the loop is still usable, and still owned by nobody after it
  std::thread other([&] { loop.run_once(0ms); });
  other.join();
}

TEST_P(DebugChecksTest, ChildTakesOverALoopAnotherThreadWasRunning) {
  if (reactor::test::kSanitized) {
    GTEST_SKIP() << "forks while another thread runs a loop; sanitizer runtimes are not "
                    "fork-safe with threads";
  }
  Reactor loop(backend());
  std::atomic<bool> running{false};
  loop.post([&] { running.store(true); });
  Timer bound = loop.after(20s, [&] { loop.stop(); });
  std::thread runner([&] { loop.run(); });
  ASSERT_TRUE(wait_for([&] { return running.load(); }, 10s));
  std::fflush(stdout);
  std::fflush(stderr);
  const pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    // The runner thread does not exist here; its loop is ours after after_fork().
    if (loop.after_fork()) ::_exit(2);
    bool fired = false;
    Timer t = loop.after(1ms, [&] { fired = true; });
    for (int i = 0; i < 100 && !fired; ++i) loop.run_once(10ms);
    ::_exit(fired ? 0 : 1);
  }
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  loop.stop();
  runner.join();
  ASSERT_TRUE(WIFEXITED(status)) << "the child died (signal " << WTERMSIG(status) << ")";
  EXPECT_EQ(WEXITSTATUS(status), 0);
}

// --- the pool servers: N loops on N threads -------------------------------------------

class Echo : public reactor::EventHandler {
 public:
  Echo(std::mutex& mutex, std::set<std::thread::id>& threads) : mutex_(mutex), threads_(threads) {}
  void on_connect(Connection&) override {
    std::lock_guard lock(mutex_);
    threads_.insert(std::this_thread::get_id());
  }
  void on_data(Connection& c, Buffer& in) override {
    (void)c.send(in.view());
    (void)in.consume(in.size());
  }

 private:
  std::mutex& mutex_;
  std::set<std::thread::id>& threads_;
};

TEST_P(DebugChecksTest, PoolStreamServerLoops) {
  // Hand-off (a connection limit: loop 0 accepts and posts to the others) and SO_REUSEPORT
  // (every loop accepts), each shut down from this thread and closed here.
  for (const bool hand_off : {true, false}) {
    SCOPED_TRACE(hand_off ? "hand-off" : "reuse_port");
    std::mutex mutex;
    std::set<std::thread::id> threads;
    reactor::ServerOptions o;
    o.model = reactor::Model::pool;
    o.backend = backend();
    o.threads = 3;
    if (hand_off) o.max_connections = 100;
    reactor::StreamServer server(
        Address::ipv4_loopback(0),
        reactor::EventHandlerFactory([&]() -> std::unique_ptr<reactor::EventHandler> {
          return std::make_unique<Echo>(mutex, threads);
        }),
        o);
    std::thread serving([&] { server.serve_forever(); });
    for (int i = 0; i < 12; ++i) {
      const std::string line = "line " + std::to_string(i) + "\n";
      EXPECT_EQ(reactor::test::stream_echo(server.address(), line), line);
    }
    server.shutdown();
    serving.join();
    server.server_close();
    std::lock_guard lock(mutex);
    if (hand_off) {
      EXPECT_EQ(threads.size(), 3u) << "round robin over 3 loops";
    }
    EXPECT_GE(threads.size(), 1u);
  }
}

TEST_P(DebugChecksTest, PoolDatagramServerLoops) {
  reactor::ServerOptions o;
  o.model = reactor::Model::pool;
  o.backend = backend();
  o.threads = 3;
  reactor::DatagramServer server(
      Address::ipv4_loopback(0), [](reactor::DatagramRequest& r) { r.reply(r.data()); }, o);
  std::thread serving([&] { server.serve_forever(); });
  for (int i = 0; i < 12; ++i) {
    Fd fd(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    ASSERT_GE(fd.get(), 0);
    set_io_timeouts(fd.get(), 10s);
    const std::string text = "datagram " + std::to_string(i);
    ASSERT_EQ(::sendto(fd.get(), text.data(), text.size(), 0, server.address().native(),
                       server.address().native_size()),
              static_cast<ssize_t>(text.size()));
    char buf[64];
    const ssize_t n = ::recv(fd.get(), buf, sizeof buf, 0);
    EXPECT_EQ(std::string(buf, n > 0 ? static_cast<std::size_t>(n) : 0), text);
  }
  server.shutdown();
  serving.join();
  server.server_close();
}

REACTOR_INSTANTIATE_ALL_BACKENDS(DebugChecksTest);

}  // namespace
