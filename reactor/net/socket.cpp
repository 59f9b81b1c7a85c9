// SPDX-License-Identifier: MIT
#include "reactor/net/socket.hpp"

#include "reactor/net/detail/fd_shortage.hpp"

#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

namespace reactor {

namespace {
std::error_code result(int rc) noexcept {
  return rc == 0 ? std::error_code{} : std::error_code{errno, std::generic_category()};
}
}  // namespace

Socket& Socket::operator=(Socket&& other) noexcept {
  if (this != &other) {
    close();
    fd_ = std::exchange(other.fd_, -1);
  }
  return *this;
}

Socket Socket::open(const Address& address, int type, std::error_code& ec) noexcept {
  ec.clear();
  if (address.empty()) {
    ec = std::make_error_code(std::errc::invalid_argument);
    return {};
  }
  const int fd = ::socket(address.domain(), type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    ec = {errno, std::generic_category()};
    return {};
  }
  return Socket(fd);
}

void Socket::close() noexcept {
  if (fd_ < 0) return;
  ::close(std::exchange(fd_, -1));
  if (detail::listeners_backing_off.load(std::memory_order_relaxed) != 0) {
    detail::retry_backing_off_listeners();
  }
}

std::error_code Socket::bind(const Address& a) noexcept {
  return result(::bind(fd_, a.native(), a.native_size()));
}

std::error_code Socket::listen(int backlog) noexcept { return result(::listen(fd_, backlog)); }

std::error_code Socket::connect(const Address& a) noexcept {
  int rc;
  do {
    rc = ::connect(fd_, a.native(), a.native_size());
  } while (rc != 0 && errno == EINTR);
  return result(rc);
}

std::error_code Socket::shutdown(int how) noexcept { return result(::shutdown(fd_, how)); }

std::error_code Socket::set_option(int level, int name, int value) noexcept {
  return result(::setsockopt(fd_, level, name, &value, sizeof value));
}

std::error_code Socket::set_reuse_address(bool on) noexcept {
  return set_option(SOL_SOCKET, SO_REUSEADDR, on ? 1 : 0);
}

std::error_code Socket::set_reuse_port(bool on) noexcept {
  return set_option(SOL_SOCKET, SO_REUSEPORT, on ? 1 : 0);
}

std::error_code Socket::set_no_delay(bool on) noexcept {
  std::error_code ec = set_option(IPPROTO_TCP, TCP_NODELAY, on ? 1 : 0);
  // Unix sockets have no Nagle to turn off.
  if (ec == std::errc::operation_not_supported || ec == std::errc::no_protocol_option ||
      ec == std::errc::invalid_argument) {
    return {};
  }
  return ec;
}

std::error_code Socket::set_send_buffer(int bytes) noexcept {
  return set_option(SOL_SOCKET, SO_SNDBUF, bytes);
}

std::error_code Socket::set_receive_buffer(int bytes) noexcept {
  return set_option(SOL_SOCKET, SO_RCVBUF, bytes);
}

std::error_code Socket::set_reset_on_close() noexcept {
  const linger l{1, 0};
  return result(::setsockopt(fd_, SOL_SOCKET, SO_LINGER, &l, sizeof l));
}

std::error_code Socket::pending_error() const noexcept {
  int err = 0;
  socklen_t len = sizeof err;
  if (::getsockopt(fd_, SOL_SOCKET, SO_ERROR, &err, &len) != 0) {
    return {errno, std::generic_category()};
  }
  return {err, std::generic_category()};
}

Address Socket::local_address(std::error_code& ec) const noexcept {
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  if (::getsockname(fd_, reinterpret_cast<sockaddr*>(&ss), &len) != 0) {
    ec = {errno, std::generic_category()};
    return {};
  }
  return Address::from_native(reinterpret_cast<sockaddr*>(&ss), len, ec);
}

Address Socket::peer_address(std::error_code& ec) const noexcept {
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  if (::getpeername(fd_, reinterpret_cast<sockaddr*>(&ss), &len) != 0) {
    ec = {errno, std::generic_category()};
    return {};
  }
  return Address::from_native(reinterpret_cast<sockaddr*>(&ss), len, ec);
}

// The waits are a blocking recv with SO_RCVTIMEO set to the time left: no poll set, no
// allocation, nothing that a forked child could not use.
void linger_close(Socket& socket, std::size_t max_bytes,
                  std::chrono::nanoseconds max_time) noexcept {
  using Clock = std::chrono::steady_clock;
  const int fd = socket.fd();
  if (fd < 0) return;
  // Not connected (or reset already): nothing to linger for.
  if (::shutdown(fd, SHUT_WR) == 0 && max_bytes != 0) {
    const auto deadline = Clock::now() + max_time;
    char sink[16 * 1024];
    std::size_t left = max_bytes;
    // What has arrived already goes at once (it alone makes the reset); then, while time is
    // left, each recv waits for more, made blocking with SO_RCVTIMEO at the time left.
    bool waiting = false;
    while (left != 0) {
      if (waiting) {
        const auto remaining = deadline - Clock::now();
        if (remaining <= Clock::duration::zero()) break;
        const auto us = std::max<long long>(
            1, std::chrono::duration_cast<std::chrono::microseconds>(remaining).count());
        const timeval tv{static_cast<time_t>(us / 1000000), static_cast<suseconds_t>(us % 1000000)};
        if (::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) != 0) break;
      }
      const ssize_t n = ::recv(fd, sink, std::min(sizeof sink, left), waiting ? 0 : MSG_DONTWAIT);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && !waiting && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        const int flags = ::fcntl(fd, F_GETFL);
        if (max_time.count() <= 0 || flags < 0 || ::fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) != 0) {
          break;
        }
        waiting = true;
        continue;
      }
      if (n <= 0) break;  // end of stream, time is up (EAGAIN), or an error
      left -= static_cast<std::size_t>(n);
    }
  }
  socket.close();
}

}  // namespace reactor
