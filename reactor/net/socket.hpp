// SPDX-License-Identifier: MIT
#pragma once
/// \file
/// An owned socket fd: non-blocking and close-on-exec from birth, closed on destruction.
/// Thin and explicit: every call is one system call and returns its error.

#include <chrono>
#include <cstddef>
#include <system_error>
#include <utility>

#include "reactor/export.hpp"
#include "reactor/net/address.hpp"

namespace reactor {

/// Owns one socket fd and closes it on destruction. Movable, not copyable; an empty Socket
/// holds -1. Thread rule: none; a Socket is a value, used by one owner at a time.
class REACTOR_API Socket {
 public:
  Socket() noexcept = default;
  /// Takes ownership of an open fd (made non-blocking and close-on-exec by the caller).
  explicit Socket(int fd) noexcept : fd_(fd) {}
  /// Takes `other`'s fd; `other` is left empty.
  Socket(Socket&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  /// Closes this socket's fd first, then takes `other`'s; `other` is left empty.
  Socket& operator=(Socket&& other) noexcept;
  Socket(const Socket&) = delete;
  Socket& operator=(const Socket&) = delete;
  ~Socket() { close(); }

  /// A new socket of `type` (SOCK_STREAM, SOCK_DGRAM) for the family of `address`.
  static Socket open(const Address& address, int type, std::error_code& ec) noexcept;

  /// The fd, still owned by this Socket; -1 when empty.
  int fd() const noexcept { return fd_; }
  /// True when it holds an fd.
  explicit operator bool() const noexcept { return fd_ >= 0; }
  /// Gives up ownership.
  int release() noexcept { return std::exchange(fd_, -1); }
  /// Closes now (EINTR from close is not retried: on Linux the fd is gone either way). A
  /// Listener of this thread's loop that backs off for lack of fds retries at once.
  void close() noexcept;

  /// bind(2) to `address`: EADDRINUSE, EACCES, ... as the kernel says.
  std::error_code bind(const Address& address) noexcept;
  /// listen(2) with `backlog` (the kernel caps it at net.core.somaxconn).
  std::error_code listen(int backlog) noexcept;
  /// Starts a connect. EINPROGRESS is returned as an error: wait for writability, then
  /// read pending_error().
  std::error_code connect(const Address& address) noexcept;
  /// shutdown(2): SHUT_RD, SHUT_WR or SHUT_RDWR.
  std::error_code shutdown(int how) noexcept;

  /// setsockopt(2) with an int value; the kernel's error, if any.
  std::error_code set_option(int level, int name, int value) noexcept;
  /// SO_REUSEADDR and SO_REUSEPORT on or off.
  ///@{
  std::error_code set_reuse_address(bool on) noexcept;
  std::error_code set_reuse_port(bool on) noexcept;
  ///@}
  std::error_code set_no_delay(bool on) noexcept;  ///< TCP only; ignored for Unix sockets
  /// SO_SNDBUF and SO_RCVBUF: ask for kernel buffers of `bytes` (the kernel doubles the value
  /// and caps it at net.core.wmem_max / rmem_max).
  ///@{
  std::error_code set_send_buffer(int bytes) noexcept;
  std::error_code set_receive_buffer(int bytes) noexcept;
  ///@}
  /// SO_LINGER {1, 0}: the next close() sends a reset instead of a FIN.
  std::error_code set_reset_on_close() noexcept;

  /// SO_ERROR: the pending error, cleared by reading it.
  std::error_code pending_error() const noexcept;
  /// getsockname(2) and getpeername(2): this end's and the peer's address; an empty Address
  /// and the error in `ec` on failure (ENOTCONN for the peer of an unconnected socket).
  ///@{
  Address local_address(std::error_code& ec) const noexcept;
  Address peer_address(std::error_code& ec) const noexcept;
  ///@}

 private:
  int fd_ = -1;
};

/// A lingering close for blocking code (the server's sync, threading and forking models; on
/// a loop Connection::close() does the same): shuts down the writing side, so the peer reads
/// everything sent and then end of stream, reads and discards what the peer still sends
/// until it closes, `max_bytes` were discarded or `max_time` passed, then closes `socket`.
/// Closing with unread input instead would make Linux reset the connection, and the reset
/// can destroy the answer still in flight. What has arrived already is discarded at once;
/// then it blocks the calling thread up to `max_time` (zero: not at all; signals do not
/// shorten or lengthen it); `socket` may be blocking or not (it is left
/// blocking, then closed). Any thread; `socket` is empty after.
REACTOR_API void linger_close(Socket& socket, std::size_t max_bytes,
                              std::chrono::nanoseconds max_time) noexcept;

}  // namespace reactor
