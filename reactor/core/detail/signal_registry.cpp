// SPDX-License-Identifier: MIT
#include "reactor/core/detail/signal_registry.hpp"

#include <signal.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cerrno>
#include <mutex>

namespace reactor::detail::signals {

namespace {

struct Target {
  std::atomic<bool> claimed{false};
  std::atomic<int> wake_fd{-1};
  std::atomic<std::uint64_t> mask{0};
  std::atomic<std::uint64_t> pending{0};
};

std::array<Target, kMaxTargets> g_targets;
// Handlers currently running; detach() waits for them so that a handler never writes to a
// wake fd that its loop has already closed (and the kernel may have reused).
std::atomic<int> g_in_flight{0};

// Installing and restoring dispositions; never taken inside the handler.
std::mutex g_mutex;
std::array<int, kMaxSignal + 1> g_users{};               // targets watching each signal
std::array<struct sigaction, kMaxSignal + 1> g_saved{};  // dispositions to restore

constexpr std::uint64_t bit(int signo) { return std::uint64_t{1} << (signo - 1); }

extern "C" void on_signal(int signo) {
  const int saved_errno = errno;
  g_in_flight.fetch_add(1);
  for (Target& t : g_targets) {
    if ((t.mask.load() & bit(signo)) == 0) continue;
    t.pending.fetch_or(bit(signo));
    const int fd = t.wake_fd.load();
    if (fd >= 0) {
      const std::uint64_t one = 1;
      // EAGAIN means the counter is already non-zero: the loop is awake anyway.
      [[maybe_unused]] ssize_t n = ::write(fd, &one, sizeof one);
    }
  }
  g_in_flight.fetch_sub(1);
  errno = saved_errno;
}

}  // namespace

bool catchable(int signo) noexcept {
  return signo >= 1 && signo <= kMaxSignal && signo <= SIGRTMAX && signo != SIGKILL &&
         signo != SIGSTOP;
}

int attach(int wake_fd) noexcept {
  for (int i = 0; i < kMaxTargets; ++i) {
    bool expected = false;
    if (g_targets[i].claimed.compare_exchange_strong(expected, true)) {
      g_targets[i].pending.store(0);
      g_targets[i].wake_fd.store(wake_fd);
      return i;
    }
  }
  return -1;
}

void retarget(int target, int wake_fd) noexcept { g_targets[target].wake_fd.store(wake_fd); }

void detach(int target) noexcept {
  Target& t = g_targets[target];
  for (int signo = 1; signo <= kMaxSignal; ++signo) {
    if (t.mask.load() & bit(signo)) unwatch(target, signo);
  }
  t.wake_fd.store(-1);
  // A handler that loaded the old fd before the store above is counted in g_in_flight.
  while (g_in_flight.load() != 0) {
  }
  t.pending.store(0);
  t.claimed.store(false);
}

std::error_code watch(int target, int signo) noexcept {
  if (!catchable(signo)) return std::make_error_code(std::errc::invalid_argument);
  std::lock_guard lock(g_mutex);
  Target& t = g_targets[target];
  if (t.mask.load() & bit(signo)) return {};
  if (g_users[signo] == 0) {
    struct sigaction sa {};
    sa.sa_handler = on_signal;
    sa.sa_flags = SA_RESTART;
    sigfillset(&sa.sa_mask);  // one handler at a time: no nesting over the same targets
    if (::sigaction(signo, &sa, &g_saved[signo]) != 0) return {errno, std::generic_category()};
  }
  ++g_users[signo];
  t.mask.fetch_or(bit(signo));
  return {};
}

void unwatch(int target, int signo) noexcept {
  if (signo < 1 || signo > kMaxSignal) return;
  std::lock_guard lock(g_mutex);
  Target& t = g_targets[target];
  if ((t.mask.load() & bit(signo)) == 0) return;
  t.mask.fetch_and(~bit(signo));
  if (--g_users[signo] == 0) ::sigaction(signo, &g_saved[signo], nullptr);
}

void restore_dispositions_in_child() noexcept {
  for (int signo = 1; signo <= kMaxSignal; ++signo) {
    if (g_users[signo] > 0) ::sigaction(signo, &g_saved[signo], nullptr);
  }
}

std::uint64_t take_pending(int target) noexcept { return g_targets[target].pending.exchange(0); }

}  // namespace reactor::detail::signals
