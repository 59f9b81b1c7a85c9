// SPDX-License-Identifier: MIT
#pragma once
/// \file
/// An allow-list of CIDR ranges, ready to be a server's verify_request.
///
///   AccessList allow;
///   allow.add("127.0.0.0/8");  allow.add("::1/128");
///   options.verify_request = allow;   // copies the list
///
/// - IPv4 and IPv6 ranges; an IPv4-mapped IPv6 client (\::ffff:10.0.0.1) matches IPv4 ranges.
/// - A bare address means a single host (/32 or /128). Host bits past the prefix are ignored
///   ("10.1.2.3/8" is 10.0.0.0/8).
/// - Unix-socket clients carry no IP; they are allowed only after allow_unix().
/// - An empty list allows nobody.
/// - Thread rule: add() before sharing; allows() may then run on any number of threads.

#include <array>
#include <cstdint>
#include <string_view>
#include <system_error>
#include <vector>

#include "reactor/export.hpp"
#include "reactor/net/address.hpp"

namespace reactor {

/// A list of allowed CIDR ranges, callable as a ServerOptions::verify_request. A value:
/// copyable; the file comment is its contract.
class REACTOR_API AccessList {
 public:
  /// Adds "a.b.c.d/len", "a.b.c.d", "x:y::z/len" or "x:y::z". EINVAL for anything else
  /// (a bad address, a prefix length out of range, trailing text); the list is unchanged.
  std::error_code add(std::string_view cidr) noexcept;
  /// Lets Unix-socket clients in.
  void allow_unix(bool on = true) noexcept { allow_unix_ = on; }

  /// True when `client` falls in one of the ranges (a Unix client: when allow_unix() was
  /// called); false for an empty list.
  bool allows(const Address& client) const noexcept;
  /// allows(), so that the list can be a verify_request.
  bool operator()(const Address& client) const noexcept { return allows(client); }

  /// Number of ranges added.
  std::size_t size() const noexcept { return ranges_.size(); }

 private:
  struct Range {
    std::array<std::uint8_t, 16> bytes{};  // IPv4 as ::ffff:a.b.c.d
    unsigned prefix = 0;                   // over the 128 bits
  };
  std::vector<Range> ranges_;
  bool allow_unix_ = false;
};

}  // namespace reactor
