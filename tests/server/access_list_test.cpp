// SPDX-License-Identifier: MIT
// AccessList: CIDR parsing (good and hostile input), matching over IPv4, IPv6 and
// IPv4-mapped clients, Unix clients, and use as a server's verify_request callable.
// Pure unit tests: no loop, no backend, no sockets.
#include "reactor/server/access_list.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <functional>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <vector>

#include "reactor/net/address.hpp"
#include "tests/support/errors.hpp"
#include "tests/support/fds.hpp"
#include "tests/support/loop.hpp"

namespace reactor {
namespace {

using test::IsErrc;

/// No AccessList call may open an fd: each test checks that it left none behind.
class AccessListTest : public ::testing::Test {
 protected:
  void SetUp() override { fds_before_ = test::open_fd_count(); }
  void TearDown() override { EXPECT_EQ(test::open_fd_count(), fds_before_) << "fds leaked"; }

 private:
  std::size_t fds_before_ = 0;
};

/// A client address from a bare host: "10.0.0.1" or "fe80::1%lo" (port 1234, which must not
/// matter). Fails the test (and returns an empty address) when the text does not parse.
Address client(std::string_view host) {
  const bool v6 = host.find(':') != std::string_view::npos;
  const std::string text = v6 ? "[" + std::string(host) + "]:1234" : std::string(host) + ":1234";
  std::error_code ec;
  Address a = Address::parse(text, ec);
  EXPECT_FALSE(ec) << "test bug: cannot parse client " << text << ": " << ec.message();
  return a;
}

Address unix_client(std::string_view path) {
  std::error_code ec;
  Address a = Address::unix_socket(path, ec);
  EXPECT_FALSE(ec) << "test bug: cannot make unix address " << path;
  return a;
}

/// A list made of `ranges`, each of which must be accepted.
AccessList list_of(std::initializer_list<std::string_view> ranges) {
  AccessList list;
  for (std::string_view r : ranges) {
    EXPECT_FALSE(list.add(r)) << "rejected a valid range: " << r;
  }
  return list;
}

// ---------------------------------------------------------------------------------------
// IPv4

TEST_F(AccessListTest, Ipv4Slash8) {
  const AccessList list = list_of({"10.0.0.0/8"});
  EXPECT_EQ(list.size(), 1u);
  EXPECT_TRUE(list.allows(client("10.0.0.0")));
  EXPECT_TRUE(list.allows(client("10.0.0.1")));
  EXPECT_TRUE(list.allows(client("10.200.33.4")));
  EXPECT_TRUE(list.allows(client("10.255.255.255")));
  EXPECT_FALSE(list.allows(client("9.255.255.255")));
  EXPECT_FALSE(list.allows(client("11.0.0.0")));
  EXPECT_FALSE(list.allows(client("127.0.0.1")));
}

TEST_F(AccessListTest, Ipv4Slash24) {
  const AccessList list = list_of({"192.168.1.0/24"});
  EXPECT_TRUE(list.allows(client("192.168.1.0")));
  EXPECT_TRUE(list.allows(client("192.168.1.77")));
  EXPECT_TRUE(list.allows(client("192.168.1.255")));
  EXPECT_FALSE(list.allows(client("192.168.0.255")));
  EXPECT_FALSE(list.allows(client("192.168.2.0")));
  EXPECT_FALSE(list.allows(client("193.168.1.1")));
}

TEST_F(AccessListTest, Ipv4Slash32IsOneHost) {
  const AccessList list = list_of({"203.0.113.7/32"});
  EXPECT_TRUE(list.allows(client("203.0.113.7")));
  EXPECT_FALSE(list.allows(client("203.0.113.6")));
  EXPECT_FALSE(list.allows(client("203.0.113.8")));
  EXPECT_FALSE(list.allows(client("203.0.112.7")));
}

TEST_F(AccessListTest, Ipv4Slash0AllowsEveryIpv4Client) {
  const AccessList list = list_of({"0.0.0.0/0"});
  EXPECT_TRUE(list.allows(client("0.0.0.0")));
  EXPECT_TRUE(list.allows(client("1.2.3.4")));
  EXPECT_TRUE(list.allows(client("127.0.0.1")));
  EXPECT_TRUE(list.allows(client("255.255.255.255")));
  // ...and an IPv4-mapped one, which is an IPv4 client.
  EXPECT_TRUE(list.allows(client("::ffff:8.8.8.8")));
}

TEST_F(AccessListTest, Ipv4RangeDoesNotAdmitNativeIpv6Clients) {
  const AccessList list = list_of({"0.0.0.0/0"});
  EXPECT_FALSE(list.allows(client("::1")));
  EXPECT_FALSE(list.allows(client("2001:db8::1")));
  EXPECT_FALSE(list.allows(client("fe80::1")));
  EXPECT_FALSE(list.allows(client("::")));
}

TEST_F(AccessListTest, Ipv4PrefixNotOnAByteBoundary) {
  const AccessList list = list_of({"172.16.0.0/12"});
  EXPECT_TRUE(list.allows(client("172.16.0.0")));
  EXPECT_TRUE(list.allows(client("172.20.1.2")));
  EXPECT_TRUE(list.allows(client("172.31.255.255")));
  EXPECT_FALSE(list.allows(client("172.15.255.255")));
  EXPECT_FALSE(list.allows(client("172.32.0.0")));

  const AccessList odd = list_of({"100.64.0.0/10", "198.18.0.0/15", "192.0.2.128/25"});
  EXPECT_TRUE(odd.allows(client("100.127.255.255")));
  EXPECT_FALSE(odd.allows(client("100.128.0.0")));
  EXPECT_FALSE(odd.allows(client("100.63.255.255")));
  EXPECT_TRUE(odd.allows(client("198.19.255.255")));
  EXPECT_FALSE(odd.allows(client("198.20.0.0")));
  EXPECT_FALSE(odd.allows(client("198.17.255.255")));
  EXPECT_TRUE(odd.allows(client("192.0.2.128")));
  EXPECT_TRUE(odd.allows(client("192.0.2.255")));
  EXPECT_FALSE(odd.allows(client("192.0.2.127")));
}

TEST_F(AccessListTest, BareIpv4AddressIsOneHost) {
  const AccessList list = list_of({"198.51.100.1"});
  EXPECT_EQ(list.size(), 1u);
  EXPECT_TRUE(list.allows(client("198.51.100.1")));
  EXPECT_FALSE(list.allows(client("198.51.100.0")));
  EXPECT_FALSE(list.allows(client("198.51.100.2")));
  EXPECT_FALSE(list.allows(client("198.51.101.1")));
}

TEST_F(AccessListTest, HostBitsPastThePrefixAreIgnored) {
  // "10.1.2.3/8" is 10.0.0.0/8.
  const AccessList list = list_of({"10.1.2.3/8"});
  EXPECT_TRUE(list.allows(client("10.0.0.0")));
  EXPECT_TRUE(list.allows(client("10.255.0.9")));
  EXPECT_TRUE(list.allows(client("10.1.2.3")));
  EXPECT_FALSE(list.allows(client("11.1.2.3")));

  const AccessList v4odd = list_of({"192.168.1.255/23"});  // 192.168.0.0/23
  EXPECT_TRUE(v4odd.allows(client("192.168.0.1")));
  EXPECT_TRUE(v4odd.allows(client("192.168.1.1")));
  EXPECT_FALSE(v4odd.allows(client("192.168.2.1")));

  const AccessList v6 = list_of({"2001:db8:1:2::3/32"});  // 2001:db8::/32
  EXPECT_TRUE(v6.allows(client("2001:db8::")));
  EXPECT_TRUE(v6.allows(client("2001:db8:ffff::9")));
  EXPECT_FALSE(v6.allows(client("2001:db9::3")));

  const AccessList all = list_of({"255.255.255.255/0"});  // everything IPv4
  EXPECT_TRUE(all.allows(client("1.1.1.1")));
}

TEST_F(AccessListTest, SeveralRangesAnyMatchAllows) {
  const AccessList list = list_of({"127.0.0.0/8", "::1/128", "192.168.7.0/24", "2001:db8::/32"});
  EXPECT_EQ(list.size(), 4u);
  EXPECT_TRUE(list.allows(client("127.3.4.5")));
  EXPECT_TRUE(list.allows(client("::1")));
  EXPECT_TRUE(list.allows(client("192.168.7.200")));
  EXPECT_TRUE(list.allows(client("2001:db8::42")));
  EXPECT_FALSE(list.allows(client("192.168.8.1")));
  EXPECT_FALSE(list.allows(client("::2")));
  EXPECT_FALSE(list.allows(client("8.8.8.8")));
}

TEST_F(AccessListTest, PortDoesNotMatter) {
  const AccessList list = list_of({"10.0.0.0/8", "::1"});
  for (std::uint16_t port : {0, 1, 80, 65535}) {
    EXPECT_TRUE(list.allows(Address::ipv4(0x0a000001, port))) << port;
    EXPECT_TRUE(list.allows(Address::ipv6_loopback(port))) << port;
    EXPECT_FALSE(list.allows(Address::ipv4_loopback(port))) << port;
  }
}

// ---------------------------------------------------------------------------------------
// IPv6

TEST_F(AccessListTest, Ipv6LoopbackSlash128) {
  const AccessList list = list_of({"::1/128"});
  EXPECT_TRUE(list.allows(client("::1")));
  EXPECT_TRUE(list.allows(Address::ipv6_loopback(8080)));
  EXPECT_FALSE(list.allows(client("::2")));
  EXPECT_FALSE(list.allows(client("::")));
  EXPECT_FALSE(list.allows(client("1::1")));
  // ::1 is not 127.0.0.1.
  EXPECT_FALSE(list.allows(client("127.0.0.1")));
}

TEST_F(AccessListTest, Ipv6LinkLocalSlash10) {
  const AccessList list = list_of({"fe80::/10"});
  EXPECT_TRUE(list.allows(client("fe80::")));
  EXPECT_TRUE(list.allows(client("fe80::1")));
  EXPECT_TRUE(list.allows(client("fe80::dead:beef:1")));
  EXPECT_TRUE(list.allows(client("febf:ffff:ffff:ffff:ffff:ffff:ffff:ffff")));
  EXPECT_FALSE(list.allows(client("fec0::1")));
  EXPECT_FALSE(list.allows(client("fe7f:ffff::1")));
  EXPECT_FALSE(list.allows(client("fe00::1")));
  EXPECT_FALSE(list.allows(client("ff02::1")));
  EXPECT_FALSE(list.allows(client("::1")));
}

TEST_F(AccessListTest, Ipv6ClientWithScopeMatchesOnItsAddress) {
  const AccessList list = list_of({"fe80::/10"});
  std::error_code ec;
  const Address scoped = Address::parse("[fe80::1%lo]:80", ec);
  if (ec) GTEST_SKIP() << "no interface 'lo' to scope an address with: " << ec.message();
  EXPECT_TRUE(list.allows(scoped));
}

TEST_F(AccessListTest, Ipv6DocumentationSlash32) {
  const AccessList list = list_of({"2001:db8::/32"});
  EXPECT_TRUE(list.allows(client("2001:db8::")));
  EXPECT_TRUE(list.allows(client("2001:db8::1")));
  EXPECT_TRUE(list.allows(client("2001:db8:ffff:ffff:ffff:ffff:ffff:ffff")));
  EXPECT_FALSE(list.allows(client("2001:db9::")));
  EXPECT_FALSE(list.allows(client("2001:db7:ffff::1")));
  EXPECT_FALSE(list.allows(client("2002:db8::1")));
  EXPECT_FALSE(list.allows(client("::1")));
}

TEST_F(AccessListTest, Ipv6OtherPrefixes) {
  const AccessList list = list_of({"2001:db8:abcd:12::/63", "2001:db8::7/127", "fd00::/8"});
  EXPECT_TRUE(list.allows(client("2001:db8:abcd:12::1")));
  EXPECT_TRUE(list.allows(client("2001:db8:abcd:13:ffff::1")));
  EXPECT_FALSE(list.allows(client("2001:db8:abcd:14::1")));
  EXPECT_FALSE(list.allows(client("2001:db8:abcd:11::1")));
  EXPECT_TRUE(list.allows(client("2001:db8::6")));
  EXPECT_TRUE(list.allows(client("2001:db8::7")));
  EXPECT_FALSE(list.allows(client("2001:db8::8")));
  EXPECT_FALSE(list.allows(client("2001:db8::5")));
  EXPECT_TRUE(list.allows(client("fd12:3456::1")));
  EXPECT_FALSE(list.allows(client("fc00::1")));
}

TEST_F(AccessListTest, Ipv6Slash0AllowsEveryIpv6Client) {
  const AccessList list = list_of({"::/0"});
  EXPECT_TRUE(list.allows(client("::")));
  EXPECT_TRUE(list.allows(client("::1")));
  EXPECT_TRUE(list.allows(client("2001:db8::1")));
  EXPECT_TRUE(list.allows(client("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff")));
}

TEST_F(AccessListTest, BareIpv6AddressIsOneHost) {
  const AccessList list = list_of({"2001:db8::5"});
  EXPECT_TRUE(list.allows(client("2001:db8::5")));
  EXPECT_TRUE(list.allows(client("2001:db8:0:0:0:0:0:5")));
  EXPECT_FALSE(list.allows(client("2001:db8::4")));
  EXPECT_FALSE(list.allows(client("2001:db8::6")));
  EXPECT_FALSE(list.allows(client("2001:db8::1:5")));
}

// ---------------------------------------------------------------------------------------
// IPv4-mapped IPv6 clients (a dual-stack listener sees IPv4 peers as ::ffff:a.b.c.d)

TEST_F(AccessListTest, MappedIpv6ClientMatchesIpv4Ranges) {
  const AccessList list = list_of({"10.0.0.0/8", "192.0.2.1", "127.0.0.0/8"});
  EXPECT_TRUE(list.allows(client("::ffff:10.0.0.1")));
  EXPECT_TRUE(list.allows(client("::ffff:10.255.1.2")));
  EXPECT_TRUE(list.allows(client("::ffff:192.0.2.1")));
  EXPECT_TRUE(list.allows(client("::ffff:127.0.0.1")));
  EXPECT_TRUE(list.allows(client("::ffff:a00:2")));  // 10.0.0.2, written in hex
  EXPECT_FALSE(list.allows(client("::ffff:11.0.0.1")));
  EXPECT_FALSE(list.allows(client("::ffff:192.0.2.2")));
  // Not mapped: the IPv4-compatible form ::a.b.c.d and NAT64 are different addresses.
  EXPECT_FALSE(list.allows(client("::10.0.0.1")));
  EXPECT_FALSE(list.allows(client("64:ff9b::10.0.0.1")));
}

TEST_F(AccessListTest, MappedIpv6ClientIsRefusedByOtherIpv4Ranges) {
  const AccessList list = list_of({"203.0.113.0/24"});
  EXPECT_FALSE(list.allows(client("::ffff:203.0.114.1")));
  EXPECT_FALSE(list.allows(client("::ffff:0.0.0.0")));
  EXPECT_TRUE(list.allows(client("::ffff:203.0.113.99")));
}

// ---------------------------------------------------------------------------------------
// Unix clients and emptiness

TEST_F(AccessListTest, UnixClientsRefusedUnlessAllowed) {
  AccessList list = list_of({"0.0.0.0/0", "::/0"});
  const Address path = unix_client("/tmp/reactor-access-list-test.sock");
  const Address abstract = unix_client("@reactor-access-list-test");
  ASSERT_TRUE(path.is_unix());
  ASSERT_TRUE(abstract.is_unix());
  EXPECT_FALSE(list.allows(path));
  EXPECT_FALSE(list.allows(abstract));

  list.allow_unix();
  EXPECT_TRUE(list.allows(path));
  EXPECT_TRUE(list.allows(abstract));
  EXPECT_TRUE(list.allows(client("1.2.3.4")));  // IP matching unchanged

  list.allow_unix(false);
  EXPECT_FALSE(list.allows(path));
  EXPECT_FALSE(list.allows(abstract));
}

TEST_F(AccessListTest, AllowUnixAloneAdmitsNoIpClient) {
  AccessList list;
  list.allow_unix();
  EXPECT_EQ(list.size(), 0u);
  EXPECT_TRUE(list.allows(unix_client("/tmp/x.sock")));
  EXPECT_FALSE(list.allows(client("127.0.0.1")));
  EXPECT_FALSE(list.allows(client("::1")));
  EXPECT_FALSE(list.allows(client("::ffff:127.0.0.1")));
}

TEST_F(AccessListTest, EmptyListAllowsNobody) {
  const AccessList list;
  EXPECT_EQ(list.size(), 0u);
  for (const char* host : {"127.0.0.1", "0.0.0.0", "255.255.255.255", "10.0.0.1", "::1",
                           "::", "fe80::1", "2001:db8::1", "::ffff:127.0.0.1"}) {
    EXPECT_FALSE(list.allows(client(host))) << host;
  }
  EXPECT_FALSE(list.allows(unix_client("/tmp/x.sock")));
  EXPECT_FALSE(list.allows(unix_client("@x")));
}

TEST_F(AccessListTest, EmptyAddressIsNeverAllowed) {
  AccessList list = list_of({"0.0.0.0/0", "::/0"});
  list.allow_unix();
  EXPECT_FALSE(list.allows(Address{}));
}

// ---------------------------------------------------------------------------------------
// Hostile input: EINVAL, never a crash, and the list unchanged

/// Adds `bad` to a list already holding one range and checks EINVAL, the size, and that
/// neither the old range's behaviour nor anything the bad text could be mistaken for changed.
void expect_rejected(std::string_view bad) {
  SCOPED_TRACE(std::string("input \"") + std::string(bad.substr(0, 60)) +
               (bad.size() > 60 ? "...\"" : "\"") + " (" + std::to_string(bad.size()) + " bytes)");
  AccessList list = list_of({"192.0.2.0/24"});
  EXPECT_TRUE(IsErrc(list.add(bad), std::errc::invalid_argument));
  EXPECT_EQ(list.size(), 1u);
  EXPECT_TRUE(list.allows(client("192.0.2.9")));
  for (const char* host :
       {"0.0.0.0", "1.2.3.4", "1.9.9.9", "10.0.0.0", "10.0.0.1", "127.0.0.1", "255.255.255.255",
        "::", "::1", "2001:db8::1", "fe80::1", "::ffff:1.2.3.4"}) {
    EXPECT_FALSE(list.allows(client(host))) << host;
  }

  AccessList empty;
  EXPECT_TRUE(IsErrc(empty.add(bad), std::errc::invalid_argument));
  EXPECT_EQ(empty.size(), 0u);
}

TEST_F(AccessListTest, PrefixLengthOutOfRangeIsRejected) {
  expect_rejected("10.0.0.0/33");
  expect_rejected("1.2.3.4/64");
  expect_rejected("1.2.3.4/128");
  expect_rejected("::/129");
  expect_rejected("::1/256");
  expect_rejected("1.2.3.4/-1");
  expect_rejected("::1/-0");
  // Lengths that wrap around in a narrow integer: 2^32 + 8, 2^64 + 8, and longer.
  expect_rejected("1.2.3.4/4294967304");
  expect_rejected("1.2.3.4/18446744073709551624");
  expect_rejected("1.2.3.4/99999999999999999999999999999999");
  expect_rejected("::/4294967424");
}

TEST_F(AccessListTest, MissingPartsAreRejected) {
  expect_rejected("");
  expect_rejected("/");
  expect_rejected("/8");
  expect_rejected("/0");
  expect_rejected("1.2.3.4/");
  expect_rejected("::1/");
  expect_rejected("1.2.3");
  expect_rejected("1.2.3/24");
  expect_rejected("1.2.3.");
  expect_rejected("1");
  expect_rejected(":");
  expect_rejected(":::");
}

TEST_F(AccessListTest, TrailingOrStrayTextIsRejected) {
  expect_rejected("1.2.3.4/8x");
  expect_rejected("1.2.3.4/8 ");
  expect_rejected("1.2.3.4 /8");
  expect_rejected("1.2.3.4/ 8");
  expect_rejected(" 1.2.3.4");
  expect_rejected("1.2.3.4 ");
  expect_rejected("1.2.3.4/+8");
  expect_rejected("1.2.3.4/8/8");
  expect_rejected("1.2.3.4/0x8");
  expect_rejected("1.2.3.4/8.0");
  expect_rejected("1.2.3.4:80");
  expect_rejected("1.2.3.4.5");
  expect_rejected("1.2.3.4\n");
  expect_rejected("::1/128x");
  expect_rejected("[::1]");
  expect_rejected("[::1]/128");
  expect_rejected("fe80::1%lo");
  expect_rejected("fe80::/10%lo");
}

TEST_F(AccessListTest, BadAddressesAreRejected) {
  expect_rejected("256.0.0.1");
  expect_rejected("1.2.3.256/32");
  expect_rejected("-1.2.3.4");
  expect_rejected("a.b.c.d/8");
  expect_rejected("localhost");
  expect_rejected("localhost/8");
  expect_rejected("example.com");
  expect_rejected("2001:db8::g");
  expect_rejected("1:2:3:4:5:6:7:8:9");
  expect_rejected("2001:db8:::1");
  expect_rejected("12345::1");
  expect_rejected("unix:/tmp/x.sock");
  expect_rejected("*");
  expect_rejected("any");
}

TEST_F(AccessListTest, EmbeddedNulIsRejected) {
  using namespace std::string_view_literals;
  expect_rejected("10.0.0.0\0/8"sv);
  expect_rejected("10.0.0.1\0"sv);
  expect_rejected("\0"sv);
  expect_rejected("10.0.0.0/8\0"sv);
  expect_rejected(
      "10.0.0.0/\0"
      "8"sv);
  expect_rejected("::1\0/128"sv);
}

TEST_F(AccessListTest, VeryLongInputIsRejected) {
  expect_rejected(std::string(5000, '1'));
  expect_rejected(std::string(5000, '/'));
  expect_rejected(std::string(5000, ':'));
  expect_rejected("10.0.0.0/8" + std::string(4990, 'x'));
  expect_rejected("10.0.0.0/" + std::string(4991, '9'));
  expect_rejected(std::string(4990, ' ') + "10.0.0.0/8");
  std::string many_groups;
  for (int i = 0; i < 1000; ++i) many_groups += "ffff:";
  expect_rejected(many_groups + ":1");
}

TEST_F(AccessListTest, RejectionsInBetweenDoNotDisturbTheList) {
  AccessList list;
  EXPECT_FALSE(list.add("10.0.0.0/8"));
  EXPECT_TRUE(IsErrc(list.add("11.0.0.0/33"), std::errc::invalid_argument));
  EXPECT_FALSE(list.add("::1"));
  EXPECT_TRUE(IsErrc(list.add("12.0.0.0/8x"), std::errc::invalid_argument));
  EXPECT_EQ(list.size(), 2u);
  EXPECT_TRUE(list.allows(client("10.1.1.1")));
  EXPECT_TRUE(list.allows(client("::1")));
  EXPECT_FALSE(list.allows(client("11.0.0.1")));
  EXPECT_FALSE(list.allows(client("12.0.0.1")));
}

TEST_F(AccessListTest, ValidEdgeFormsAreAccepted) {
  AccessList list;
  EXPECT_FALSE(list.add("0.0.0.0/0"));
  EXPECT_FALSE(list.add("255.255.255.255/32"));
  EXPECT_FALSE(list.add("::/0"));
  EXPECT_FALSE(list.add("::/128"));
  EXPECT_FALSE(list.add("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/128"));
  EXPECT_FALSE(list.add("::ffff:10.0.0.0/104"));  // dotted-quad tail inside IPv6
  EXPECT_FALSE(list.add("2001:DB8::/32"));        // upper-case hex
  EXPECT_FALSE(list.add("1.2.3.4/0"));
  EXPECT_EQ(list.size(), 8u);
}

// ---------------------------------------------------------------------------------------
// As a verify_request callable

TEST_F(AccessListTest, UsableAsStdFunction) {
  AccessList list = list_of({"10.0.0.0/8"});
  std::function<bool(const Address&)> verify = list;  // copies the list
  EXPECT_TRUE(verify(client("10.2.3.4")));
  EXPECT_FALSE(verify(client("11.2.3.4")));
  EXPECT_FALSE(verify(unix_client("/tmp/x.sock")));

  // The function holds its own copy: later changes to `list` do not reach it.
  EXPECT_FALSE(list.add("11.0.0.0/8"));
  list.allow_unix();
  EXPECT_TRUE(list(client("11.2.3.4")));
  EXPECT_FALSE(verify(client("11.2.3.4")));
  EXPECT_FALSE(verify(unix_client("/tmp/x.sock")));

  // The function itself copies, and the copies agree.
  const std::function<bool(const Address&)> copy = verify;
  EXPECT_TRUE(copy(client("10.9.9.9")));
  EXPECT_FALSE(copy(client("11.9.9.9")));

  // A copied AccessList is a value.
  const AccessList copied = list;
  EXPECT_EQ(copied.size(), 2u);
  EXPECT_TRUE(copied(client("11.2.3.4")));
  EXPECT_TRUE(copied(unix_client("/tmp/x.sock")));
}

TEST_F(AccessListTest, CallOperatorAgreesWithAllows) {
  const AccessList list = list_of({"10.0.0.0/8", "2001:db8::/32"});
  for (const char* host :
       {"10.0.0.1", "11.0.0.1", "2001:db8::1", "2001:db9::1", "::ffff:10.0.0.1", "::1"}) {
    const Address a = client(host);
    EXPECT_EQ(list(a), list.allows(a)) << host;
  }
}

TEST_F(AccessListTest, ManyThreadsMayCheckAtOnce) {
  AccessList list;
  for (int i = 0; i < 256; ++i) {
    ASSERT_FALSE(list.add("10." + std::to_string(i) + ".0.0/16"));
  }
  ASSERT_FALSE(list.add("2001:db8::/32"));
  const std::function<bool(const Address&)> verify = list;
  const Address yes4 = client("10.200.1.1");
  const Address yes6 = client("2001:db8::77");
  const Address no4 = client("11.0.0.1");
  const Address no6 = client("2001:db9::77");
  std::atomic<int> wrong{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 2000; ++i) {
        if (!verify(yes4) || !list.allows(yes6) || verify(no4) || list.allows(no6)) ++wrong;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(wrong.load(), 0);
}

}  // namespace
}  // namespace reactor
