// SPDX-License-Identifier: MIT
// fuzz_address: every way reactor::Address is built from outside data (tests-required H3,
// contract in reactor/net/address.hpp).
//
// The first byte picks the entry point; the rest of the input is its argument:
//   - Address::parse(text, ec) and Address::parse(text) (throwing) on the raw bytes, NULs and
//     all, and on texts up to 16 KiB made of a repeated unit (past the 4096-byte limit);
//   - Address::unix_socket(path, ec);
//   - Address::from_native(sockaddr bytes, len) with every family byte and length, and
//     Address::ipv4 / with_port on fuzzer numbers.
// What must hold:
//   - failure is EINVAL with an empty address, and both parse() overloads agree (the
//     throwing one throws std::system_error carrying EINVAL); never a crash;
//   - text the header forbids (over 4096 bytes, a NUL, no port, a port over 65535, an empty
//     host) never parses;
//   - success gives a consistent value: family, domain(), is_ip()/is_unix(), port() as the
//     text said, a native size that fits sockaddr_storage, from_native(native()) equal to it;
//   - to_string() reads back through parse() to an equal address whose text is the same
//     (a fixed point); for unix_socket() the text is exactly "unix:" + path;
//   - an address from from_native() also round-trips, except the Unix forms the header names
//     (on to_string) as having no text parse() reads back: those parse() must refuse, or
//     (a path beginning with '@') read as the abstract name the header says.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <system_error>

#include "fuzz/fuzz_input.hpp"
#include "reactor/net/address.hpp"

namespace {

using reactor::Address;
using reactor::fuzz::Input;
using Family = Address::Family;

constexpr std::size_t kMaxText = 4096;
constexpr std::size_t kPathOffset = offsetof(sockaddr_un, sun_path);

bool is_einval(const std::error_code& ec) {
  return ec == std::make_error_code(std::errc::invalid_argument);
}

// Properties every non-empty address has, however it was made.
void check_consistent(const Address& a) {
  FUZZ_CHECK(!a.empty());
  FUZZ_CHECK(a.native_size() > 0 && a.native_size() <= sizeof(sockaddr_storage));
  FUZZ_CHECK(a.native()->sa_family == a.domain());
  switch (a.family()) {
    case Family::ipv4:
      FUZZ_CHECK(a.domain() == AF_INET && a.is_ip() && !a.is_unix());
      FUZZ_CHECK(a.native_size() == sizeof(sockaddr_in));
      break;
    case Family::ipv6:
      FUZZ_CHECK(a.domain() == AF_INET6 && a.is_ip() && !a.is_unix());
      FUZZ_CHECK(a.native_size() == sizeof(sockaddr_in6));
      break;
    case Family::unix_path:
    case Family::unix_abstract:
      FUZZ_CHECK(a.domain() == AF_UNIX && a.is_unix() && !a.is_ip());
      FUZZ_CHECK(a.native_size() <= sizeof(sockaddr_un));
      FUZZ_CHECK(a.port() == 0);
      break;
    case Family::none:
      FUZZ_CHECK(false);
  }
  FUZZ_CHECK(a == a);

  // Through the kernel's form and back.
  std::error_code ec;
  const Address native = Address::from_native(a.native(), a.native_size(), ec);
  FUZZ_CHECK(!ec);
  FUZZ_CHECK(native == a);

  // Another port: only IP addresses change, and only their port.
  const std::uint16_t other = static_cast<std::uint16_t>(a.port() ^ 0x5a5a);
  const Address moved = a.with_port(other);
  if (a.is_ip()) {
    FUZZ_CHECK(moved.port() == other && moved.family() == a.family());
    FUZZ_CHECK(moved.with_port(a.port()) == a);
  } else {
    FUZZ_CHECK(moved == a);
  }
}

// to_string() parses back to an equal address, and is a fixed point.
void check_round_trip(const Address& a) {
  const std::string text = a.to_string();
  std::error_code ec;
  const Address again = Address::parse(text, ec);
  if (ec) {
    std::fprintf(stderr, "to_string() gave \"%s\" (%zu bytes), which parse() refuses: %s\n",
                 text.c_str(), text.size(), ec.message().c_str());
  }
  FUZZ_CHECK(!ec);
  FUZZ_CHECK(again == a);
  FUZZ_CHECK(again.to_string() == text);
}

// The port a text that parsed must have carried: its digits after the last ':'.
void check_port_text(std::string_view text, const Address& a) {
  const std::size_t colon = text.rfind(':');
  FUZZ_CHECK(colon != std::string_view::npos);
  const std::string_view digits = text.substr(colon + 1);
  FUZZ_CHECK(!digits.empty() && digits.size() <= 5);
  unsigned value = 0;
  for (char c : digits) {
    FUZZ_CHECK(c >= '0' && c <= '9');
    value = value * 10 + static_cast<unsigned>(c - '0');
  }
  FUZZ_CHECK(value <= 65535 && value == a.port());
  const std::string_view host = text.substr(0, colon);
  FUZZ_CHECK(!host.empty() && host != "[]");
}

void parse_text(std::string_view text) {
  std::error_code ec = std::make_error_code(std::errc::io_error);
  const Address a = Address::parse(text, ec);

  // The throwing overload agrees.
  bool threw = false;
  try {
    const Address b = Address::parse(text);
    FUZZ_CHECK(b == a);
  } catch (const std::system_error& e) {
    threw = true;
    FUZZ_CHECK(is_einval(e.code()));
  }
  FUZZ_CHECK(threw == static_cast<bool>(ec));

  if (ec) {
    FUZZ_CHECK(is_einval(ec));
    FUZZ_CHECK(a.empty() && a.family() == Family::none && a.domain() == AF_UNSPEC);
    return;
  }
  // What the header forbids never parses.
  FUZZ_CHECK(text.size() <= kMaxText);
  FUZZ_CHECK(text.find('\0') == std::string_view::npos);

  check_consistent(a);
  if (text.starts_with("unix:")) {
    FUZZ_CHECK(a.is_unix());
    FUZZ_CHECK(a.to_string() == text);  // Unix texts have one spelling
  } else {
    FUZZ_CHECK(a.is_ip());
    FUZZ_CHECK((a.family() == Family::ipv6) == text.starts_with("["));
    check_port_text(text, a);
  }
  check_round_trip(a);
}

void unix_socket(std::string_view path) {
  std::error_code ec = std::make_error_code(std::errc::io_error);
  const Address a = Address::unix_socket(path, ec);
  if (ec) {
    FUZZ_CHECK(is_einval(ec));
    FUZZ_CHECK(a.empty());
    return;
  }
  FUZZ_CHECK(path.find('\0') == std::string_view::npos && !path.empty());
  FUZZ_CHECK(a.family() == (path.front() == '@' ? Family::unix_abstract : Family::unix_path));
  check_consistent(a);
  FUZZ_CHECK(a.to_string() == "unix:" + std::string(path));
  check_round_trip(a);
}

// The Unix forms only from_native() makes, which the header (on to_string) says have no
// text that parse() reads back to them.
enum class Text { round_trips, refused, reads_as_abstract };
Text text_form(const Address& a) {
  if (!a.is_unix()) return Text::round_trips;
  const std::size_t n = a.native_size() - std::min<std::size_t>(a.native_size(), kPathOffset);
  if (n == 0) return Text::refused;  // unnamed
  const char* path = reinterpret_cast<const sockaddr_un*>(a.native())->sun_path;
  if (a.family() == Family::unix_path) {
    if (::strnlen(path, n) >= sizeof(sockaddr_un::sun_path)) return Text::refused;
    if (path[0] != '@') return Text::round_trips;
    return path[1] == '\0' ? Text::refused : Text::reads_as_abstract;
  }
  const std::size_t name = n - 1;  // after the leading NUL
  const bool refused = name == 0 || name > 106 || std::memchr(path + 1, '\0', name) != nullptr;
  return refused ? Text::refused : Text::round_trips;
}

void from_native(Input& in) {
  // The family is chosen among the interesting ones most of the time; the length is any
  // value up to past sockaddr_storage; the bytes are the rest of the input.
  alignas(sockaddr_storage) unsigned char raw[sizeof(sockaddr_storage) + 64] = {};
  const std::uint8_t how = in.u8();
  const socklen_t len = in.u8() % (sizeof raw + 1);
  const std::string_view bytes = in.take(sizeof raw);
  std::memcpy(raw, bytes.data(), bytes.size());
  static constexpr sa_family_t kFamilies[] = {AF_INET, AF_INET6, AF_UNIX, AF_UNIX};
  if (how < 192) {
    const sa_family_t f = kFamilies[how % 4];
    std::memcpy(raw + offsetof(sockaddr, sa_family), &f, sizeof f);
  }
  std::error_code ec = std::make_error_code(std::errc::io_error);
  const Address a = Address::from_native(reinterpret_cast<const sockaddr*>(raw), len, ec);
  if (ec) {
    FUZZ_CHECK(is_einval(ec));
    FUZZ_CHECK(a.empty());
    return;
  }
  FUZZ_CHECK(len <= sizeof(sockaddr_storage));
  check_consistent(a);
  const std::string text = a.to_string();
  std::error_code pec;
  const Address back = Address::parse(text, pec);
  switch (text_form(a)) {
    case Text::round_trips:
      break;
    case Text::refused:
      FUZZ_CHECK(is_einval(pec) && back.empty());
      return;
    case Text::reads_as_abstract:
      FUZZ_CHECK(!pec && back.family() == Family::unix_abstract);
      FUZZ_CHECK(back.to_string() == text);
      return;
  }
  check_round_trip(a);
}

void numbers(Input& in) {
  const std::uint32_t ip = in.u32();
  const std::uint16_t port = in.u16();
  const Address a = Address::ipv4(ip, port);
  check_consistent(a);
  FUZZ_CHECK(a.port() == port);
  check_round_trip(a);
  const Address six = Address::ipv6_loopback(port);
  check_consistent(six);
  FUZZ_CHECK(six.port() == port);
  check_round_trip(six);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  Input in(data, size);
  switch (in.u8() % 8) {
    case 0:
    case 1:
    case 2:
      parse_text(in.rest());
      break;
    case 3: {
      // Long texts, which libFuzzer's default length limit (4096) would never make: a unit
      // repeated (up to 16 KiB in all), then the rest of the input, e.g. a 5,000-byte host
      // and a port.
      const std::size_t times = in.u16();
      const std::string_view unit = in.bytes(255);
      std::string text;
      for (std::size_t i = 0; i < times && text.size() + unit.size() <= 16 * 1024; ++i)
        text += unit;
      text += in.rest();
      parse_text(text);
      break;
    }
    case 4:
      unix_socket(in.rest());
      break;
    case 5:
    case 6:
      from_native(in);
      break;
    default:
      numbers(in);
      break;
  }
  return 0;
}
