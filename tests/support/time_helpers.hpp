#pragma once
/// Header-only helpers for the time, signal and lifecycle tests: bounded loop driving, a
/// watchdog that stops a loop the library failed to wake, and signal dispositions that are
/// saved, replaced and restored per test.
#include <gtest/gtest.h>
#include <signal.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstring>
#include <mutex>
#include <set>
#include <string>
#include <thread>

#include "reactor/core/reactor.hpp"
#include "tests/support/backends.hpp"

namespace reactor::test {

using SteadyClock = std::chrono::steady_clock;
using std::chrono::milliseconds;
using std::chrono::nanoseconds;

/// Milliseconds (fractional) between two steady_clock points, for printing.
inline double ms_between(SteadyClock::time_point from, SteadyClock::time_point to) {
  return std::chrono::duration<double, std::milli>(to - from).count();
}

/// Calls loop.run_once(per_call) until `done()` holds, at most `max_calls` times.
/// Returns done() at the end. Never unbounded: the caller picks both bounds.
template <class Pred>
bool run_once_until(Reactor& loop, Pred done, int max_calls = 200,
                    std::chrono::nanoseconds per_call = milliseconds(20)) {
  for (int i = 0; i < max_calls && !done(); ++i) loop.run_once(per_call);
  return done();
}

/// Builds and runs one Reactor over `backend` once per process, before a test's FdLeakCheck
/// starts: libuv opens process-wide fds the first time a loop is made and keeps them.
inline void prepare_backend(const std::string& backend) {
  static std::mutex mutex;
  static std::set<std::string> done;
  std::lock_guard lock(mutex);
  if (!done.insert(backend).second) return;
  Reactor loop(backend);
  loop.run_once(std::chrono::nanoseconds{0});
}

/// Base fixture for the time, signal, post, lifecycle and fork suites.
class TimeTest : public BackendTest {
 protected:
  void SetUp() override { prepare_backend(backend()); }
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

/// The current disposition of `signo`.
inline struct sigaction query_disposition(int signo) {
  struct sigaction sa;
  std::memset(&sa, 0, sizeof sa);
  ::sigaction(signo, nullptr, &sa);
  return sa;
}

/// The handler address of a disposition (SIG_DFL, SIG_IGN or a function).
inline void* handler_of(const struct sigaction& sa) {
  if ((sa.sa_flags & SA_SIGINFO) != 0) return reinterpret_cast<void*>(sa.sa_sigaction);
  return reinterpret_cast<void*>(sa.sa_handler);
}

/// Same handler and same flags.
inline bool same_disposition(const struct sigaction& a, const struct sigaction& b) {
  return handler_of(a) == handler_of(b) && a.sa_flags == b.sa_flags;
}

/// Per-signal counters bumped by counting_handler (lock-free atomics: async-signal-safe).
inline std::atomic<int> g_signal_counts[NSIG];

inline void counting_handler(int signo) {
  if (signo > 0 && signo < NSIG) g_signal_counts[signo].fetch_add(1);
}

/// Saves the disposition of `signo` and restores it at scope end. install() replaces it
/// with a test handler (no SA_RESTART unless asked).
class ScopedDisposition {
 public:
  explicit ScopedDisposition(int signo) : signo_(signo) { ::sigaction(signo_, nullptr, &saved_); }
  ScopedDisposition(const ScopedDisposition&) = delete;
  ScopedDisposition& operator=(const ScopedDisposition&) = delete;
  ~ScopedDisposition() { ::sigaction(signo_, &saved_, nullptr); }

  /// Installs `handler` with `flags`; returns the disposition now in place.
  struct sigaction install(void (*handler)(int), int flags = 0) {
    struct sigaction sa;
    std::memset(&sa, 0, sizeof sa);
    sa.sa_handler = handler;
    sa.sa_flags = flags;
    sigemptyset(&sa.sa_mask);
    EXPECT_EQ(::sigaction(signo_, &sa, nullptr), 0);
    return query_disposition(signo_);
  }
  /// Installs counting_handler and zeroes its counter.
  struct sigaction install_counting(int flags = 0) {
    g_signal_counts[signo_].store(0);
    return install(&counting_handler, flags);
  }
  const struct sigaction& saved() const { return saved_; }

 private:
  int signo_;
  struct sigaction saved_;
};

/// Makes sure `signo` is not blocked in the calling thread for the scope.
class ScopedUnblock {
 public:
  explicit ScopedUnblock(int signo) {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, signo);
    ::pthread_sigmask(SIG_UNBLOCK, &set, &old_);
  }
  ScopedUnblock(const ScopedUnblock&) = delete;
  ScopedUnblock& operator=(const ScopedUnblock&) = delete;
  ~ScopedUnblock() { ::pthread_sigmask(SIG_SETMASK, &old_, nullptr); }

 private:
  sigset_t old_;
};

}  // namespace reactor::test
