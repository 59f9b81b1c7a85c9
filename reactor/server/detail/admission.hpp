// SPDX-License-Identifier: MIT
#pragma once
/// \file
/// Admission of one loop's clients (stream connections or datagrams) against the server's
/// slot budget. Internal.
///
/// A client that comes while no slot is free waits here, in order, and the source it came
/// from (a listener or a datagram socket) is switched off, so the rest wait in the kernel and
/// nothing spins. When a slot frees, rebalance() (on this loop) starts the waiting clients and
/// switches the source back on. A start that fails for want of threads or processes gives
/// its slot back and is retried after a short back-off, first in line.

#include <chrono>
#include <deque>
#include <functional>
#include <optional>
#include <utility>

#include "reactor/core/timer.hpp"
#include "reactor/server/detail/server_core.hpp"

namespace reactor::detail {

template <typename Item>
class Admission {
 public:
  struct Hooks {
    std::function<void(bool on)> switch_source;  ///< source on or off (it may be gone)
    std::function<bool(Item&)> start;            ///< with a slot held; false: retry later
    std::function<bool()> may_resume;            ///< false: keep the source off anyway
  };
  static constexpr std::chrono::milliseconds kRetryAfter{50};

  Admission(ServerCore& core, std::size_t loop, Hooks hooks)
      : core_(core), loop_(loop), hooks_(std::move(hooks)) {}

  /// A new client, on this loop.
  void admit(Item item) {
    if (!waiting_.empty() || retry_ || !core_.budget().try_acquire()) {
      waiting_.push_back(std::move(item));
      hooks_.switch_source(false);
      return;
    }
    begin(item);
    if (core_.budget().full()) hooks_.switch_source(false);
  }

  /// On this loop: starts waiting clients while slots are free, then sets the source.
  void rebalance() {
    if (core_.stopping()) return;
    while (!waiting_.empty() && !retry_ && core_.budget().try_acquire()) {
      Item item = std::move(waiting_.front());
      waiting_.pop_front();
      if (!begin(item)) break;
      if (core_.stopping()) return;
    }
    const bool on = waiting_.empty() && !retry_ && !core_.budget().full() && hooks_.may_resume();
    hooks_.switch_source(on);
  }

  /// Clients waiting for a slot.
  std::size_t waiting() const noexcept { return waiting_.size(); }

  void clear() noexcept {
    retry_.reset();
    waiting_.clear();
  }

 private:
  // Starts `item` with the slot held; on failure, gives the slot back and queues it first.
  bool begin(Item& item) {
    if (hooks_.start(item)) return true;
    core_.budget().release();
    waiting_.push_front(std::move(item));
    hooks_.switch_source(false);
    if (!retry_) {
      retry_ = core_.loop(loop_).after(kRetryAfter, [this] {
        retry_.reset();
        rebalance();
      });
    }
    return false;
  }

  ServerCore& core_;
  std::size_t loop_;
  Hooks hooks_;
  std::deque<Item> waiting_;
  std::optional<Timer> retry_;
};

}  // namespace reactor::detail
