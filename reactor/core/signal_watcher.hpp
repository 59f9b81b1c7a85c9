// SPDX-License-Identifier: MIT
#pragma once
#include <cstdint>

#include "reactor/core/detail/loop_ref.hpp"
#include "reactor/export.hpp"

namespace reactor {

/// A signal delivered as a callback on the loop thread (made by Reactor::on_signal).
/// Move-only RAII. While any watcher of a signal exists in any Reactor of the process, the
/// library's handler is installed for it (SA_RESTART); when the last one goes, the previous
/// disposition is restored. Several watchers and several loops may watch one signal: each
/// gets every delivery. Deliveries that arrive together may be coalesced into one callback,
/// as POSIX coalesces pending signals.
///
/// Thread rule: the loop's (reactor/core/reactor.hpp), checked by the debug checks. Once
/// stopped (or empty) a watcher touches no loop state, so destroying, moving and stopping it
/// again is safe on any thread; signal() reads only the handle.
class REACTOR_API SignalWatcher {
 public:
  SignalWatcher() noexcept = default;
  /// Takes over `other`'s watch (same signal and handler); `other` is left empty.
  SignalWatcher(SignalWatcher&& other) noexcept;
  /// Stops this watcher first, then takes over `other`'s; `other` is left empty.
  SignalWatcher& operator=(SignalWatcher&& other) noexcept;
  SignalWatcher(const SignalWatcher&) = delete;
  SignalWatcher& operator=(const SignalWatcher&) = delete;
  ~SignalWatcher();

  /// True while watching: false after stop(), for an empty watcher, and once the Reactor is
  /// gone.
  bool active() const noexcept;
  /// The signal number, or 0 for an empty watcher.
  int signal() const noexcept { return signo_; }
  /// Stops watching and lets go of the loop; restores the previous disposition if this was
  /// the process's last watcher of the signal. Idempotent.
  void stop() noexcept;

 private:
  friend class Reactor;
  SignalWatcher(detail::LoopRef loop, int signo, std::uint32_t index,
                std::uint32_t generation) noexcept
      : loop_(std::move(loop)), signo_(signo), index_(index), generation_(generation) {}
  Reactor* loop() const noexcept { return loop_ ? *loop_ : nullptr; }

  detail::LoopRef loop_;
  int signo_ = 0;
  std::uint32_t index_ = 0;
  std::uint32_t generation_ = 0;
};

}  // namespace reactor
