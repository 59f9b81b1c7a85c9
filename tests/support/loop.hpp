// SPDX-License-Identifier: MIT
#pragma once
/// Driving a Reactor from a test, always bounded: run until a condition holds, run a few
/// iterations, count iterations over a span, count what an I/O watcher saw, and a watchdog
/// that stops a loop the library failed to wake. For the loop's own thread unless it says
/// otherwise.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <thread>

#include "reactor/core/reactor.hpp"

namespace reactor::test {

/// Calls loop.run_once(step) until `done()` holds or `limit` of wall time has passed;
/// returns done(). Bounded by time, not by a call count: a loop with an always-ready fd
/// returns at once from every call.
template <class Pred>
bool run_until(Reactor& loop, Pred done, std::chrono::nanoseconds limit = std::chrono::seconds{10},
               std::chrono::nanoseconds step = std::chrono::milliseconds{10}) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (!done() && std::chrono::steady_clock::now() < deadline) loop.run_once(step);
  return done();
}

/// Runs `n` iterations of at most `step` each: for "nothing more is delivered" checks, and to
/// let posted close callbacks and deferred releases run.
inline void run_iterations(Reactor& loop, int n,
                           std::chrono::nanoseconds step = std::chrono::milliseconds{2}) {
  for (int i = 0; i < n; ++i) loop.run_once(step);
}

/// What run_for() saw.
struct RunStats {
  std::uint64_t iterations = 0;  ///< Reactor::iterations() delta
  std::size_t calls = 0;         ///< run_once() calls made
  std::size_t callbacks = 0;     ///< sum of run_once() results
};

/// Calls loop.run_once(step) until `budget` of wall time has passed or `max_calls` calls were
/// made, whichever comes first. Used to check that an idle loop blocks instead of spinning:
/// a spinning loop hits `max_calls`, a blocking one makes about budget / step calls.
inline RunStats run_for(Reactor& loop, std::chrono::milliseconds budget,
                        std::chrono::milliseconds step, std::size_t max_calls = 1000) {
  RunStats s;
  const std::uint64_t start_iterations = loop.iterations();
  const auto deadline = std::chrono::steady_clock::now() + budget;
  while (s.calls < max_calls && std::chrono::steady_clock::now() < deadline) {
    s.callbacks += loop.run_once(step);
    ++s.calls;
  }
  s.iterations = loop.iterations() - start_iterations;
  return s;
}

/// Counts an I/O watcher's callbacks and the bits they carried.
struct Tally {
  int calls = 0;
  int readable = 0;
  int writable = 0;
  int invalid = 0;
  void add(IoEvents ev) {
    ++calls;
    readable += ev.readable() ? 1 : 0;
    writable += ev.writable() ? 1 : 0;
    invalid += ev.invalid() ? 1 : 0;
  }
  IoHandler handler() {
    return [this](IoEvents ev) { add(ev); };
  }
};

/// Calls loop.stop() from another thread if it is still alive after `limit`: a bound on a
/// loop the library might fail to wake. fired() tells whether it had to.
class Watchdog {
 public:
  Watchdog(Reactor& loop, std::chrono::nanoseconds limit)
      : thread_([this, &loop, limit] {
          std::unique_lock lock(mutex_);
          if (!cv_.wait_for(lock, limit, [this] { return done_; })) {
            fired_.store(true);
            loop.stop();
          }
        }) {}
  Watchdog(const Watchdog&) = delete;
  Watchdog& operator=(const Watchdog&) = delete;
  ~Watchdog() {
    disarm();
    EXPECT_FALSE(fired()) << "the watchdog had to stop a loop that did not return in time";
  }

  /// Ends the watchdog thread (joins it). Idempotent.
  void disarm() {
    {
      std::lock_guard lock(mutex_);
      done_ = true;
    }
    cv_.notify_all();
    if (thread_.joinable()) thread_.join();
  }
  bool fired() const { return fired_.load(); }

 private:
  std::mutex mutex_;
  std::condition_variable cv_;
  bool done_ = false;
  std::atomic<bool> fired_{false};
  std::thread thread_;
};

}  // namespace reactor::test
