// SPDX-License-Identifier: MIT
#pragma once
/// \file
/// The reference for the dispatch benchmark: the same ring driven by a hand-written
/// level-triggered epoll loop with no library in between (epoll_wait, then read + write per
/// ready fd, the pair found through a flat array indexed by fd). What the reactor's epoll
/// backend costs on top of this is its overhead.

#include <cstdint>
#include <memory>
#include <string>

#include "bench/micro/fd_ring.hpp"

namespace reactor::bench {

class RawEpollLoop {
 public:
  /// Registers every read end of `ring` for EPOLLIN. error() says what failed, if anything.
  explicit RawEpollLoop(FdRing& ring);
  ~RawEpollLoop();
  RawEpollLoop(const RawEpollLoop&) = delete;
  RawEpollLoop& operator=(const RawEpollLoop&) = delete;

  /// Waits and dispatches whole batches until the ring has passed `target` tokens in all.
  /// False if epoll_wait failed (error() says why).
  bool run_until(std::uint64_t target);

  /// epoll_wait calls so far.
  std::uint64_t waits() const noexcept;
  const std::string& error() const noexcept;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace reactor::bench
