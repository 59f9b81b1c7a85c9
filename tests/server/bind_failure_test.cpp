// SPDX-License-Identifier: MIT
// Constructors that cannot build a usable server throw and hold nothing after, on every
// backend. 1,000 constructions on an address in use (TCP, UDP, Unix path, Unix abstract; the
// port held by a plain listening or bound socket without SO_REUSEADDR) and 1,000 with an
// invalid address (empty; a Unix path in a directory that does not exist), cycling over the
// models: each throws std::system_error with the errno and a message that says it, and the
// process fd and thread counts do not move. A StreamService lacking the kind of handler the
// model needs, an empty datagram handler and an unknown backend name throw
// std::invalid_argument, also without leaking (nor leaving the address bound).
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <chrono>
#include <cstddef>
#include <cstring>
#include <functional>
#include <stdexcept>
#include <string>
#include <system_error>
#include <vector>

#include "reactor/server/datagram_server.hpp"
#include "reactor/server/stream_server.hpp"
#include "tests/support/backends.hpp"
#include "tests/support/clients.hpp"
#include "tests/support/errors.hpp"
#include "tests/support/fds.hpp"
#include "tests/support/processes.hpp"
#include "tests/support/servers.hpp"
#include "tests/support/sockets.hpp"
#include "tests/support/time.hpp"

namespace {

using namespace std::chrono_literals;
using reactor::Address;
using reactor::DatagramServer;
using reactor::Model;
using reactor::ServerOptions;
using reactor::StreamServer;
using reactor::StreamService;
using reactor::test::Fd;
using reactor::test::FdLeakCheck;
using reactor::test::open_fd_count;
using namespace reactor::test;

class BindFailureTest : public reactor::test::BackendTest {
 protected:
  void SetUp() override { reactor::test::warm_up(backend()); }
};

constexpr std::size_t kConstructions = 1000;

/// A plain socket of `type` holding `a` (listening when it is a stream socket), without
/// SO_REUSEADDR. Returns it and, through `bound`, the address it holds (the real port).
Fd hold_address(const Address& a, int type, Address& bound) {
  Fd fd(::socket(a.domain(), type | SOCK_CLOEXEC, 0));
  if (fd.get() < 0) return Fd{};
  if (::bind(fd.get(), a.native(), a.native_size()) != 0) return Fd{};
  if (type == SOCK_STREAM && ::listen(fd.get(), 4) != 0) return Fd{};
  bound = bound_address(fd.get());
  return fd;
}

/// Constructs the server of `t` (every handler kind given, so only the address can fail).
void construct(Transport t, const Address& a, const ServerOptions& options) {
  if (is_stream(t)) {
    StreamServer server(a, echo_service(), options);
  } else {
    DatagramServer server(a, datagram_echo_handler(), options);
  }
}

/// Success when `fn` throws std::system_error naming `expected`, with a message that
/// carries the error's text.
::testing::AssertionResult ThrowsClearly(const std::function<void()>& fn, std::errc expected) {
  try {
    fn();
  } catch (const std::system_error& e) {
    const std::string what = e.what();
    const std::string text = std::make_error_code(expected).message();
    if (e.code() != expected) {
      return ::testing::AssertionFailure()
             << "threw " << e.code().message() << " (" << what << "), expected " << text;
    }
    if (what.find(text) == std::string::npos) {
      return ::testing::AssertionFailure() << "what() \"" << what << "\" does not say " << text;
    }
    return ::testing::AssertionSuccess();
  } catch (const std::exception& e) {
    return ::testing::AssertionFailure() << "threw something else: " << e.what();
  } catch (...) {
    return ::testing::AssertionFailure() << "threw a non-exception";
  }
  return ::testing::AssertionFailure() << "did not throw";
}

/// Success when `fn` throws std::invalid_argument with a non-empty message.
::testing::AssertionResult ThrowsInvalidArgument(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const std::invalid_argument& e) {
    if (std::strlen(e.what()) == 0) return ::testing::AssertionFailure() << "empty what()";
    return ::testing::AssertionSuccess();
  } catch (const std::exception& e) {
    return ::testing::AssertionFailure() << "threw something else: " << e.what();
  } catch (...) {
    return ::testing::AssertionFailure() << "threw a non-exception";
  }
  return ::testing::AssertionFailure() << "did not throw";
}

TEST_P(BindFailureTest, AddressInUseThrowsEveryTimeAndLeaksNothing) {
  HangGuard hang(120s);
  TempDir dir;
  struct Held {
    Transport transport;
    Address address;
    Fd fd;
  };
  std::vector<Held> held;
  for (Transport t : kServerTransports) {
    const int type = is_stream(t) ? SOCK_STREAM : SOCK_DGRAM;
    // Unix: once a socket file (which the server must not remove: a live socket owns it),
    // once an abstract name.
    std::vector<Address> wanted{bind_address(t, &dir)};
    if (is_unix(t)) wanted.push_back(unique_unix_address("held"));
    for (const Address& a : wanted) {
      Address bound;
      Fd fd = hold_address(a, type, bound);
      ASSERT_GE(fd.get(), 0) << "cannot hold " << a.to_string() << ": " << std::strerror(errno);
      held.push_back({t, bound, std::move(fd)});
    }
  }

  const std::size_t threads_before = thread_count();
  const std::size_t fds_before = open_fd_count();
  {
    FdLeakCheck leaks;
    for (std::size_t i = 0; i < kConstructions; ++i) {
      const Held& h = held[i % held.size()];
      const Model m = kAllModels[(i / held.size()) % kAllModels.size()];
      ASSERT_TRUE(
          ThrowsClearly([&] { construct(h.transport, h.address, options_for(m, backend())); },
                        std::errc::address_in_use))
          << "construction " << i << ": " << name(h.transport) << " " << model_name(m) << " on "
          << h.address.to_string();
      ASSERT_EQ(open_fd_count(), fds_before) << "construction " << i << " leaked an fd";
    }
  }
  EXPECT_LE(thread_count(), threads_before);
  // The holders were not disturbed: a socket file is still there, the sockets still bound.
  for (const Held& h : held) {
    EXPECT_EQ(bound_address(h.fd.get()), h.address);
    const std::string path = unix_path(h.address);
    if (!path.empty()) {
      struct stat st {};
      EXPECT_EQ(::stat(path.c_str(), &st), 0) << "a failed server removed " << path;
    }
  }
}

TEST_P(BindFailureTest, InvalidAddressesThrowEveryTimeAndLeakNothing) {
  HangGuard hang(120s);
  const Address missing_dir =
      Address::parse("unix:/nonexistent-reactor-dir-" + std::to_string(::getpid()) + "/x.sock");
  struct Bad {
    Transport transport;
    Address address;
    std::errc expected;
  };
  const std::vector<Bad> bad{
      {Transport::tcp4, Address{}, std::errc::invalid_argument},
      {Transport::udp4, Address{}, std::errc::invalid_argument},
      {Transport::unix_stream, missing_dir, std::errc::no_such_file_or_directory},
      {Transport::unix_dgram, missing_dir, std::errc::no_such_file_or_directory},
  };
  const std::size_t threads_before = thread_count();
  const std::size_t fds_before = open_fd_count();
  {
    FdLeakCheck leaks;
    for (std::size_t i = 0; i < kConstructions; ++i) {
      const Bad& b = bad[i % bad.size()];
      const Model m = kAllModels[(i / bad.size()) % kAllModels.size()];
      ASSERT_TRUE(ThrowsClearly(
          [&] { construct(b.transport, b.address, options_for(m, backend())); }, b.expected))
          << "construction " << i << ": " << name(b.transport) << " " << model_name(m) << " on \""
          << b.address.to_string() << "\"";
      ASSERT_EQ(open_fd_count(), fds_before) << "construction " << i << " leaked an fd";
    }
  }
  EXPECT_LE(thread_count(), threads_before);
}

TEST_P(BindFailureTest, ServiceWithoutTheHandlerKindTheModelNeedsIsInvalidArgument) {
  HangGuard hang(60s);
  const std::size_t threads_before = thread_count();
  {
    FdLeakCheck leaks;
    for (int round = 0; round < 20; ++round) {
      for (Model m : kAllModels) {
        SCOPED_TRACE(model_name(m));
        const ServerOptions o = options_for(m, backend());
        // The kind the model does not use, alone.
        const StreamService wrong =
            reactor::is_blocking(m) ? StreamService(event_echo()) : StreamService(blocking_echo());
        EXPECT_TRUE(
            ThrowsInvalidArgument([&] { StreamServer s(Address::ipv4_loopback(0), wrong, o); }));
        EXPECT_TRUE(
            ThrowsInvalidArgument([&] { StreamServer s(unique_unix_address("svc"), wrong, o); }));
        EXPECT_TRUE(ThrowsInvalidArgument(
            [&] { StreamServer s(Address::ipv4_loopback(0), StreamService{}, o); }));
        EXPECT_TRUE(ThrowsInvalidArgument(
            [&] { DatagramServer s(Address::ipv4_loopback(0), reactor::DatagramHandler{}, o); }));
        // The kind it needs, alone, is enough.
        const StreamService right =
            reactor::is_blocking(m) ? StreamService(blocking_echo()) : StreamService(event_echo());
        EXPECT_NO_THROW({ StreamServer s(Address::ipv4_loopback(0), right, o); });
      }
    }
  }
  EXPECT_LE(thread_count(), threads_before);
}

TEST_P(BindFailureTest, UnknownBackendIsInvalidArgumentAndLeavesTheAddressFree) {
  HangGuard hang(60s);
  // A port that was free a moment ago; after each failed construction a plain socket must
  // still be able to take it (the failed server left nothing bound).
  Address tcp;
  Address udp;
  {
    Fd t = hold_address(Address::ipv4_loopback(0), SOCK_STREAM, tcp);
    Fd u = hold_address(Address::ipv4_loopback(0), SOCK_DGRAM, udp);
    ASSERT_GE(t.get(), 0);
    ASSERT_GE(u.get(), 0);
  }
  const std::size_t threads_before = thread_count();
  {
    FdLeakCheck leaks;
    for (int round = 0; round < 20; ++round) {
      for (Model m : kAllModels) {
        SCOPED_TRACE(model_name(m));
        ServerOptions o = options_for(m, "no-such-backend");
        EXPECT_TRUE(ThrowsInvalidArgument([&] { StreamServer s(tcp, echo_service(), o); }));
        EXPECT_TRUE(
            ThrowsInvalidArgument([&] { DatagramServer s(udp, datagram_echo_handler(), o); }));
        Address again;
        EXPECT_GE(hold_address(tcp, SOCK_STREAM, again).get(), 0) << "TCP port left bound";
        EXPECT_GE(hold_address(udp, SOCK_DGRAM, again).get(), 0) << "UDP port left bound";
      }
    }
  }
  EXPECT_LE(thread_count(), threads_before);
}

REACTOR_INSTANTIATE_ALL_BACKENDS(BindFailureTest);

}  // namespace
