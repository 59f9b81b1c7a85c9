// SPDX-License-Identifier: MIT
#include "reactor/net/address.hpp"

#include <arpa/inet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sys/un.h>

#include <cstddef>
#include <cstring>

namespace reactor {

namespace {

constexpr std::size_t kMaxText = 4096;
constexpr std::string_view kUnixPrefix = "unix:";
constexpr std::size_t kSunPathSize = sizeof(sockaddr_un::sun_path);  // 108 on Linux
constexpr std::size_t kMaxPath = kSunPathSize - 1;                   // room for the NUL
constexpr std::size_t kMaxAbstract = 106;                            // the documented limit
constexpr socklen_t kPathOffset = offsetof(sockaddr_un, sun_path);

std::error_code invalid() noexcept { return std::make_error_code(std::errc::invalid_argument); }

bool all_digits(std::string_view s) noexcept {
  for (char c : s)
    if (c < '0' || c > '9') return false;
  return !s.empty();
}

// Decimal 0..65535, one to five digits (leading zeros allowed), nothing else: no sign, no
// spaces, no hex.
bool parse_port(std::string_view s, std::uint16_t& port) noexcept {
  if (s.size() > 5 || !all_digits(s)) return false;
  std::uint32_t v = 0;
  for (char c : s) v = v * 10 + static_cast<std::uint32_t>(c - '0');
  if (v > 65535) return false;
  port = static_cast<std::uint16_t>(v);
  return true;
}

// inet_pton wants a NUL-terminated string; a host too long for any numeric form is refused
// before copying.
template <std::size_t N>
bool to_cstr(std::string_view s, char (&out)[N]) noexcept {
  if (s.size() >= N) return false;
  std::memcpy(out, s.data(), s.size());
  out[s.size()] = '\0';
  return true;
}

// A scope id is a number or an interface name. Numbers first: they need no system call and
// are what to_string emits when an index has no name.
bool parse_scope(std::string_view s, std::uint32_t& scope) noexcept {
  if (all_digits(s)) {
    if (s.size() > 10) return false;
    std::uint64_t v = 0;
    for (char c : s) v = v * 10 + static_cast<std::uint64_t>(c - '0');
    if (v > UINT32_MAX) return false;
    scope = static_cast<std::uint32_t>(v);
    return true;
  }
  char name[IF_NAMESIZE];
  if (!to_cstr(s, name)) return false;
  scope = ::if_nametoindex(name);
  return scope != 0;
}

}  // namespace

Address Address::parse(std::string_view text, std::error_code& ec) noexcept {
  const char* why = nullptr;
  return parse(text, ec, why);
}

std::string_view Address::parse_error(std::string_view text) noexcept {
  std::error_code ec;
  const char* why = nullptr;
  (void)parse(text, ec, why);
  return ec && why != nullptr ? why : "";
}

Address Address::parse(std::string_view text, std::error_code& ec, const char*& why) noexcept {
  ec = invalid();
  auto refuse = [&why](const char* reason) {
    why = reason;
    return Address();
  };
  if (text.size() > kMaxText) return refuse("longer than 4096 bytes");
  if (text.find('\0') != std::string_view::npos) return refuse("contains a NUL byte");
  if (text.starts_with(kUnixPrefix)) {
    const std::string_view path = text.substr(kUnixPrefix.size());
    if (path.empty()) return refuse("empty Unix path");
    if (path == "@") return refuse("empty abstract name");
    if (path.front() == '@' && path.size() - 1 > kMaxAbstract)
      return refuse("abstract name longer than 106 bytes");
    if (path.front() != '@' && path.size() > kMaxPath)
      return refuse("Unix path longer than 107 bytes");
    return unix_socket(path, ec);
  }

  std::string_view host;
  std::string_view port_text;
  bool bracketed = !text.empty() && text.front() == '[';
  if (bracketed) {
    std::size_t close = text.find(']');
    if (close == std::string_view::npos) return refuse("no ']' after the IPv6 address");
    if (close + 1 >= text.size() || text[close + 1] != ':')
      return refuse("no port (expected [IPV6]:PORT)");
    host = text.substr(1, close - 1);
    port_text = text.substr(close + 2);
  } else {
    std::size_t colon = text.rfind(':');
    if (colon == std::string_view::npos)
      return refuse("no port (expected IP:PORT, [IPV6]:PORT, unix:/PATH or unix:@NAME)");
    host = text.substr(0, colon);
    port_text = text.substr(colon + 1);
    // An IPv6 address needs brackets, or "::1:80" would be ambiguous.
    if (host.find(':') != std::string_view::npos)
      return refuse("an IPv6 address needs brackets: [IPV6]:PORT");
  }
  if (host.empty()) return refuse("no host before the port");
  std::uint16_t port = 0;
  if (!parse_port(port_text, port)) {
    return refuse(all_digits(port_text) ? "port out of range 0..65535"
                                        : "the port is not a decimal number");
  }

  Address a;
  if (bracketed) {
    std::string_view scope_text;
    if (std::size_t pct = host.find('%'); pct != std::string_view::npos) {
      scope_text = host.substr(pct + 1);
      host = host.substr(0, pct);
      if (scope_text.empty()) return refuse("empty scope after '%'");
    }
    char buf[INET6_ADDRSTRLEN];
    sockaddr_in6 sin6{};
    sin6.sin6_family = AF_INET6;
    sin6.sin6_port = htons(port);
    if (!to_cstr(host, buf) || ::inet_pton(AF_INET6, buf, &sin6.sin6_addr) != 1)
      return refuse("not a numeric IPv6 address");
    if (!scope_text.empty() && !parse_scope(scope_text, sin6.sin6_scope_id))
      return refuse("unknown interface or scope id after '%'");
    std::memcpy(&a.storage_, &sin6, sizeof sin6);
    a.size_ = sizeof sin6;
    a.family_ = Family::ipv6;
  } else if (host == "localhost") {
    a = ipv4_loopback(port);
  } else {
    char buf[INET_ADDRSTRLEN];
    in_addr ip{};
    if (!to_cstr(host, buf) || ::inet_pton(AF_INET, buf, &ip) != 1)
      return refuse("not a numeric IPv4 address or localhost (names are not resolved)");
    a = ipv4(ntohl(ip.s_addr), port);
  }
  ec.clear();
  return a;
}

Address Address::parse(std::string_view text) {
  std::error_code ec;
  const char* why = nullptr;
  Address a = parse(text, ec, why);
  if (ec) {
    // Hostile text can be long or unprintable; quote a bounded, printable prefix.
    std::string shown;
    for (char c : text.substr(0, 128)) shown += (c >= 0x20 && c < 0x7f) ? c : '?';
    if (text.size() > 128) shown += "...";
    std::string message = "invalid address \"" + shown + "\"";
    if (why != nullptr) message += std::string(" (") + why + ")";
    throw std::system_error(ec, message);
  }
  return a;
}

Address Address::ipv4(std::uint32_t host_order_ip, std::uint16_t port) noexcept {
  Address a;
  sockaddr_in sin{};
  sin.sin_family = AF_INET;
  sin.sin_port = htons(port);
  sin.sin_addr.s_addr = htonl(host_order_ip);
  std::memcpy(&a.storage_, &sin, sizeof sin);
  a.size_ = sizeof sin;
  a.family_ = Family::ipv4;
  return a;
}

Address Address::ipv6_loopback(std::uint16_t port) noexcept {
  Address a;
  sockaddr_in6 sin6{};
  sin6.sin6_family = AF_INET6;
  sin6.sin6_port = htons(port);
  sin6.sin6_addr = in6addr_loopback;
  std::memcpy(&a.storage_, &sin6, sizeof sin6);
  a.size_ = sizeof sin6;
  a.family_ = Family::ipv6;
  return a;
}

Address Address::unix_socket(std::string_view path, std::error_code& ec) noexcept {
  ec = invalid();
  if (path.empty() || path.find('\0') != std::string_view::npos) return {};
  Address a;
  sockaddr_un sun{};
  sun.sun_family = AF_UNIX;
  if (path.front() == '@') {
    // Abstract: a leading NUL, then the name; the length, not a terminator, ends it.
    std::string_view name = path.substr(1);
    if (name.empty() || name.size() > kMaxAbstract) return {};
    std::memcpy(sun.sun_path + 1, name.data(), name.size());
    a.size_ = static_cast<socklen_t>(kPathOffset + 1 + name.size());
    a.family_ = Family::unix_abstract;
  } else {
    if (path.size() > kMaxPath) return {};
    std::memcpy(sun.sun_path, path.data(), path.size());
    a.size_ = static_cast<socklen_t>(kPathOffset + path.size() + 1);
    a.family_ = Family::unix_path;
  }
  std::memcpy(&a.storage_, &sun, sizeof sun);
  ec.clear();
  return a;
}

Address Address::from_native(const sockaddr* sa, socklen_t len, std::error_code& ec) noexcept {
  ec = invalid();
  if (sa == nullptr || len < static_cast<socklen_t>(sizeof(sa_family_t)) ||
      len > static_cast<socklen_t>(sizeof(sockaddr_storage)))
    return {};
  Address a;
  switch (sa->sa_family) {
    case AF_INET:
      if (len < static_cast<socklen_t>(sizeof(sockaddr_in))) return {};
      std::memcpy(&a.storage_, sa, sizeof(sockaddr_in));
      a.size_ = sizeof(sockaddr_in);
      a.family_ = Family::ipv4;
      break;
    case AF_INET6:
      if (len < static_cast<socklen_t>(sizeof(sockaddr_in6))) return {};
      std::memcpy(&a.storage_, sa, sizeof(sockaddr_in6));
      a.size_ = sizeof(sockaddr_in6);
      a.family_ = Family::ipv6;
      break;
    case AF_UNIX: {
      if (len > static_cast<socklen_t>(sizeof(sockaddr_un))) return {};
      std::memcpy(&a.storage_, sa, len);
      auto* sun = reinterpret_cast<sockaddr_un*>(&a.storage_);
      std::size_t n = len > kPathOffset ? len - kPathOffset : 0;
      if (n == 0) {
        // Unnamed (socketpair, unbound client): just the family.
        a.size_ = static_cast<socklen_t>(sizeof(sa_family_t));
        a.family_ = Family::unix_path;
      } else if (sun->sun_path[0] == '\0') {
        a.size_ = len;
        a.family_ = Family::unix_abstract;
      } else {
        // The kernel may or may not count the terminator, and a 108-byte path has none.
        // Normalise to "path + NUL when it fits", the form unix_socket builds, so that
        // operator== agrees with it; bytes past the path are cleared for the same reason.
        std::size_t path = ::strnlen(sun->sun_path, n);
        std::memset(sun->sun_path + path, 0, kSunPathSize - path);
        a.size_ = static_cast<socklen_t>(kPathOffset + std::min(path + 1, kSunPathSize));
        a.family_ = Family::unix_path;
      }
      break;
    }
    default:
      return {};
  }
  ec.clear();
  return a;
}

int Address::domain() const noexcept {
  switch (family_) {
    case Family::ipv4:
      return AF_INET;
    case Family::ipv6:
      return AF_INET6;
    case Family::unix_path:
    case Family::unix_abstract:
      return AF_UNIX;
    case Family::none:
      break;
  }
  return AF_UNSPEC;
}

std::uint16_t Address::port() const noexcept {
  if (family_ == Family::ipv4)
    return ntohs(reinterpret_cast<const sockaddr_in*>(&storage_)->sin_port);
  if (family_ == Family::ipv6)
    return ntohs(reinterpret_cast<const sockaddr_in6*>(&storage_)->sin6_port);
  return 0;
}

Address Address::with_port(std::uint16_t port) const noexcept {
  Address a = *this;
  if (family_ == Family::ipv4) reinterpret_cast<sockaddr_in*>(&a.storage_)->sin_port = htons(port);
  if (family_ == Family::ipv6)
    reinterpret_cast<sockaddr_in6*>(&a.storage_)->sin6_port = htons(port);
  return a;
}

std::string Address::unix_path() const {
  if (family_ != Family::unix_path || size_ <= kPathOffset) return {};
  auto* sun = reinterpret_cast<const sockaddr_un*>(&storage_);
  return std::string(sun->sun_path, ::strnlen(sun->sun_path, size_ - kPathOffset));
}

// Every form parse() accepts comes back out as itself. The Unix addresses the kernel allows
// beyond parse()'s grammar (listed on to_string() in the header) print as they are: parse()
// refuses "unix:" alone, "unix:@" alone, a 108-byte path, and abstract names of 107 bytes or
// with NUL bytes, and reads a path beginning with '@' as an abstract name.
std::string Address::to_string() const {
  switch (family_) {
    case Family::none:
      return {};
    case Family::ipv4: {
      auto* sin = reinterpret_cast<const sockaddr_in*>(&storage_);
      char buf[INET_ADDRSTRLEN];
      ::inet_ntop(AF_INET, &sin->sin_addr, buf, sizeof buf);
      return std::string(buf) + ':' + std::to_string(ntohs(sin->sin_port));
    }
    case Family::ipv6: {
      auto* sin6 = reinterpret_cast<const sockaddr_in6*>(&storage_);
      char buf[INET6_ADDRSTRLEN];
      ::inet_ntop(AF_INET6, &sin6->sin6_addr, buf, sizeof buf);
      std::string out = "[";
      out += buf;
      if (sin6->sin6_scope_id != 0) {
        char name[IF_NAMESIZE];
        out += '%';
        if (::if_indextoname(sin6->sin6_scope_id, name) != nullptr)
          out += name;
        else
          out += std::to_string(sin6->sin6_scope_id);
      }
      return out + "]:" + std::to_string(ntohs(sin6->sin6_port));
    }
    case Family::unix_path:
    case Family::unix_abstract: {
      auto* sun = reinterpret_cast<const sockaddr_un*>(&storage_);
      std::string out(kUnixPrefix);
      if (size_ <= kPathOffset) return out;
      std::size_t n = size_ - kPathOffset;
      if (family_ == Family::unix_abstract) {
        out += '@';
        out.append(sun->sun_path + 1, n - 1);
      } else {
        out.append(sun->sun_path, ::strnlen(sun->sun_path, n));
      }
      return out;
    }
  }
  return {};
}

bool operator==(const Address& a, const Address& b) noexcept {
  if (a.family_ != b.family_ || a.size_ != b.size_) return false;
  switch (a.family_) {
    case Address::Family::none:
      return true;
    case Address::Family::ipv4: {
      auto* x = reinterpret_cast<const sockaddr_in*>(&a.storage_);
      auto* y = reinterpret_cast<const sockaddr_in*>(&b.storage_);
      return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
    }
    case Address::Family::ipv6: {
      // Flow info is per packet, not part of the address.
      auto* x = reinterpret_cast<const sockaddr_in6*>(&a.storage_);
      auto* y = reinterpret_cast<const sockaddr_in6*>(&b.storage_);
      return x->sin6_port == y->sin6_port && x->sin6_scope_id == y->sin6_scope_id &&
             std::memcmp(&x->sin6_addr, &y->sin6_addr, sizeof x->sin6_addr) == 0;
    }
    case Address::Family::unix_path:
    case Address::Family::unix_abstract:
      return std::memcmp(&a.storage_, &b.storage_, a.size_) == 0;
  }
  return false;
}

}  // namespace reactor
