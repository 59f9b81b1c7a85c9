// SPDX-License-Identifier: MIT
#pragma once
/// \file
/// reactor-load's own readiness loop: a thin level-triggered epoll wrapper. The load generator
/// must not measure the library with the library, so it uses none of it.
///
/// The kernel is handed a 64-bit token, never a pointer; the caller puts a generation in it so
/// an event for an fd closed earlier in the same batch can be recognised and dropped.

#include <cstdint>
#include <memory>
#include <span>
#include <system_error>
#include <vector>

struct epoll_event;

namespace reactor::bench::load {

/// One ready fd, as reported by Poller::poll().
struct PollEvent {
  std::uint64_t token;  ///< what add()/modify() was given
  bool readable;        ///< EPOLLIN
  bool writable;        ///< EPOLLOUT
  bool failed;          ///< EPOLLERR or EPOLLHUP: a read or SO_ERROR says what happened
};

/// An epoll instance. Single-threaded; move-only by being non-copyable and owned by value.
class Poller {
 public:
  static constexpr unsigned kRead = 1;   ///< interest in readable
  static constexpr unsigned kWrite = 2;  ///< interest in writable

  /// Throws std::system_error if epoll_create1 fails.
  Poller();
  ~Poller();
  Poller(const Poller&) = delete;
  Poller& operator=(const Poller&) = delete;

  /// Watches `fd` (level-triggered) for `interest`, reporting `token`.
  std::error_code add(int fd, std::uint64_t token, unsigned interest) noexcept;
  /// Changes what `fd` is watched for.
  std::error_code modify(int fd, std::uint64_t token, unsigned interest) noexcept;
  /// Stops watching `fd` (close() does this too).
  std::error_code remove(int fd) noexcept;

  /// Waits at most `timeout_ms` (-1: no limit) for readiness. The span stays valid until the
  /// next poll(). EINTR is reported as an empty batch.
  std::span<const PollEvent> poll(int timeout_ms, std::error_code& ec) noexcept;

 private:
  int fd_ = -1;
  std::unique_ptr<epoll_event[]> raw_;
  std::vector<PollEvent> ready_;
};

}  // namespace reactor::bench::load
