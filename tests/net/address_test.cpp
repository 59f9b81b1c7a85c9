// SPDX-License-Identifier: MIT
// Pure unit tests of reactor::Address (no loop, no backend), including hostile address text.
#include "reactor/net/address.hpp"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstddef>
#include <cstring>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "tests/support/fds.hpp"

namespace {

using reactor::Address;
using Family = Address::Family;
using namespace std::string_literals;
using namespace std::string_view_literals;

constexpr std::size_t kPathOffset = offsetof(sockaddr_un, sun_path);

const sockaddr_in& in4(const Address& a) {
  return *reinterpret_cast<const sockaddr_in*>(a.native());
}
const sockaddr_in6& in6(const Address& a) {
  return *reinterpret_cast<const sockaddr_in6*>(a.native());
}
const sockaddr_un& un(const Address& a) {
  return *reinterpret_cast<const sockaddr_un*>(a.native());
}

/// Parses text that must be valid.
Address good(std::string_view text) {
  std::error_code ec;
  Address a = Address::parse(text, ec);
  EXPECT_FALSE(ec) << "\"" << text << "\": " << ec.message();
  EXPECT_FALSE(a.empty()) << text;
  return a;
}

/// Asserts that text is refused with EINVAL and an empty address, without a crash.
void expect_invalid(std::string_view text) {
  std::error_code ec;
  Address a = Address::parse(text, ec);
  EXPECT_EQ(ec, std::errc::invalid_argument) << "\"" << text << "\" (" << text.size() << " bytes)";
  EXPECT_TRUE(a.empty()) << text;
  EXPECT_EQ(a.family(), Family::none);
  EXPECT_EQ(a.native_size(), 0u);
}

/// parse(to_string(a)) gives back an equal address.
void expect_round_trip(const Address& a) {
  std::error_code ec;
  const std::string text = a.to_string();
  Address back = Address::parse(text, ec);
  EXPECT_FALSE(ec) << text;
  EXPECT_TRUE(back == a) << text;
  EXPECT_EQ(back.to_string(), text);
}

// --- valid forms ----------------------------------------------------------------------------

TEST(AddressTest, EmptyByDefault) {
  Address a;
  EXPECT_TRUE(a.empty());
  EXPECT_EQ(a.family(), Family::none);
  EXPECT_FALSE(a.is_ip());
  EXPECT_FALSE(a.is_unix());
  EXPECT_EQ(a.domain(), AF_UNSPEC);
  EXPECT_EQ(a.port(), 0);
  EXPECT_EQ(a.native_size(), 0u);
  EXPECT_EQ(a.to_string(), "");
  EXPECT_TRUE(a == Address());
  EXPECT_TRUE(a.with_port(80).empty());
}

TEST(AddressTest, ParsesIpv4) {
  Address a = good("127.0.0.1:8080");
  EXPECT_EQ(a.family(), Family::ipv4);
  EXPECT_TRUE(a.is_ip());
  EXPECT_FALSE(a.is_unix());
  EXPECT_EQ(a.domain(), AF_INET);
  EXPECT_EQ(a.port(), 8080);
  EXPECT_EQ(a.native_size(), sizeof(sockaddr_in));
  EXPECT_EQ(a.native()->sa_family, AF_INET);
  EXPECT_EQ(ntohl(in4(a).sin_addr.s_addr), 0x7f000001u);
  EXPECT_EQ(ntohs(in4(a).sin_port), 8080);
  EXPECT_EQ(a.to_string(), "127.0.0.1:8080");
  EXPECT_TRUE(a == Address::ipv4_loopback(8080));
  EXPECT_TRUE(good("0.0.0.0:0") == Address::ipv4_any(0));
  EXPECT_TRUE(good("255.255.255.255:65535") == Address::ipv4(0xffffffff, 65535));
  EXPECT_TRUE(good("10.1.2.3:1") == Address::ipv4(0x0a010203, 1));
}

TEST(AddressTest, LocalhostMeansIpv4Loopback) {
  Address a = good("localhost:80");
  EXPECT_TRUE(a == Address::ipv4_loopback(80));
  EXPECT_EQ(a.to_string(), "127.0.0.1:80");
  expect_invalid("localhost");
  expect_invalid("[localhost]:80");
  expect_invalid("localhost.:80");
  expect_invalid("example.com:80");  // no DNS in a parser
}

TEST(AddressTest, ParsesIpv6) {
  Address a = good("[::1]:80");
  EXPECT_EQ(a.family(), Family::ipv6);
  EXPECT_EQ(a.domain(), AF_INET6);
  EXPECT_EQ(a.port(), 80);
  EXPECT_EQ(a.native_size(), sizeof(sockaddr_in6));
  EXPECT_EQ(std::memcmp(&in6(a).sin6_addr, &in6addr_loopback, sizeof(in6_addr)), 0);
  EXPECT_EQ(in6(a).sin6_scope_id, 0u);
  EXPECT_TRUE(a == Address::ipv6_loopback(80));
  EXPECT_EQ(a.to_string(), "[::1]:80");
  EXPECT_EQ(good("[::]:0").to_string(), "[::]:0");
  EXPECT_EQ(good("[2001:DB8:0:0::1]:443").to_string(), "[2001:db8::1]:443");
  EXPECT_EQ(good("[::ffff:1.2.3.4]:5").to_string(), "[::ffff:1.2.3.4]:5");
}

TEST(AddressTest, Ipv6ScopeIds) {
  const unsigned lo = ::if_nametoindex("lo");
  if (lo == 0) GTEST_SKIP() << "no loopback interface named lo";
  Address by_name = good("[fe80::1%lo]:80");
  EXPECT_EQ(in6(by_name).sin6_scope_id, lo);
  EXPECT_EQ(by_name.to_string(), "[fe80::1%lo]:80");
  Address by_number = good("[fe80::1%" + std::to_string(lo) + "]:80");
  EXPECT_TRUE(by_number == by_name);
  EXPECT_EQ(by_number.to_string(), "[fe80::1%lo]:80") << "printed by name when it has one";
  EXPECT_FALSE(by_name == good("[fe80::1]:80")) << "the scope is part of the address";

  // An index with no interface is kept and printed as a number.
  Address unnamed = good("[fe80::1%4000000000]:80");
  EXPECT_EQ(in6(unnamed).sin6_scope_id, 4000000000u);
  EXPECT_EQ(unnamed.to_string(), "[fe80::1%4000000000]:80");
  expect_round_trip(unnamed);

  expect_invalid("[fe80::1%]:80");
  expect_invalid("[fe80::1%no-such-if0]:80");
  expect_invalid("[fe80::1%4294967296]:80");
  expect_invalid("[fe80::1%99999999999999999999]:80");
  expect_invalid("[fe80::1%" + std::string(100, 'x') + "]:80");
  expect_invalid("[fe80::1%lo%lo]:80");
  expect_invalid("[%lo]:80");
}

TEST(AddressTest, Ports) {
  EXPECT_EQ(good("1.2.3.4:0").port(), 0);
  EXPECT_EQ(good("1.2.3.4:65535").port(), 65535);
  EXPECT_EQ(good("1.2.3.4:080").port(), 80);
  EXPECT_EQ(good("1.2.3.4:00080").port(), 80);
  EXPECT_EQ(good("[::1]:00000").port(), 0);
  for (const char* port : {"65536", "99999", "100000", "000080", "-1", "+80", " 80", "80 ", "0x50",
                           "8a", "", "1e3", "4294967376", "18446744073709551696", "８０"}) {
    expect_invalid("1.2.3.4:"s + port);
    expect_invalid("[::1]:"s + port);
  }
}

TEST(AddressTest, UnixPath) {
  Address a = good("unix:/run/x.sock");
  EXPECT_EQ(a.family(), Family::unix_path);
  EXPECT_TRUE(a.is_unix());
  EXPECT_FALSE(a.is_ip());
  EXPECT_EQ(a.domain(), AF_UNIX);
  EXPECT_EQ(a.port(), 0);
  EXPECT_EQ(a.native()->sa_family, AF_UNIX);
  EXPECT_STREQ(un(a).sun_path, "/run/x.sock");
  EXPECT_EQ(a.native_size(), kPathOffset + std::strlen("/run/x.sock") + 1);
  EXPECT_EQ(a.to_string(), "unix:/run/x.sock");
  EXPECT_TRUE(a.with_port(80) == a) << "with_port leaves non-IP addresses alone";
  EXPECT_EQ(good("unix:relative.sock").to_string(), "unix:relative.sock");

  const std::string longest(107, 'p');
  Address max = good("unix:" + longest);
  EXPECT_EQ(std::string(un(max).sun_path), longest);
  EXPECT_EQ(max.native_size(), sizeof(sockaddr_un)) << "107 bytes and the NUL fill sun_path";
  expect_round_trip(max);
  expect_invalid("unix:" + longest + "p");
  expect_invalid("unix:/" + std::string(199, 'x'));  // 200 bytes
  expect_invalid("unix:");
  expect_invalid("unix:/tmp/a\0b"s);
  expect_invalid("unix:/tmp/ab\0"s);
  expect_invalid("UNIX:/tmp/a");
}

TEST(AddressTest, UnixAbstract) {
  Address a = good("unix:@name");
  EXPECT_EQ(a.family(), Family::unix_abstract);
  EXPECT_TRUE(a.is_unix());
  EXPECT_EQ(a.domain(), AF_UNIX);
  EXPECT_EQ(un(a).sun_path[0], '\0');
  EXPECT_EQ(std::string_view(un(a).sun_path + 1, 4), "name");
  EXPECT_EQ(a.native_size(), kPathOffset + 1 + 4) << "the length, not a NUL, ends the name";
  EXPECT_EQ(a.to_string(), "unix:@name");
  EXPECT_FALSE(a == good("unix:name")) << "abstract and path names differ";
  EXPECT_FALSE(a == good("unix:@name2"));
  EXPECT_FALSE(a == good("unix:@nam"));

  const std::string longest(106, 'n');
  Address max = good("unix:@" + longest);
  EXPECT_EQ(max.native_size(), kPathOffset + 1 + 106);
  expect_round_trip(max);
  expect_invalid("unix:@" + longest + "n");
  expect_invalid("unix:@");
  expect_invalid("unix:@a\0b"s);
  EXPECT_EQ(good("unix:@@x").to_string(), "unix:@@x");
}

TEST(AddressTest, UnixSocketFactory) {
  std::error_code ec;
  Address p = Address::unix_socket("/tmp/f.sock", ec);
  EXPECT_FALSE(ec);
  EXPECT_TRUE(p == good("unix:/tmp/f.sock"));
  Address abs = Address::unix_socket("@f", ec);
  EXPECT_FALSE(ec);
  EXPECT_TRUE(abs == good("unix:@f"));
  for (std::string_view bad : {""sv, "@"sv, "a\0b"sv, std::string_view("x\0", 2)}) {
    Address a = Address::unix_socket(bad, ec);
    EXPECT_EQ(ec, std::errc::invalid_argument) << bad.size();
    EXPECT_TRUE(a.empty());
  }
  const std::string too_long(108, 'x');
  EXPECT_TRUE(Address::unix_socket(too_long, ec).empty());
  EXPECT_EQ(ec, std::errc::invalid_argument);
  EXPECT_TRUE(Address::unix_socket("@" + std::string(107, 'x'), ec).empty());
  EXPECT_EQ(ec, std::errc::invalid_argument);
}

// --- Hostile text --------------------------------------------------------------------------

TEST(AddressTest, HostileTextIsRefused) {
  const std::vector<std::string> cases = {
      "",
      ":",
      ":80",       // empty host
      "[]:80",     // empty host in brackets
      "1.2.3.4:",  // empty port
      "1.2.3.4",   // no port
      "[::1]",     // no port
      "[::1]:",
      "[::1",  // unclosed
      "::1]:80",
      "::1:80",  // IPv6 needs brackets
      "[::1]80",
      "[::1]]:80",
      "[[::1]]:80",
      "[::1]:80:80",
      "1.2.3.4:80:80",
      "[1.2.3.4]:80",  // IPv4 in brackets
      "[::1%lo:80",
      "1.2.3:80",
      "1.2.3.4.5:80",
      "256.1.1.1:80",
      "01.2.3.4:80",
      "0x7f.0.0.1:80",
      "127.1:80",
      " 1.2.3.4:80",
      "1.2.3.4 :80",
      "1.2.3.4:80\n",
      "[ ::1]:80",
      "[::1 ]:80",
      "[::g]:80",
      "[1:2:3:4:5:6:7:8:9]:80",
      "127.0.0.1\0:80"s,  // embedded NUL
      "127.0.0.1:80\0"s,
      "\0"s,
      "[::1\0]:80"s,
      "\0unix:/tmp/x"s,
      "unix",
      "unix:@",
      std::string(5000, 'a') + ":80",  // 5,000-character host
      "[" + std::string(5000, ':') + "]:80",
      std::string(4097, '1'),
      "unix:" + std::string(4092, '/'),  // 4,097 bytes
      std::string(1 << 20, '['),         // 1 MiB of junk
  };
  for (const auto& text : cases) expect_invalid(text);
}

TEST(AddressTest, ThrowingParse) {
  EXPECT_TRUE(Address::parse("[::1]:80") == Address::ipv6_loopback(80));
  try {
    (void)Address::parse("nope:80");
    ADD_FAILURE() << "did not throw";
  } catch (const std::system_error& e) {
    EXPECT_EQ(e.code(), std::errc::invalid_argument);
    EXPECT_NE(std::string(e.what()).find("nope:80"), std::string::npos) << e.what();
  }
  // Hostile text gives a bounded, printable message.
  try {
    (void)Address::parse(std::string(5000, 'x') + "\0\n:80"s);
    ADD_FAILURE() << "did not throw";
  } catch (const std::system_error& e) {
    EXPECT_EQ(e.code(), std::errc::invalid_argument);
    const std::string what = e.what();
    EXPECT_LT(what.size(), 400u);
    EXPECT_EQ(what.find('\0'), std::string::npos);
  }
}

// A refusal comes with its reason in words, for a program to show its user; an accepted
// text has none. Names other than localhost are refused, never looked up.
TEST(AddressTest, ParseErrorSaysWhy) {
  struct Case {
    std::string text;
    std::string_view reason;
  };
  const std::vector<Case> cases = {
      {"127.0.0.1:99999", "port out of range 0..65535"},
      {"127.0.0.1:http", "the port is not a decimal number"},
      {"127.0.0.1", "no port"},
      {":80", "no host before the port"},
      {"example.com:80", "names are not resolved"},
      {"300.1.1.1:80", "not a numeric IPv4 address"},
      {"::1:80", "needs brackets"},
      {"[::1]", "no port"},
      {"[::1:80", "no ']'"},
      {"[nope]:80", "not a numeric IPv6 address"},
      {"unix:", "empty Unix path"},
      {"unix:@", "empty abstract name"},
      {"unix:/" + std::string(107, 'p'), "Unix path longer than 107 bytes"},
      {"unix:@" + std::string(107, 'n'), "abstract name longer than 106 bytes"},
      {std::string(5000, '1'), "longer than 4096 bytes"},
      {"1.2.3.4:80\0"s, "NUL"},
  };
  for (const Case& c : cases) {
    std::error_code ec;
    EXPECT_TRUE(Address::parse(c.text, ec).empty()) << c.text;
    EXPECT_EQ(ec, std::errc::invalid_argument) << c.text;
    const std::string_view why = Address::parse_error(c.text);
    EXPECT_NE(why.find(c.reason), std::string_view::npos) << c.text << ": " << why;
  }
  for (const char* good : {"127.0.0.1:0", "localhost:80", "[::1]:1", "unix:/x", "unix:@x"})
    EXPECT_EQ(Address::parse_error(good), "") << good;
  try {
    (void)Address::parse("127.0.0.1:70000");
    ADD_FAILURE() << "did not throw";
  } catch (const std::system_error& e) {
    EXPECT_NE(std::string(e.what()).find("port out of range"), std::string::npos) << e.what();
  }
}

TEST(AddressTest, EveryValidFormRoundTrips) {
  const std::vector<std::string> texts = {"127.0.0.1:8080",
                                          "0.0.0.0:0",
                                          "255.255.255.255:65535",
                                          "[::1]:80",
                                          "[::]:0",
                                          "[fe80::1]:1",
                                          "[2001:db8::1]:443",
                                          "[::ffff:1.2.3.4]:5",
                                          "unix:/run/x.sock",
                                          "unix:rel",
                                          "unix:@name",
                                          "unix:@x y",
                                          "unix:/a b/é.sock"};
  for (const auto& text : texts) {
    Address a = good(text);
    EXPECT_EQ(a.to_string(), text);
    expect_round_trip(a);
  }
  expect_round_trip(good("localhost:1"));
  expect_round_trip(good("[2001:DB8::0:1]:00443"));
  if (::if_nametoindex("lo") != 0) expect_round_trip(good("[fe80::1%lo]:80"));
}

// --- construction, comparison ---------------------------------------------------------------

TEST(AddressTest, FactoriesAndPorts) {
  Address a = Address::ipv4(0xc0a80001, 1234);
  EXPECT_EQ(a.to_string(), "192.168.0.1:1234");
  EXPECT_EQ(a.port(), 1234);
  Address b = a.with_port(4321);
  EXPECT_EQ(b.port(), 4321);
  EXPECT_EQ(b.to_string(), "192.168.0.1:4321");
  EXPECT_EQ(a.port(), 1234) << "with_port returns a copy";
  EXPECT_FALSE(a == b);
  EXPECT_TRUE(b.with_port(1234) == a);

  Address v6 = Address::ipv6_loopback(9);
  EXPECT_EQ(v6.to_string(), "[::1]:9");
  EXPECT_EQ(v6.with_port(10).to_string(), "[::1]:10");
  EXPECT_EQ(Address::ipv4_any(7).to_string(), "0.0.0.0:7");
  EXPECT_EQ(Address::ipv4_loopback(7).to_string(), "127.0.0.1:7");
}

TEST(AddressTest, Equality) {
  EXPECT_TRUE(good("1.2.3.4:5") == good("1.2.3.4:5"));
  EXPECT_FALSE(good("1.2.3.4:5") == good("1.2.3.4:6"));
  EXPECT_FALSE(good("1.2.3.4:5") == good("1.2.3.5:5"));
  EXPECT_FALSE(good("[::1]:5") == good("[::2]:5"));
  EXPECT_FALSE(good("127.0.0.1:5") == good("[::ffff:127.0.0.1]:5"));
  EXPECT_FALSE(good("127.0.0.1:5") == Address());
  EXPECT_TRUE(good("unix:/a") == good("unix:/a"));
  EXPECT_FALSE(good("unix:/a") == good("unix:/b"));
  EXPECT_FALSE(good("unix:/a") == good("unix:/ab"));
}

// --- from_native ----------------------------------------------------------------------------

TEST(AddressTest, FromNativeIpv4) {
  sockaddr_in sin{};
  sin.sin_family = AF_INET;
  sin.sin_port = htons(99);
  sin.sin_addr.s_addr = htonl(0x01020304);
  std::error_code ec;
  Address a = Address::from_native(reinterpret_cast<sockaddr*>(&sin), sizeof sin, ec);
  EXPECT_FALSE(ec);
  EXPECT_TRUE(a == good("1.2.3.4:99"));
  EXPECT_TRUE(Address::from_native(reinterpret_cast<sockaddr*>(&sin), sizeof sin - 1, ec).empty());
  EXPECT_EQ(ec, std::errc::invalid_argument);
}

TEST(AddressTest, FromNativeRejectsJunk) {
  std::error_code ec;
  EXPECT_TRUE(Address::from_native(nullptr, 16, ec).empty());
  EXPECT_EQ(ec, std::errc::invalid_argument);
  sockaddr_storage ss{};
  ss.ss_family = AF_APPLETALK;
  EXPECT_TRUE(Address::from_native(reinterpret_cast<sockaddr*>(&ss), sizeof ss, ec).empty());
  EXPECT_EQ(ec, std::errc::invalid_argument);
  ss.ss_family = AF_UNIX;
  EXPECT_TRUE(Address::from_native(reinterpret_cast<sockaddr*>(&ss), 1, ec).empty());
  EXPECT_EQ(ec, std::errc::invalid_argument);
  EXPECT_TRUE(
      Address::from_native(reinterpret_cast<sockaddr*>(&ss), sizeof(sockaddr_un) + 1, ec).empty());
  EXPECT_EQ(ec, std::errc::invalid_argument);
  ss.ss_family = AF_INET6;
  EXPECT_TRUE(
      Address::from_native(reinterpret_cast<sockaddr*>(&ss), sizeof(sockaddr_in6) - 1, ec).empty());
  EXPECT_EQ(ec, std::errc::invalid_argument);
  EXPECT_TRUE(Address::from_native(reinterpret_cast<sockaddr*>(&ss), sizeof(ss) + 1, ec).empty());
  EXPECT_EQ(ec, std::errc::invalid_argument);
}

TEST(AddressTest, FromNativeUnixForms) {
  std::error_code ec;
  sockaddr_un sun{};
  sun.sun_family = AF_UNIX;
  std::memcpy(sun.sun_path, "/tmp/s", 6);
  // With or without the terminator counted, and with junk after it: the same address.
  for (socklen_t len :
       {socklen_t(kPathOffset + 6), socklen_t(kPathOffset + 7), socklen_t(sizeof sun)}) {
    if (len == sizeof sun) std::memcpy(sun.sun_path + 7, "junk", 4);
    Address a = Address::from_native(reinterpret_cast<sockaddr*>(&sun), len, ec);
    EXPECT_FALSE(ec);
    EXPECT_TRUE(a == good("unix:/tmp/s")) << len;
    EXPECT_EQ(a.to_string(), "unix:/tmp/s");
  }
  // A path filling all 108 bytes has no terminator at all.
  std::memset(sun.sun_path, 'q', sizeof sun.sun_path);
  Address full = Address::from_native(reinterpret_cast<sockaddr*>(&sun), sizeof sun, ec);
  EXPECT_FALSE(ec);
  EXPECT_EQ(full.family(), Family::unix_path);
  EXPECT_EQ(full.to_string(), "unix:" + std::string(108, 'q'));
  // Abstract: the length decides.
  sockaddr_un abs{};
  abs.sun_family = AF_UNIX;
  std::memcpy(abs.sun_path + 1, "name", 4);
  Address a = Address::from_native(reinterpret_cast<sockaddr*>(&abs), kPathOffset + 5, ec);
  EXPECT_FALSE(ec);
  EXPECT_TRUE(a == good("unix:@name"));
  Address shorter = Address::from_native(reinterpret_cast<sockaddr*>(&abs), kPathOffset + 4, ec);
  EXPECT_TRUE(shorter == good("unix:@nam"));
}

TEST(AddressTest, FromNativeUnnamedUnixSocket) {
  reactor::test::SocketPair sp;
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  ASSERT_EQ(::getsockname(sp.a.get(), reinterpret_cast<sockaddr*>(&ss), &len), 0);
  EXPECT_EQ(len, sizeof(sa_family_t));
  std::error_code ec;
  Address a = Address::from_native(reinterpret_cast<sockaddr*>(&ss), len, ec);
  EXPECT_FALSE(ec);
  EXPECT_EQ(a.family(), Family::unix_path);
  EXPECT_EQ(a.native_size(), sizeof(sa_family_t));
  EXPECT_EQ(a.to_string(), "unix:");
  EXPECT_TRUE(a.is_unix());
  EXPECT_FALSE(a == good("unix:/x"));
}

// --- against the kernel ---------------------------------------------------------------------

/// Binds a socket of `a`'s domain to it and returns what getsockname reports.
Address bound_as(const Address& a, reactor::test::Fd& fd) {
  fd.reset(::socket(a.domain(), SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (fd.get() < 0 || ::bind(fd.get(), a.native(), a.native_size()) != 0) return {};
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  if (::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&ss), &len) != 0) return {};
  std::error_code ec;
  Address got = Address::from_native(reinterpret_cast<sockaddr*>(&ss), len, ec);
  EXPECT_FALSE(ec);
  return got;
}

TEST(AddressTest, KernelAgreesOnIpv4) {
  reactor::test::FdLeakCheck leaks;
  reactor::test::Fd fd;
  Address got = bound_as(good("127.0.0.1:0"), fd);
  ASSERT_EQ(got.family(), Family::ipv4);
  EXPECT_NE(got.port(), 0) << "the kernel picked a port";
  EXPECT_TRUE(got == good("127.0.0.1:" + std::to_string(got.port())));
  expect_round_trip(got);
}

TEST(AddressTest, KernelAgreesOnIpv6) {
  reactor::test::FdLeakCheck leaks;
  reactor::test::Fd fd;
  Address got = bound_as(good("[::1]:0"), fd);
  if (got.empty()) GTEST_SKIP() << "no IPv6 loopback here";
  ASSERT_EQ(got.family(), Family::ipv6);
  EXPECT_NE(got.port(), 0);
  EXPECT_TRUE(got == Address::ipv6_loopback(got.port()));
  expect_round_trip(got);
}

TEST(AddressTest, KernelAgreesOnUnixPath) {
  reactor::test::FdLeakCheck leaks;
  char dir[] = "/tmp/reactor-address-XXXXXX";
  ASSERT_NE(::mkdtemp(dir), nullptr);
  const std::string path = std::string(dir) + "/s.sock";
  {
    reactor::test::Fd fd;
    Address want = good("unix:" + path);
    Address got = bound_as(want, fd);
    EXPECT_TRUE(got == want) << got.to_string();
    EXPECT_EQ(got.to_string(), "unix:" + path);
  }
  ::unlink(path.c_str());
  ::rmdir(dir);
}

TEST(AddressTest, KernelAgreesOnAbstractName) {
  reactor::test::FdLeakCheck leaks;
  reactor::test::Fd fd;
  const std::string name = "reactor-address-test-" + std::to_string(::getpid());
  Address want = good("unix:@" + name);
  Address got = bound_as(want, fd);
  EXPECT_TRUE(got == want) << got.to_string();
  EXPECT_EQ(got.to_string(), "unix:@" + name);
}

// --- unix_path() ----------------------------------------------------------------------------

TEST(AddressTest, UnixPathIsTheFileSystemPath) {
  EXPECT_EQ(good("unix:/run/x.sock").unix_path(), "/run/x.sock");
  EXPECT_EQ(good("unix:relative/s").unix_path(), "relative/s");
  // The kernel's forms too: a path of all 108 bytes (no terminator) and one bound for real.
  sockaddr_un sun{};
  sun.sun_family = AF_UNIX;
  std::memset(sun.sun_path, 'q', sizeof sun.sun_path);
  std::error_code ec;
  Address full = Address::from_native(reinterpret_cast<sockaddr*>(&sun), sizeof sun, ec);
  ASSERT_FALSE(ec);
  EXPECT_EQ(full.unix_path(), std::string(108, 'q'));
  reactor::test::FdLeakCheck leaks;
  char dir[] = "/tmp/reactor-address-XXXXXX";
  ASSERT_NE(::mkdtemp(dir), nullptr);
  const std::string path = std::string(dir) + "/s.sock";
  {
    reactor::test::Fd fd;
    EXPECT_EQ(bound_as(good("unix:" + path), fd).unix_path(), path);
  }
  ::unlink(path.c_str());
  ::rmdir(dir);
}

TEST(AddressTest, UnixPathIsEmptyForAbstractNames) {
  EXPECT_EQ(good("unix:@name").unix_path(), "");
  reactor::test::Fd fd;
  const std::string name = "reactor-address-path-" + std::to_string(::getpid());
  EXPECT_EQ(bound_as(good("unix:@" + name), fd).unix_path(), "");
}

TEST(AddressTest, UnixPathIsEmptyForEverythingElse) {
  EXPECT_EQ(Address().unix_path(), "");
  EXPECT_EQ(good("127.0.0.1:80").unix_path(), "");
  EXPECT_EQ(good("[::1]:80").unix_path(), "");
  reactor::test::SocketPair sp;  // unnamed
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  ASSERT_EQ(::getsockname(sp.a.get(), reinterpret_cast<sockaddr*>(&ss), &len), 0);
  std::error_code ec;
  Address unnamed = Address::from_native(reinterpret_cast<sockaddr*>(&ss), len, ec);
  ASSERT_FALSE(ec);
  EXPECT_EQ(unnamed.unix_path(), "");
}

}  // namespace
