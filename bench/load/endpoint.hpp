// SPDX-License-Identifier: MIT
#pragma once
/// \file
/// The server's address and the few socket calls needed to reach it, non-blocking.

#include <sys/socket.h>

#include <string>
#include <string_view>
#include <system_error>

namespace reactor::bench::load {

/// How a non-blocking connect() started.
enum class ConnectStart {
  kDone,     ///< connected already (Unix sockets)
  kPending,  ///< in progress: wait for writable, then ask connect_result()
  kRetry,    ///< transient (EAGAIN: Unix backlog full; EADDRNOTAVAIL): close, retry later
  kFailed,   ///< refused or otherwise failed for good
};

/// A numeric IPv4, IPv6 or Unix socket address. Immutable after parse().
class Endpoint {
 public:
  /// Parses "A.B.C.D:port", "[v6]:port" or "unix:/path" ("unix:@name": abstract namespace).
  /// Names are not resolved. Throws std::invalid_argument on anything else.
  static Endpoint parse(std::string_view text);

  /// The text it was parsed from.
  const std::string& text() const noexcept { return text_; }

  /// A new non-blocking, close-on-exec stream socket of the right family, TCP_NODELAY set for
  /// TCP. The caller owns it. -1 (and `ec`) on failure.
  int open_socket(std::error_code& ec) const noexcept;

  /// Starts connecting `fd` (from open_socket) to this address; `ec` says why for kRetry and
  /// kFailed.
  ConnectStart start_connect(int fd, std::error_code& ec) const noexcept;

  /// After a pending connect reported writable: its outcome (SO_ERROR); empty on success.
  static std::error_code connect_result(int fd) noexcept;

 private:
  Endpoint() = default;

  sockaddr_storage address_{};
  socklen_t length_ = 0;
  std::string text_;
};

}  // namespace reactor::bench::load
