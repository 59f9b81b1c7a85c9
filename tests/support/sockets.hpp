// SPDX-License-Identifier: MIT
#pragma once
/// Sockets in tests, made with plain system calls so that no library code is in the way:
/// the loopback transports to loop over and where to bind them, connected stream pairs whose
/// peer end is a raw socket, raw connects, socket options, a peer thread that cannot outlive
/// its test, and a recorder for a Connection's callbacks.
/// For the test's own (loop) thread unless it says otherwise.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include "reactor/net/address.hpp"
#include "reactor/net/buffer.hpp"
#include "reactor/net/connection.hpp"
#include "reactor/net/socket.hpp"
#include "tests/support/errors.hpp"
#include "tests/support/fds.hpp"

namespace reactor::test {

// ---------------------------------------------------------------------------------------
// Transports

/// The loopback transports: TCP and UDP over 127.0.0.1 and ::1, and Unix stream and
/// datagram sockets (abstract names, or files in a TempDir).
enum class Transport : std::uint8_t { tcp4, tcp6, unix_stream, udp4, udp6, unix_dgram };

/// The stream transports, and the datagram ones.
inline constexpr std::array<Transport, 3> kStreamTransports{Transport::tcp4, Transport::tcp6,
                                                            Transport::unix_stream};
inline constexpr std::array<Transport, 3> kDatagramTransports{Transport::udp4, Transport::udp6,
                                                              Transport::unix_dgram};

/// "tcp4", "tcp6", "unix", "udp4", "udp6", "unixdgram".
inline const char* name(Transport t) {
  switch (t) {
    case Transport::tcp4:
      return "tcp4";
    case Transport::tcp6:
      return "tcp6";
    case Transport::unix_stream:
      return "unix";
    case Transport::udp4:
      return "udp4";
    case Transport::udp6:
      return "udp6";
    case Transport::unix_dgram:
      return "unixdgram";
  }
  return "?";
}

inline bool is_stream(Transport t) {
  return t == Transport::tcp4 || t == Transport::tcp6 || t == Transport::unix_stream;
}
inline bool is_unix(Transport t) {
  return t == Transport::unix_stream || t == Transport::unix_dgram;
}
inline bool is_ipv6(Transport t) { return t == Transport::tcp6 || t == Transport::udp6; }

/// True when a socket can be bound to ::1 (some containers have no IPv6).
inline bool ipv6_loopback_available() {
  static const bool available = [] {
    const int fd = ::socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return false;
    sockaddr_in6 sa{};
    sa.sin6_family = AF_INET6;
    sa.sin6_addr = in6addr_loopback;
    const bool ok = ::bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0;
    ::close(fd);
    return ok;
  }();
  return available;
}

/// The stream transports usable here (tcp6 only where ::1 can be bound).
inline std::vector<Transport> stream_transports() {
  std::vector<Transport> out;
  for (Transport t : kStreamTransports) {
    if (!is_ipv6(t) || ipv6_loopback_available()) out.push_back(t);
  }
  return out;
}

/// The datagram transports usable here (udp6 only where ::1 can be bound).
inline std::vector<Transport> datagram_transports() {
  std::vector<Transport> out;
  for (Transport t : kDatagramTransports) {
    if (!is_ipv6(t) || ipv6_loopback_available()) out.push_back(t);
  }
  return out;
}

/// True when `t` can be used here. When it cannot (IPv6 without ::1), says so on stdout and
/// as a test property, so that the part is visibly skipped rather than silently passed.
inline bool usable(Transport t) {
  if (!is_ipv6(t) || ipv6_loopback_available()) return true;
  std::printf("[  SKIPPED ] the %s part: ::1 cannot be bound here\n", name(t));
  ::testing::Test::RecordProperty(name(t), "skipped: ::1 cannot be bound");
  return false;
}

/// Runs `part(t)` for every usable stream transport, each under a SCOPED_TRACE naming it and
/// inside its own FdLeakCheck (so `part` must have closed and released everything it opened,
/// loop included, when it returns). An ASSERT in `part` ends only that transport's part.
template <class Part>
void for_each_transport(Part part) {
  for (Transport t : kStreamTransports) {
    SCOPED_TRACE(std::string("transport ") + name(t));
    if (!usable(t)) continue;
    FdLeakCheck leak;
    part(t);
  }
}

/// A fresh Linux abstract Unix name, unique in this process and unlikely to clash with
/// another process ("unix:@reactor-<pid>-<n>-<tag>").
inline Address unique_unix_address(std::string_view tag = "") {
  static std::atomic<unsigned> counter{0};
  return Address::parse("unix:@reactor-" + std::to_string(::getpid()) + "-" +
                        std::to_string(counter.fetch_add(1)) + "-" + std::string(tag));
}

/// A private temporary directory for Unix socket files, removed (with what is left in it)
/// at scope end.
class TempDir {
 public:
  TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  ~TempDir();
  const std::string& path() const { return path_; }
  /// A fresh socket file name in the directory (not created).
  Address socket_address() {
    return Address::parse("unix:" + path_ + "/s" + std::to_string(next_++));
  }

 private:
  std::string path_;
  unsigned next_ = 0;
};

/// Where to bind a socket of transport `t`: loopback port 0; for Unix a socket file in `dir`
/// when given, else a fresh abstract name. Every call gives a fresh Unix name.
inline Address bind_address(Transport t, TempDir* dir = nullptr) {
  switch (t) {
    case Transport::tcp4:
    case Transport::udp4:
      return Address::ipv4_loopback(0);
    case Transport::tcp6:
    case Transport::udp6:
      return Address::ipv6_loopback(0);
    case Transport::unix_stream:
    case Transport::unix_dgram:
      break;
  }
  return dir != nullptr ? dir->socket_address() : unique_unix_address(name(t));
}

/// The file system path of a Unix path address ("" for the others).
inline std::string unix_path(const Address& a) {
  if (a.family() != Address::Family::unix_path) return {};
  return a.to_string().substr(5);  // after "unix:"
}

/// The address a socket is bound to (getsockname); empty on failure.
inline Address bound_address(int fd) {
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) return {};
  std::error_code ec;
  return Address::from_native(reinterpret_cast<sockaddr*>(&ss), len, ec);
}

/// A loopback port of `type` (SOCK_STREAM, SOCK_DGRAM) on which nothing listens: bound once
/// to learn a free port, then closed.
inline std::uint16_t closed_port(const Address& loopback, int type) {
  std::error_code ec;
  Socket s = Socket::open(loopback.with_port(0), type, ec);
  if (ec) return 0;
  if (s.bind(loopback.with_port(0))) return 0;
  const Address a = s.local_address(ec);
  return ec ? 0 : a.port();
}

// ---------------------------------------------------------------------------------------
// Raw sockets and their options

/// Bounds every blocking send and receive on `fd` to `limit` (SO_RCVTIMEO, SO_SNDTIMEO), so
/// that a peer waiting on a broken library gives up instead of hanging the test.
inline void set_io_timeouts(int fd, std::chrono::milliseconds limit) {
  timeval tv{};
  tv.tv_sec = static_cast<time_t>(limit.count() / 1000);
  tv.tv_usec = static_cast<suseconds_t>((limit.count() % 1000) * 1000);
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

inline void set_nonblocking(int fd, bool on) {
  const int flags = ::fcntl(fd, F_GETFL);
  if (flags < 0) throw_errno("fcntl(F_GETFL)");
  if (::fcntl(fd, F_SETFL, on ? (flags | O_NONBLOCK) : (flags & ~O_NONBLOCK)) != 0)
    throw_errno("fcntl(F_SETFL)");
}

inline void set_int_option(int fd, int level, int name, int value) {
  if (::setsockopt(fd, level, name, &value, sizeof value) != 0) throw_errno("setsockopt");
}

/// A raw blocking stream socket bound to a fresh bind_address(t) (not listening yet).
inline Fd raw_bound_socket(Transport t) {
  const Address a = bind_address(t);
  Fd fd(::socket(a.domain(), SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (fd.get() < 0) throw_errno("socket");
  if (::bind(fd.get(), a.native(), a.native_size()) != 0) throw_errno("bind");
  return fd;
}

/// A non-blocking stream socket whose connect to `to` has been started (EINPROGRESS is not an
/// error). On failure the Fd is empty and `err` holds errno.
inline Fd raw_connect(const Address& to, int& err) {
  err = 0;
  const int fd = ::socket(to.domain(), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    err = errno;
    return Fd{};
  }
  Fd f(fd);
  if (::connect(fd, to.native(), to.native_size()) != 0 && errno != EINPROGRESS) {
    err = errno;
    return Fd{};
  }
  return f;
}

/// How the peer end of a StreamPair behaves.
enum class PeerMode : std::uint8_t {
  blocking,     ///< plain blocking syscalls, each bounded by a 20 s SO_RCVTIMEO/SO_SNDTIMEO
  nonblocking,  ///< O_NONBLOCK, for driving from the loop thread (or wrapping in a Socket)
};

/// A connected stream: `ours` (the accepted end, non-blocking and close-on-exec, ready for a
/// Connection) and `peer` (the connecting end, raw).
struct StreamPair {
  Socket ours;
  Fd peer;
};

/// Makes a connected pair over transport `t` with plain system calls (no library code in the
/// way): listen, connect, accept4, close the listener. Throws std::system_error on failure.
inline StreamPair make_stream_pair(Transport t, PeerMode mode = PeerMode::blocking) {
  using namespace std::chrono_literals;
  Fd listener = raw_bound_socket(t);
  if (::listen(listener.get(), 4) != 0) throw_errno("listen");
  const Address where = bound_address(listener.get());
  if (where.empty()) throw_errno("getsockname");
  Fd peer(::socket(where.domain(), SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (peer.get() < 0) throw_errno("socket");
  if (::connect(peer.get(), where.native(), where.native_size()) != 0) throw_errno("connect");
  const int ours = ::accept4(listener.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
  if (ours < 0) throw_errno("accept4");
  if (t != Transport::unix_stream) set_int_option(peer.get(), IPPROTO_TCP, TCP_NODELAY, 1);
  set_io_timeouts(peer.get(), 20s);
  if (mode == PeerMode::nonblocking) set_nonblocking(peer.get(), true);
  return StreamPair{Socket(ours), std::move(peer)};
}

/// SO_LINGER {1, 0} and close: a TCP peer sends a reset. (For a Unix stream socket the
/// linger is ignored; closing with unread input gives the other end ECONNRESET instead.)
inline void reset_close(Fd& fd) {
  const linger l{1, 0};
  ::setsockopt(fd.get(), SOL_SOCKET, SO_LINGER, &l, sizeof l);
  fd.reset();
}

/// TCP_INFO state of a TCP socket (TCP_ESTABLISHED, TCP_SYN_SENT, TCP_CLOSE, ...), or -1.
inline int tcp_state(int fd) {
  tcp_info info{};
  socklen_t len = sizeof info;
  if (::getsockopt(fd, IPPROTO_TCP, TCP_INFO, &info, &len) != 0) return -1;
  return info.tcpi_state;
}

/// A thread for the peer side. Its destructor first shuts down `fd` (both ways) if the
/// thread is still running, so that a peer blocked on a test that already failed wakes up,
/// then joins. Call join() on the normal path.
class PeerThread {
 public:
  PeerThread(int fd, std::function<void()> body)
      : fd_(fd), thread_([this, body = std::move(body)] {
          body();
          finished_.store(true);
        }) {}
  PeerThread(const PeerThread&) = delete;
  PeerThread& operator=(const PeerThread&) = delete;
  ~PeerThread() {
    if (thread_.joinable() && !finished_.load()) ::shutdown(fd_, SHUT_RDWR);
    join();
  }
  void join() {
    if (thread_.joinable()) thread_.join();
  }
  bool finished() const { return finished_.load(); }

 private:
  int fd_;
  std::atomic<bool> finished_{false};
  std::thread thread_;
};

// ---------------------------------------------------------------------------------------
// Watching a connection

/// Records what a Connection reports. attach() installs handlers that record (and consume
/// all input); tests may replace single handlers afterwards and call the record_* members.
struct Recorder {
  std::string data;
  std::size_t data_calls = 0;
  int closes = 0;
  int eofs = 0;
  int highs = 0;
  int lows = 0;
  CloseReason reason = CloseReason::local;
  std::error_code error;
  int calls_after_close = 0;  ///< any callback after on_close: must stay 0

  void record_data(Buffer& in) {
    if (closes != 0) ++calls_after_close;
    ++data_calls;
    data.append(in.view());
    in.consume(in.size());
  }
  void record_close(CloseReason r, std::error_code ec) {
    if (closes != 0) ++calls_after_close;
    ++closes;
    reason = r;
    error = ec;
  }
  bool closed() const { return closes > 0; }

  void attach(Connection& c) {
    c.on_data([this](Connection&, Buffer& in) { record_data(in); });
    c.on_close([this](Connection&, CloseReason r, std::error_code ec) { record_close(r, ec); });
    c.on_high_watermark([this](Connection&) {
      if (closes != 0) ++calls_after_close;
      ++highs;
    });
    c.on_low_watermark([this](Connection&) {
      if (closes != 0) ++calls_after_close;
      ++lows;
    });
  }
};

}  // namespace reactor::test
