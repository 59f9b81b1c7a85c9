// SPDX-License-Identifier: MIT
#pragma once
#include <cstdint>

#include "reactor/core/detail/loop_ref.hpp"
#include "reactor/export.hpp"

namespace reactor {

/// A one-shot or repeating timer (made by Reactor::after / Reactor::every). Move-only RAII:
/// destroying or cancel()ling it stops it; safe inside its own callback, and cancelling a
/// fired or cancelled timer is a no-op. Deadlines are on the monotonic clock and a timer
/// never fires early.
///
/// Thread rule: the loop's (reactor/core/reactor.hpp), checked by the debug checks. Once
/// cancelled (or empty) a timer touches no loop state, so destroying, moving and cancelling
/// it again is safe on any thread. A one-shot timer that fired still refers to its loop:
/// cancel or destroy it on the loop's thread. Nothing on a Timer is a closed-handle misuse:
/// every call is defined after cancel() and after a move.
class REACTOR_API Timer {
 public:
  Timer() noexcept = default;
  /// Takes over `other`'s timer (same deadline and handler); `other` is left empty.
  Timer(Timer&& other) noexcept;
  /// Cancels this timer first, then takes over `other`'s; `other` is left empty.
  Timer& operator=(Timer&& other) noexcept;
  Timer(const Timer&) = delete;
  Timer& operator=(const Timer&) = delete;
  ~Timer();

  /// True until a one-shot timer fires (false inside its callback) or the timer is cancelled.
  bool active() const noexcept;
  /// Stops the timer and lets go of the loop. Idempotent.
  void cancel() noexcept;

 private:
  friend class Reactor;
  Timer(detail::LoopRef loop, std::uint32_t index, std::uint32_t generation) noexcept
      : loop_(std::move(loop)), index_(index), generation_(generation) {}
  Reactor* loop() const noexcept { return loop_ ? *loop_ : nullptr; }

  detail::LoopRef loop_;
  std::uint32_t index_ = 0;
  std::uint32_t generation_ = 0;
};

}  // namespace reactor
