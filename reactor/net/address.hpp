// SPDX-License-Identifier: MIT
#pragma once
/// \file
/// Socket addresses: IPv4, IPv6, Unix path and Linux abstract Unix names, as values.
///
/// Text forms accepted by Address::parse (and produced by to_string):
///   "127.0.0.1:8080"     IPv4, numeric
///   "localhost:8080"     the one name accepted; means 127.0.0.1 (no DNS in a parser)
///   "[::1]:8080"         IPv6, numeric, in brackets; "[fe80::1%lo]:80" with a scope
///   "unix:/run/x.sock"   Unix path (at most 107 bytes)
///   "unix:@name"         Linux abstract name (at most 106 bytes)
/// Ports are decimal 0..65535 (0: let the kernel pick, for binding). Anything else, an empty
/// host, embedded NUL bytes, or text longer than 4096 bytes gets EINVAL, never a crash.

#include <sys/socket.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <system_error>

#include "reactor/export.hpp"

namespace reactor {

/// A socket address as a value: an IPv4 or IPv6 address with a port, a Unix path, a Linux
/// abstract name, or empty. Copyable, comparable with ==; the file comment gives its text
/// forms.
class REACTOR_API Address {
 public:
  /// What kind of address it is; none for an empty one.
  enum class Family : std::uint8_t { none, ipv4, ipv6, unix_path, unix_abstract };

  /// An empty address (family none).
  Address() noexcept = default;

  /// Parses one of the text forms above. EINVAL (and an empty address) on anything else.
  static Address parse(std::string_view text, std::error_code& ec) noexcept;
  /// As above; throws std::system_error(EINVAL) with the text and parse_error() in the message.
  static Address parse(std::string_view text);
  /// Why parse() refuses `text`, in a few words for a message ("port out of range 0..65535",
  /// "not a numeric IPv4 address or localhost (names are not resolved)", "Unix path longer
  /// than 107 bytes", ...); empty when parse() accepts it. Never resolves a name.
  static std::string_view parse_error(std::string_view text) noexcept;

  /// An IPv4 address from a 32-bit address in host byte order (0x7f000001 is 127.0.0.1) and a
  /// port.
  static Address ipv4(std::uint32_t host_order_ip, std::uint16_t port) noexcept;
  /// 127.0.0.1 with `port`.
  static Address ipv4_loopback(std::uint16_t port) noexcept { return ipv4(0x7f000001, port); }
  /// 0.0.0.0 (every IPv4 interface, for binding) with `port`.
  static Address ipv4_any(std::uint16_t port) noexcept { return ipv4(0, port); }
  /// [::1] with `port`.
  static Address ipv6_loopback(std::uint16_t port) noexcept;
  /// A Unix path or, with a leading '@', an abstract name. EINVAL when too long or with NUL.
  static Address unix_socket(std::string_view path, std::error_code& ec) noexcept;
  /// From what accept/recvfrom/getsockname filled in. EINVAL for an unknown family.
  static Address from_native(const sockaddr* sa, socklen_t len, std::error_code& ec) noexcept;

  /// The family; empty(): none; is_ip(): ipv4 or ipv6; is_unix(): a Unix path or abstract name.
  ///@{
  Family family() const noexcept { return family_; }
  bool empty() const noexcept { return family_ == Family::none; }
  bool is_ip() const noexcept { return family_ == Family::ipv4 || family_ == Family::ipv6; }
  bool is_unix() const noexcept {
    return family_ == Family::unix_path || family_ == Family::unix_abstract;
  }
  ///@}
  /// AF_INET, AF_INET6, AF_UNIX (AF_UNSPEC when empty).
  int domain() const noexcept;
  /// The port of an IP address, 0 otherwise.
  std::uint16_t port() const noexcept;
  /// The same address with another port (IP only; others are returned unchanged).
  Address with_port(std::uint16_t port) const noexcept;

  /// The file-system path of a Unix path address (what unlink() takes); empty for an abstract
  /// name, an unnamed socket and every non-Unix address.
  std::string unix_path() const;

  /// For bind/connect/sendto.
  const sockaddr* native() const noexcept { return reinterpret_cast<const sockaddr*>(&storage_); }
  /// The length of native()'s address, as bind/connect/sendto take it.
  socklen_t native_size() const noexcept { return size_; }

  /// The text form, which parse() reads back to an equal address, for every address parse(),
  /// ipv4(), ipv6_loopback() and unix_socket() make. Only from_native() can make the Unix
  /// addresses that have no such text, because the kernel allows more than parse() does:
  /// an unnamed socket ("unix:"), a path of all 108 bytes with no terminator, an empty
  /// abstract name ("unix:@"), and abstract names of 107 bytes or holding NUL bytes (printed
  /// as they are) are refused by parse() with EINVAL. A path that begins with '@' (a relative
  /// file name) prints as it is, and that text parses as the abstract name after the '@' (or,
  /// for "@" alone, is refused): the grammar has no spelling for such a path.
  std::string to_string() const;

  friend bool operator==(const Address& a, const Address& b) noexcept;

 private:
  // parse() with the reason for a refusal (nullptr on success).
  static Address parse(std::string_view text, std::error_code& ec, const char*& why) noexcept;

  sockaddr_storage storage_{};
  socklen_t size_ = 0;
  Family family_ = Family::none;
};

}  // namespace reactor
