// SPDX-License-Identifier: MIT
#pragma once
/// \file
/// What StreamServer and DatagramServer share at run time: the loops (loop 0 on the serving
/// thread, the pool's others on threads of their own), serve/shutdown, the cancel fd of
/// blocking handlers, the slot budget and the counters. The threads and children of the
/// threading and forking models are Workers (workers.hpp); how a handler run ended is an
/// Outcome (outcome.hpp). Internal.

#include <sys/types.h>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <vector>

#include "reactor/core/reactor.hpp"
#include "reactor/server/detail/outcome.hpp"
#include "reactor/server/detail/workers.hpp"
#include "reactor/server/options.hpp"

namespace reactor::detail {

/// Connections (threads, children) served at once, against a limit; any thread.
class SlotBudget {
 public:
  explicit SlotBudget(std::size_t limit) noexcept : limit_(limit) {}
  /// Takes a slot; false at the limit.
  bool try_acquire() noexcept {
    std::size_t n = active_.load();
    do {
      if (limit_ != 0 && n >= limit_) return false;
    } while (!active_.compare_exchange_weak(n, n + 1));
    std::size_t peak = peak_.load();
    while (n + 1 > peak && !peak_.compare_exchange_weak(peak, n + 1)) {
    }
    return true;
  }
  /// Frees a slot; true if the budget was full (whoever waits for a slot should look now).
  bool release() noexcept { return active_.fetch_sub(1) == limit_; }
  bool full() const noexcept { return limit_ != 0 && active_.load() >= limit_; }
  std::size_t active() const noexcept { return active_.load(); }
  std::size_t peak() const noexcept { return peak_.load(); }

 private:
  const std::size_t limit_;
  std::atomic<std::size_t> active_{0};
  std::atomic<std::size_t> peak_{0};
};

class ServerCore {
 public:
  /// Validates the options, makes loop 0 and the cancel fd. Throws std::invalid_argument
  /// (unknown backend) or std::system_error.
  ServerCore(ServerOptions options);
  ~ServerCore();

  const ServerOptions& options() const noexcept { return options_; }
  /// pool: the number of loops; 1 otherwise.
  std::size_t loop_count() const noexcept { return loops_.size(); }
  Reactor& loop(std::size_t i = 0) noexcept { return *loops_[i]; }
  int cancel_fd() const noexcept { return cancel_fd_; }

  /// Runs loop 0 here and loops 1.. on threads until shutdown(); joins those threads.
  /// Throws std::logic_error if already serving or closed.
  void serve();
  /// Runs loop 0 here until `done()` or shutdown or the deadline (zero timeout: none).
  /// Returns false on timeout or shutdown.
  bool serve_until(const std::function<bool()>& done, std::chrono::milliseconds timeout);
  /// handle_request(): runs loop 0 until `started()` (waiting up to options().timeout) and
  /// then until `finished()`; `end()` runs after, even on an exception. Calls handle_timeout
  /// and returns false when no request came.
  bool handle_request(const std::function<bool()>& started, const std::function<bool()>& finished,
                      const std::function<void()>& end);
  bool stopping() const noexcept { return stopping_.load(); }
  /// Stops accepting and cancels blocking handlers' reads. With a drain hook (set_drain)
  /// and a nonzero options().shutdown_drain, posts `begin(i)` to every loop i and stops the
  /// loops once each has called loop_drained(); otherwise stops the loops at once.
  void shutdown() noexcept;
  /// Before serving: what each loop runs when shutdown() starts the drain.
  void set_drain(std::function<void(std::size_t loop)> begin) { begin_drain_ = std::move(begin); }
  /// Any thread: loop `i` has no connection left (or cut them); the last one stops the loops.
  void loop_drained() noexcept;
  /// Shuts down, joins every thread, waits for every child. Then close the rest.
  void join_all() noexcept;
  bool closed() const noexcept { return closed_; }
  void mark_closed() noexcept { closed_ = true; }

  /// The threads (threading) and children (forking) of handlers, on loop 0.
  Workers& workers() noexcept { return *workers_; }

  using Outcome = detail::Outcome;
  /// classify_failure() with these options.
  Outcome fail(const Address& client, std::exception_ptr error) noexcept {
    return classify_failure(options_, client, std::move(error));
  }
  void count(Outcome outcome) noexcept { counters_.count(outcome); }

  /// A client (connection or datagram) arrived on a loop: counts it and runs verify_request.
  /// False: drop it (refused, or the server is shutting down).
  bool admit(const Address& client) noexcept;
  /// Any thread: frees a slot; if the budget was full, posts `rebalance(i)` to every loop i.
  void release_slot(const std::function<void(std::size_t loop)>& rebalance);

  SlotBudget& budget() noexcept { return budget_; }
  Counters& counters() noexcept { return counters_; }
  ServerStats stats() const noexcept;

 private:
  void watch_shutdown_signals();

  ServerOptions options_;
  std::vector<std::unique_ptr<Reactor>> loops_;
  int cancel_fd_ = -1;
  SlotBudget budget_;
  Counters counters_;

  void stop_loops() noexcept;

  std::atomic<bool> stopping_{false};
  std::function<void(std::size_t)> begin_drain_;
  std::atomic<std::size_t> undrained_{0};
  std::mutex serve_mutex_;
  std::condition_variable served_;
  bool serving_ = false;
  bool closed_ = false;
  const pid_t owner_pid_;

  std::unique_ptr<Workers> workers_;              // on loop 0
  std::vector<SignalWatcher> shutdown_watchers_;  // on loop 0
};

}  // namespace reactor::detail
