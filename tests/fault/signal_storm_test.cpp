// SPDX-License-Identifier: MIT
// A storm of signals, on every backend: another thread sends SIGUSR1 and SIGUSR2 to the
// process, a pair every 25 us, for about a second, while on one loop 20 connection pairs (TCP
// v4 and Unix stream, alternately) echo 1,000 lines each in ping-pong and a 5 ms repeating
// timer runs. The sending thread blocks both signals, so they interrupt the loop's thread:
// its waits, reads and writes.
// - Every echo is exact, and no connection closes or fails (an EINTR surfacing anywhere
//   would show as a send error, a close with an error, or an exception from run_once);
// - the timer keeps firing while the signals arrive;
// - the loop's signal watchers see both signals while the storm lasts; the dispositions
//   installed before (counting handlers, so that a library that lost its own cannot kill
//   the process) are never called while the watchers live, and come back after.
// tests/core/signal_test.cpp checks single interrupted waits; tests/server/blocking_stream_test.cpp
// checks blocking streams under signals. This is the event loop under a continuous storm.
#include <gtest/gtest.h>
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <memory>
#include <optional>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include "reactor/core/reactor.hpp"
#include "reactor/core/signal_watcher.hpp"
#include "reactor/core/timer.hpp"
#include "reactor/net/connection.hpp"
#include "reactor/net/socket.hpp"
#include "tests/support/backends.hpp"
#include "tests/support/fds.hpp"
#include "tests/support/loop.hpp"
#include "tests/support/patterns.hpp"
#include "tests/support/processes.hpp"
#include "tests/support/sanitizers.hpp"
#include "tests/support/signals.hpp"
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
using reactor::Timer;
using Clock = reactor::test::SteadyClock;

constexpr int kPairs = 20;
constexpr int kLines = 1000;
constexpr auto kStorm = 1s;
constexpr auto kTick = 5ms;

class SignalStormTest : public reactor::test::BackendTest {};

std::string line_for(int pair, int k) {
  // Lengths vary, so that lines are cut at different places.
  return "p" + std::to_string(pair) + "-l" + std::to_string(k) + "-" +
         std::string(static_cast<std::size_t>((pair * 31 + k * 17) % 200), 'a' + k % 26) + "\n";
}

// One pair: the server end echoes, the client end sends line k+1 once line k came back.
struct EchoPair {
  int index = 0;
  std::shared_ptr<Connection> server;
  std::shared_ptr<Connection> client;
  std::string pending;
  int echoed = 0;
  int mismatches = 0;
  int closes = 0;
  std::error_code close_error;
  CloseReason close_reason = CloseReason::local;
  int send_errors = 0;
  std::error_code send_error;

  void send_next() {
    if (const std::error_code ec = client->send(line_for(index, echoed))) {
      ++send_errors;
      send_error = ec;
    }
  }
};

void make_pair_on(Reactor& loop, EchoPair& p) {
  StreamPair sp = make_stream_pair(p.index % 2 == 0 ? Transport::tcp4 : Transport::unix_stream,
                                   PeerMode::nonblocking);
  p.server = Connection::make(loop, std::move(sp.ours));
  p.client = Connection::make(loop, Socket(sp.peer.release()));
  auto on_close = [&p](Connection&, CloseReason r, std::error_code ec) {
    ++p.closes;
    p.close_reason = r;
    p.close_error = ec;
  };
  p.server->on_data([&p](Connection& c, Buffer& in) {
    if (const std::error_code ec = c.send(in.view())) {
      ++p.send_errors;
      p.send_error = ec;
    }
    in.consume(in.size());
  });
  p.server->on_close(on_close);
  p.client->on_data([&p](Connection&, Buffer& in) {
    p.pending.append(in.view());
    in.consume(in.size());
    for (std::size_t nl; (nl = p.pending.find('\n')) != std::string::npos;) {
      if (p.pending.compare(0, nl + 1, line_for(p.index, p.echoed)) != 0) ++p.mismatches;
      p.pending.erase(0, nl + 1);
      ++p.echoed;
      if (p.echoed < kLines) p.send_next();
    }
  });
  p.client->on_close(on_close);
  p.server->start();
  p.client->start();
}

// Sends SIGUSR1 and SIGUSR2 to the process as fast as it can, with both blocked in itself,
// until told to stop or kStorm has passed.
class Storm {
 public:
  Storm() : thread_([this] { run(); }) {}
  Storm(const Storm&) = delete;
  Storm& operator=(const Storm&) = delete;
  ~Storm() { join(); }
  void join() {
    stop_.store(true);
    if (thread_.joinable()) thread_.join();
  }
  bool running() const { return running_.load(); }
  bool started() const { return started_.load(); }
  long sent() const { return sent_.load(); }
  /// When the last signal was sent (valid after join()).
  Clock::time_point ended_at() const { return ended_at_; }

 private:
  void run() {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGUSR1);
    sigaddset(&set, SIGUSR2);
    ::pthread_sigmask(SIG_BLOCK, &set, nullptr);
    running_.store(true);
    started_.store(true);
    // Paced at one pair per 25 us (up to 80,000 signals a second). Unpaced, a sender on
    // the other CPU keeps the loop's thread inside signal delivery nearly all the time (CI
    // measured 278,680 signals in 1 s and the timer silent for 734 ms): a flood that the
    // kernel's per-signal cost decides, whatever the handler does. Continuous signals are
    // what is tested here, not that flood.
    const auto start = Clock::now();
    auto next = start;
    while (!stop_.load() && Clock::now() - start < kStorm) {
      ::kill(::getpid(), SIGUSR1);
      ::kill(::getpid(), SIGUSR2);
      sent_.fetch_add(2);
      next += std::chrono::microseconds(25);
      while (Clock::now() < next) {
      }
    }
    ended_at_ = Clock::now();
    running_.store(false);
  }

  std::atomic<bool> stop_{false};
  std::atomic<bool> running_{false};
  std::atomic<bool> started_{false};
  std::atomic<long> sent_{0};
  Clock::time_point ended_at_{};
  std::thread thread_;
};

TEST_P(SignalStormTest, EchoTimersAndSignalWatchersKeepWorkingUnderASignalStorm) {
  reactor::test::warm_up(backend());
  reactor::test::ScopedDisposition usr1(SIGUSR1);
  reactor::test::ScopedDisposition usr2(SIGUSR2);
  usr1.install_counting();
  usr2.install_counting();
  reactor::test::ScopedUnblock unblock1(SIGUSR1);
  reactor::test::ScopedUnblock unblock2(SIGUSR2);
  reactor::test::FdLeakCheck leaks;

  long sent = 0;
  {
    Reactor loop(backend());
    std::vector<EchoPair> pairs(kPairs);
    for (int i = 0; i < kPairs; ++i) {
      pairs[i].index = i;
      make_pair_on(loop, pairs[i]);
    }
    long usr1_seen = 0, usr2_seen = 0, usr1_in_storm = 0, usr2_in_storm = 0;
    std::unique_ptr<Storm> storm;
    auto in_storm = [&] { return storm && storm->running(); };
    reactor::SignalWatcher w1 = loop.on_signal(SIGUSR1, [&](int) {
      ++usr1_seen;
      usr1_in_storm += in_storm() ? 1 : 0;
    });
    reactor::SignalWatcher w2 = loop.on_signal(SIGUSR2, [&](int) {
      ++usr2_seen;
      usr2_in_storm += in_storm() ? 1 : 0;
    });
    long ticks = 0;
    std::vector<Clock::time_point> storm_ticks;  // when the timer fired during the storm
    storm_ticks.reserve(100000);
    Timer tick = loop.every(kTick, [&] {
      ++ticks;
      if (in_storm() && storm_ticks.size() < storm_ticks.capacity()) {
        storm_ticks.push_back(Clock::now());
      }
    });

    std::string failure;
    const auto t0 = Clock::now();
    storm = std::make_unique<Storm>();
    while (!storm->started()) std::this_thread::yield();
    for (EchoPair& p : pairs) p.send_next();
    // Every line echoed, or a pair closed (a failure: stop early).
    auto echo_over = [&] {
      bool all = true;
      for (const EchoPair& p : pairs) {
        if (p.closes > 0) return true;
        all = all && p.echoed >= kLines;
      }
      return all;
    };
    std::optional<Clock::time_point> echo_done_at;
    Clock::time_point storm_over_at{};
    try {
      // The echo, then the rest of the storm with the timer running.
      while (Clock::now() - t0 < 30s) {
        if (!echo_done_at && echo_over()) echo_done_at = Clock::now();
        if (echo_done_at && !storm->running()) break;
        loop.run_once(10ms);
      }
    } catch (const std::system_error& e) {
      failure = e.what();
    }
    storm->join();
    storm_over_at = storm->ended_at();
    sent = storm->sent();
    const double ms = reactor::test::ms_between(t0, Clock::now());
    EXPECT_EQ(failure, "") << "run_once threw under signals";

    int echoed = 0, mismatches = 0, closes = 0, send_errors = 0;
    for (const EchoPair& p : pairs) {
      echoed += p.echoed;
      mismatches += p.mismatches;
      closes += p.closes;
      send_errors += p.send_errors;
      EXPECT_EQ(p.echoed, kLines) << "pair " << p.index;
      if (p.closes > 0) {
        ADD_FAILURE() << "pair " << p.index << " closed: " << to_string(p.close_reason) << " "
                      << p.close_error.message();
      }
      if (p.send_errors > 0) {
        ADD_FAILURE() << "pair " << p.index << ": send failed: " << p.send_error.message();
      }
    }
    // The longest the timer went without firing during the storm (from the storm's start
    // to its end, both ends counted).
    Clock::duration longest_gap{};
    Clock::time_point previous = t0;
    for (const Clock::time_point& at : storm_ticks) {
      longest_gap = std::max(longest_gap, at - previous);
      previous = at;
    }
    if (!storm_ticks.empty()) longest_gap = std::max(longest_gap, storm_over_at - previous);
    const double gap_ms = std::chrono::duration<double, std::milli>(longest_gap).count();
    std::printf(
        "[ info     ] %s: %ld signals sent in %.0f ms (test %.0f ms); loop saw %ld SIGUSR1, %ld "
        "SIGUSR2 "
        "(%ld, %ld during the storm); %d lines echoed in %.0f ms; %ld ticks (%zu during "
        "the storm, longest gap %.1f ms)\n",
        backend().c_str(), sent, reactor::test::ms_between(t0, storm_over_at), ms, usr1_seen,
        usr2_seen, usr1_in_storm, usr2_in_storm, echoed,
        echo_done_at ? reactor::test::ms_between(t0, *echo_done_at) : -1.0, ticks,
        storm_ticks.size(), gap_ms);
    EXPECT_EQ(echoed, kPairs * kLines);
    EXPECT_EQ(mismatches, 0);
    EXPECT_EQ(closes, 0);
    EXPECT_EQ(send_errors, 0);
    EXPECT_GT(usr1_in_storm, 0) << "the signal watcher saw no SIGUSR1 during the storm";
    EXPECT_GT(usr2_in_storm, 0) << "the signal watcher saw no SIGUSR2 during the storm";
    // A 5 ms timer over a ~1 s storm. The signals cost the loop's thread most of its time
    // (each is a handler run), so the ticks come less often than every 5 ms; "keeps firing"
    // means no long silence.
    EXPECT_GE(storm_ticks.size(), 10u) << "the timer stalled under the storm";
    EXPECT_LT(longest_gap, 250ms * reactor::test::kLatencySlack)
        << "the timer went " << gap_ms << " ms without firing during the storm";
    EXPECT_EQ(reactor::test::g_signal_counts[SIGUSR1].load(), 0)
        << "the previous disposition ran while the loop watched SIGUSR1";
    EXPECT_EQ(reactor::test::g_signal_counts[SIGUSR2].load(), 0);

    for (EchoPair& p : pairs) {
      p.client->close();
      p.server->close();
    }
    run_until(loop, [&] {
      for (const EchoPair& p : pairs) {
        if (p.closes < 2) return false;
      }
      return true;
    });
  }
  EXPECT_GT(sent, 100) << "the storm was no storm";
  // The loop is gone: the counting handlers are back, in place and delivering.
  for (int signo : {SIGUSR1, SIGUSR2}) {
    EXPECT_EQ(reactor::test::handler_of(reactor::test::query_disposition(signo)),
              reinterpret_cast<void*>(&reactor::test::counting_handler))
        << "signal " << signo << ": the disposition from before the loop was not restored";
  }
  // TSan's runtime queues a signal and runs it at a point of its choosing; after this storm
  // it loses a signal sent to the process itself about half the time (earlier commits of
  // the library fail the same way on this check), so delivery is checked without TSan.
  if (!reactor::test::kTsan) {
    EXPECT_EQ(::kill(::getpid(), SIGUSR1), 0);
    EXPECT_EQ(reactor::test::g_signal_counts[SIGUSR1].load(), 1);
  }
}

REACTOR_INSTANTIATE_ALL_BACKENDS(SignalStormTest);

}  // namespace
