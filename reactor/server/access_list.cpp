// SPDX-License-Identifier: MIT
#include "reactor/server/access_list.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <charconv>
#include <cstring>
#include <string>

namespace reactor {

namespace {

using Bytes = std::array<std::uint8_t, 16>;

// IPv4 is kept as an IPv4-mapped IPv6 address, so one comparison serves both families.
Bytes mapped(const in_addr& v4) noexcept {
  Bytes b{};
  b[10] = b[11] = 0xff;
  std::memcpy(b.data() + 12, &v4, 4);
  return b;
}

bool prefix_matches(const Bytes& a, const Bytes& b, unsigned prefix) noexcept {
  unsigned full = prefix / 8;
  if (std::memcmp(a.data(), b.data(), full) != 0) return false;
  unsigned rest = prefix % 8;
  if (rest == 0) return true;
  auto mask = static_cast<std::uint8_t>(0xff << (8 - rest));
  return (a[full] & mask) == (b[full] & mask);
}

}  // namespace

std::error_code AccessList::add(std::string_view cidr) noexcept {
  const auto invalid = std::make_error_code(std::errc::invalid_argument);
  if (cidr.empty() || cidr.size() > 64 || cidr.find('\0') != std::string_view::npos) {
    return invalid;
  }
  std::string_view host = cidr;
  std::string_view length;
  if (auto slash = cidr.find('/'); slash != std::string_view::npos) {
    host = cidr.substr(0, slash);
    length = cidr.substr(slash + 1);
    if (length.empty()) return invalid;
  }
  std::string text(host);  // inet_pton needs a NUL-terminated string
  Range range;
  unsigned max_prefix = 0;
  in_addr v4{};
  in6_addr v6{};
  if (::inet_pton(AF_INET, text.c_str(), &v4) == 1) {
    range.bytes = mapped(v4);
    max_prefix = 32;
  } else if (::inet_pton(AF_INET6, text.c_str(), &v6) == 1) {
    std::memcpy(range.bytes.data(), &v6, 16);
    max_prefix = 128;
  } else {
    return invalid;
  }
  unsigned prefix = max_prefix;
  if (!length.empty()) {
    auto [end, err] = std::from_chars(length.data(), length.data() + length.size(), prefix);
    if (err != std::errc{} || end != length.data() + length.size() || prefix > max_prefix) {
      return invalid;
    }
  }
  range.prefix = prefix + (128 - max_prefix);  // an IPv4 prefix counts the 96 mapped bits
  ranges_.push_back(range);
  return {};
}

bool AccessList::allows(const Address& client) const noexcept {
  if (client.is_unix()) return allow_unix_;
  Bytes bytes{};
  if (client.family() == Address::Family::ipv4) {
    bytes = mapped(reinterpret_cast<const sockaddr_in*>(client.native())->sin_addr);
  } else if (client.family() == Address::Family::ipv6) {
    std::memcpy(bytes.data(), &reinterpret_cast<const sockaddr_in6*>(client.native())->sin6_addr,
                16);
  } else {
    return false;
  }
  for (const Range& r : ranges_) {
    if (prefix_matches(r.bytes, bytes, r.prefix)) return true;
  }
  return false;
}

}  // namespace reactor
