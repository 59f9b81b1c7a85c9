// SPDX-License-Identifier: MIT
#pragma once
/// Signal dispositions saved, replaced and restored per test, a counting handler, and a
/// scoped unblock.
#include <gtest/gtest.h>
#include <pthread.h>
#include <signal.h>

#include <atomic>
#include <cstring>

namespace reactor::test {

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
