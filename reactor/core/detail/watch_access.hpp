// SPDX-License-Identifier: MIT
#pragma once
/// For objects of the library that keep many registrations and must stay small (a
/// Connection): an fd's registration held as its generation alone, where an IoWatcher also
/// keeps a reference to the loop's life (16 bytes) and the fd. The holder keeps the fd and
/// one LoopRef of its own (shared by many), and must follow IoWatcher's rules: stop the
/// registration before closing the fd, and touch the loop only while it lives.
#include <cstdint>
#include <system_error>

#include "reactor/core/detail/loop_ref.hpp"
#include "reactor/core/io_watcher.hpp"
#include "reactor/core/reactor.hpp"

namespace reactor::detail {

struct WatchAccess {
  /// The generation of `w`'s registration, which `w` gives up: its destruction no longer
  /// stops it. 0 for an empty watcher.
  static std::uint32_t release(IoWatcher& w) noexcept {
    if (!w.loop_) return 0;
    w.loop_.reset();
    w.fd_ = -1;
    return std::exchange(w.generation_, 0);
  }
  /// What tells whether `loop` still lives (*life is null once it is destroyed).
  static const LoopRef& life(const Reactor& loop) noexcept { return loop.life(); }
  static std::error_code set_interest(Reactor& loop, int fd, std::uint32_t generation,
                                      Interest interest) noexcept {
    return loop.set_interest(fd, generation, interest);
  }
  static void unwatch(Reactor& loop, int fd, std::uint32_t generation) noexcept {
    loop.unwatch(fd, generation);
  }
};

}  // namespace reactor::detail
