// SPDX-License-Identifier: MIT
#include "bench/load/endpoint.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstddef>
#include <cstring>
#include <stdexcept>

namespace reactor::bench::load {

namespace {

std::uint16_t parse_port(std::string_view text, std::string_view whole) {
  unsigned port = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), port);
  if (text.empty() || ec != std::errc{} || end != text.data() + text.size() || port > 65535) {
    const bool digits = !text.empty() && text.find_first_not_of("0123456789") == text.npos;
    throw std::invalid_argument("bad address '" + std::string(whole) + "': " +
                                (digits ? "port out of range 0..65535" : "no decimal port"));
  }
  return static_cast<std::uint16_t>(port);
}

std::error_code last_error() noexcept { return {errno, std::system_category()}; }

}  // namespace

Endpoint Endpoint::parse(std::string_view text) {
  Endpoint e;
  e.text_ = std::string(text);
  if (text.starts_with("unix:")) {
    const std::string_view path = text.substr(5);
    sockaddr_un un{};
    if (path.empty() || path.size() >= sizeof un.sun_path) {
      throw std::invalid_argument("bad address '" + e.text_ + "': " +
                                  (path.empty() ? "empty Unix path" : "Unix path too long"));
    }
    un.sun_family = AF_UNIX;
    std::memcpy(un.sun_path, path.data(), path.size());
    const bool abstract = path[0] == '@';
    if (abstract) un.sun_path[0] = '\0';
    e.length_ =
        static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + path.size() + (abstract ? 0 : 1));
    std::memcpy(&e.address_, &un, sizeof un);
    return e;
  }
  if (text.starts_with("[")) {
    const auto close = text.find("]:");
    if (close == std::string_view::npos)
      throw std::invalid_argument("bad address '" + e.text_ + "': expected [IPV6]:PORT");
    const std::string host(text.substr(1, close - 1));
    sockaddr_in6 in6{};
    in6.sin6_family = AF_INET6;
    in6.sin6_port = htons(parse_port(text.substr(close + 2), text));
    if (::inet_pton(AF_INET6, host.c_str(), &in6.sin6_addr) != 1) {
      throw std::invalid_argument("bad address '" + e.text_ + "': not a numeric IPv6 address");
    }
    e.length_ = sizeof in6;
    std::memcpy(&e.address_, &in6, sizeof in6);
    return e;
  }
  const auto colon = text.rfind(':');
  if (colon == std::string_view::npos)
    throw std::invalid_argument("bad address '" + e.text_ + "': no port (expected IP:PORT)");
  // localhost is the one name: it means 127.0.0.1, as in the reactor library (no resolver).
  const std::string host =
      text.substr(0, colon) == "localhost" ? "127.0.0.1" : std::string(text.substr(0, colon));
  sockaddr_in in4{};
  in4.sin_family = AF_INET;
  in4.sin_port = htons(parse_port(text.substr(colon + 1), text));
  if (::inet_pton(AF_INET, host.c_str(), &in4.sin_addr) != 1) {
    throw std::invalid_argument("bad address '" + e.text_ +
                                "': not a numeric IPv4 address or localhost (names are not "
                                "resolved)");
  }
  e.length_ = sizeof in4;
  std::memcpy(&e.address_, &in4, sizeof in4);
  return e;
}

int Endpoint::open_socket(std::error_code& ec) const noexcept {
  const int family = address_.ss_family;
  const int fd = ::socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    ec = last_error();
    return -1;
  }
  if (family != AF_UNIX) {
    const int one = 1;
    if (::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) != 0) {
      ec = last_error();
      ::close(fd);
      return -1;
    }
  }
  ec.clear();
  return fd;
}

ConnectStart Endpoint::start_connect(int fd, std::error_code& ec) const noexcept {
  ec.clear();
  if (::connect(fd, reinterpret_cast<const sockaddr*>(&address_), length_) == 0) {
    return ConnectStart::kDone;
  }
  const int err = errno;
  ec = {err, std::system_category()};
  switch (err) {
    case EINPROGRESS:
      ec.clear();
      return ConnectStart::kPending;
    case EAGAIN:
    case EADDRNOTAVAIL:
      return ConnectStart::kRetry;
    default:
      return ConnectStart::kFailed;
  }
}

std::error_code Endpoint::connect_result(int fd) noexcept {
  int err = 0;
  socklen_t len = sizeof err;
  if (::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) return last_error();
  return {err, std::system_category()};
}

}  // namespace reactor::bench::load
