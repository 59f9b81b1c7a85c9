// SPDX-License-Identifier: MIT
#pragma once
#include <cstdint>
#include <system_error>

#include "reactor/core/backend.hpp"
#include "reactor/core/detail/loop_ref.hpp"
#include "reactor/export.hpp"

namespace reactor {

/// One fd's registration with a Reactor (made by Reactor::watch). Move-only RAII: destroying
/// or stop()ping it unwatches the fd at once; no callback for that registration runs after
/// that, even later in the same batch and even if the fd number is reused immediately.
/// It may be destroyed inside its own callback. It does not own the fd: close the fd after
/// stopping the watcher. After its Reactor is destroyed it is inert (active() false,
/// set_interest() returns EBADF).
///
/// Thread rule: the loop's (reactor/core/reactor.hpp). Once stopped (or empty) a watcher
/// touches no loop state, so destroying, moving and stop()ping it again is safe on any
/// thread; fd() reads only the handle. Everything else is checked by the debug checks.
class REACTOR_API IoWatcher {
 public:
  IoWatcher() noexcept = default;
  /// Takes over `other`'s registration (same fd, handler and interest); `other` is left empty.
  IoWatcher(IoWatcher&& other) noexcept;
  /// Stops this watcher's own registration first, then takes over `other`'s; `other` is left
  /// empty.
  IoWatcher& operator=(IoWatcher&& other) noexcept;
  IoWatcher(const IoWatcher&) = delete;
  IoWatcher& operator=(const IoWatcher&) = delete;
  ~IoWatcher();

  /// True while the registration lives: false after stop(), after the Reactor is gone, and
  /// after the fd was found closed behind the loop's back (IoEvents::invalid()).
  bool active() const noexcept;
  /// The watched fd, or -1 for an empty watcher.
  int fd() const noexcept { return fd_; }
  /// The current interest (Interest::none when not active).
  Interest interest() const noexcept;
  /// Changes what the fd is watched for; takes effect at the next poll. Interest::none keeps
  /// the registration but delivers nothing. EBADF when not active: the loop found the fd
  /// closed behind its back, the Reactor is gone, or (a programming error) the watcher was
  /// stop()ped or is empty (default-constructed, moved from). With the debug checks on, those
  /// last two abort instead of returning EBADF.
  std::error_code set_interest(Interest interest) noexcept;
  /// Unwatches now and lets go of the loop. Idempotent.
  void stop() noexcept;

 private:
  friend class Reactor;
  friend struct detail::WatchAccess;
  IoWatcher(detail::LoopRef loop, int fd, std::uint32_t generation) noexcept
      : loop_(std::move(loop)), fd_(fd), generation_(generation) {}
  Reactor* loop() const noexcept { return loop_ ? *loop_ : nullptr; }

  detail::LoopRef loop_;
  int fd_ = -1;
  std::uint32_t generation_ = 0;
};

}  // namespace reactor
