#pragma once
/// Header-only helpers for the stream-connection tests (stream, flow control, peer failure,
/// fairness): the loopback transports to loop over, connected socket pairs whose peer end is
/// a raw socket driven by plain system calls, bounded loop driving, deterministic byte
/// patterns and checksums, a recorder for a Connection's callbacks and a peer thread that
/// cannot outlive its test.
/// Everything here is for the test's own (loop) thread unless it says otherwise.
/// Namespace reactor::test::nethelpers, so that nothing here can clash with other helpers.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <initializer_list>
#include <memory>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include "reactor/core/reactor.hpp"
#include "reactor/net/address.hpp"
#include "reactor/net/buffer.hpp"
#include "reactor/net/connection.hpp"
#include "reactor/net/socket.hpp"
#include "tests/support/fds.hpp"

namespace reactor::test::nethelpers {

using namespace std::chrono_literals;
using SteadyClock = std::chrono::steady_clock;

// ---------------------------------------------------------------------------------------
// Errors

/// Success when `ec` names the same errno as `expected` (whatever its category).
inline ::testing::AssertionResult HasErrc(const std::error_code& ec, std::errc expected) {
  if (ec == expected) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure()
         << "got " << (ec ? ec.message() : std::string("no error")) << " (" << ec.value()
         << "), expected " << std::make_error_code(expected).message() << " ("
         << static_cast<int>(expected) << ")";
}

/// Success when `ec` names one of `expected`.
inline ::testing::AssertionResult HasOneOf(const std::error_code& ec,
                                           std::initializer_list<std::errc> expected) {
  std::string names;
  for (std::errc e : expected) {
    if (ec == e) return ::testing::AssertionSuccess();
    names += (names.empty() ? "" : " or ") + std::make_error_code(e).message();
  }
  return ::testing::AssertionFailure() << "got " << (ec ? ec.message() : std::string("no error"))
                                       << " (" << ec.value() << "), expected " << names;
}

/// std::system_error from errno, with what was being done.
[[noreturn]] inline void throw_errno(const char* what) {
  throw std::system_error(errno, std::generic_category(), what);
}

// ---------------------------------------------------------------------------------------
// Transports

/// The stream transports every connection test runs over.
enum class Transport : std::uint8_t { tcp4, tcp6, unix_stream };
inline constexpr std::array<Transport, 3> kAllTransports{Transport::tcp4, Transport::tcp6,
                                                         Transport::unix_stream};

inline const char* name(Transport t) {
  switch (t) {
    case Transport::tcp4:
      return "tcp4";
    case Transport::tcp6:
      return "tcp6";
    case Transport::unix_stream:
      return "unix";
  }
  return "?";
}

/// True when a TCP socket can be bound to ::1 (some containers have no IPv6).
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

/// True when `t` can be used here. When it cannot (tcp6 without ::1), says so on stdout and
/// as a test property, so that the part is visibly skipped rather than silently passed.
inline bool usable(Transport t) {
  if (t != Transport::tcp6 || ipv6_loopback_available()) return true;
  std::printf("[  SKIPPED ] the tcp6 part: ::1 cannot be bound here\n");
  ::testing::Test::RecordProperty("tcp6", "skipped: ::1 cannot be bound");
  return false;
}

/// Runs `part(t)` for every usable transport, each under a SCOPED_TRACE naming it and inside
/// its own FdLeakCheck (so `part` must have closed and released everything it opened,
/// loop included, when it returns). An ASSERT in `part` ends only that transport's part.
template <class Part>
void for_each_transport(Part part) {
  for (Transport t : kAllTransports) {
    SCOPED_TRACE(std::string("transport ") + name(t));
    if (!usable(t)) continue;
    FdLeakCheck leak;
    part(t);
  }
}

/// A fresh Linux abstract Unix name, unique in this process and unlikely to clash with
/// another process ("@reactor-nh-<pid>-<n>").
inline Address unique_unix_address() {
  static std::atomic<unsigned> counter{0};
  std::error_code ec;
  Address a = Address::unix_socket(
      "@reactor-nh-" + std::to_string(::getpid()) + "-" + std::to_string(counter.fetch_add(1)), ec);
  if (ec) throw std::system_error(ec, "unique_unix_address");
  return a;
}

/// The address to bind a listener of transport `t` to: loopback port 0, or a fresh
/// abstract Unix name.
inline Address listen_address(Transport t) {
  switch (t) {
    case Transport::tcp4:
      return Address::ipv4_loopback(0);
    case Transport::tcp6:
      return Address::ipv6_loopback(0);
    case Transport::unix_stream:
      return unique_unix_address();
  }
  return {};
}

/// The address a socket is bound to (getsockname).
inline Address bound_address(int fd) {
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) throw_errno("getsockname");
  std::error_code ec;
  Address a = Address::from_native(reinterpret_cast<sockaddr*>(&ss), len, ec);
  if (ec) throw std::system_error(ec, "from_native");
  return a;
}

/// A raw blocking stream socket bound to `t`'s listen address (not listening yet).
inline Fd raw_bound_socket(Transport t) {
  const Address a = listen_address(t);
  Fd fd(::socket(a.domain(), SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (fd.get() < 0) throw_errno("socket");
  if (::bind(fd.get(), a.native(), a.native_size()) != 0) throw_errno("bind");
  return fd;
}

/// Bounds every blocking send and receive on `fd` to `limit`, so that a peer thread waiting
/// on a broken library gives up instead of hanging the test.
inline void set_io_timeouts(int fd, std::chrono::seconds limit) {
  timeval tv{};
  tv.tv_sec = static_cast<time_t>(limit.count());
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
  Fd listener = raw_bound_socket(t);
  if (::listen(listener.get(), 4) != 0) throw_errno("listen");
  const Address where = bound_address(listener.get());
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

/// Bytes waiting in `fd`'s receive queue (FIONREAD), or -1.
inline int unread_bytes(int fd) {
  int n = 0;
  if (::ioctl(fd, FIONREAD, &n) != 0) return -1;
  return n;
}

/// Polls `cond()` every millisecond for at most `cap` (no loop involved); returns cond().
template <class Pred>
bool wait_for(Pred cond, std::chrono::milliseconds cap = 2000ms) {
  const auto deadline = SteadyClock::now() + cap;
  while (!cond() && SteadyClock::now() < deadline) std::this_thread::sleep_for(1ms);
  return cond();
}

// ---------------------------------------------------------------------------------------
// Raw peer I/O (plain system calls; MSG_NOSIGNAL so that the peer never raises SIGPIPE)

/// Sends all of `data` on a blocking fd. False on an error or a send timeout.
inline bool send_all(int fd, std::string_view data) {
  std::size_t off = 0;
  while (off < data.size()) {
    const ssize_t n = ::send(fd, data.data() + off, data.size() - off, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    off += static_cast<std::size_t>(n);
  }
  return true;
}

/// Sends what fits from the front of `pending` on a non-blocking fd and erases it; returns
/// the errno of a hard error (0 when fine or merely full).
inline int send_some(int fd, std::string& pending) {
  while (!pending.empty()) {
    const ssize_t n = ::send(fd, pending.data(), pending.size(), MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return (errno == EAGAIN || errno == EWOULDBLOCK) ? 0 : errno;
    pending.erase(0, static_cast<std::size_t>(n));
  }
  return 0;
}

/// What a non-blocking peer has read so far.
struct PeerInput {
  std::string bytes;
  bool eof = false;  ///< read returned 0
  int error = 0;     ///< errno of a failed read (ECONNRESET, ...)
};

/// Reads everything available from a non-blocking fd into `in` (at most `limit` bytes in
/// this call), until EAGAIN, EOF or an error. Returns bytes read by this call.
inline std::size_t drain_into(int fd, PeerInput& in, std::size_t limit = std::size_t{64} << 20) {
  char buf[65536];
  std::size_t got = 0;
  while (got < limit && !in.eof && in.error == 0) {
    const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      if (errno != EAGAIN && errno != EWOULDBLOCK) in.error = errno;
      break;
    }
    if (n == 0) {
      in.eof = true;
      break;
    }
    in.bytes.append(buf, static_cast<std::size_t>(n));
    got += static_cast<std::size_t>(n);
  }
  return got;
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
// Driving a loop, bounded

/// Calls loop.run_once(step) until `done()`, `cap` of wall time, or `max_calls` calls,
/// whichever comes first; returns done().
template <class Pred>
bool drive_until(Reactor& loop, Pred done, std::chrono::milliseconds cap = 10000ms,
                 std::uint64_t max_calls = 5'000'000, std::chrono::milliseconds step = 10ms) {
  const auto deadline = SteadyClock::now() + cap;
  for (std::uint64_t calls = 0; calls < max_calls && !done() && SteadyClock::now() < deadline;
       ++calls) {
    loop.run_once(step);
  }
  return done();
}

/// Runs `n` iterations of at most `step` each (for "nothing more is delivered" checks and to
/// let posted close callbacks run).
inline void run_iterations(Reactor& loop, int n, std::chrono::milliseconds step = 2ms) {
  for (int i = 0; i < n; ++i) loop.run_once(step);
}

// ---------------------------------------------------------------------------------------
// Bytes

/// The byte at stream offset `i` of the test pattern: position-dependent and not periodic in
/// any range a test uses, so a reordered, dropped or duplicated slice is always noticed.
inline char pattern_byte(std::uint64_t i) {
  std::uint64_t x = (i + 1) * 0x9E3779B97F4A7C15ull;
  x ^= x >> 29;
  x *= 0xBF58476D1CE4E5B9ull;
  x ^= x >> 32;
  return static_cast<char>(x & 0xff);
}

/// `n` pattern bytes starting at stream offset `offset`.
inline std::string pattern(std::uint64_t offset, std::size_t n) {
  std::string s(n, '\0');
  for (std::size_t i = 0; i < n; ++i) s[i] = pattern_byte(offset + i);
  return s;
}

/// Index of the first byte of `got` that differs from the pattern at `offset`, or npos.
inline std::size_t pattern_mismatch(std::string_view got, std::uint64_t offset = 0) {
  for (std::size_t i = 0; i < got.size(); ++i) {
    if (got[i] != pattern_byte(offset + i)) return i;
  }
  return std::string_view::npos;
}

/// Index of the first difference between `a` and `b` (the shorter length if one is a prefix
/// of the other), or npos when they are equal.
inline std::size_t first_difference(std::string_view a, std::string_view b) {
  const std::size_t n = std::min(a.size(), b.size());
  for (std::size_t i = 0; i < n; ++i) {
    if (a[i] != b[i]) return i;
  }
  return a.size() == b.size() ? std::string_view::npos : n;
}

/// 64-bit FNV-1a, fed incrementally.
struct Fnv1a {
  std::uint64_t value = 14695981039346656037ull;
  std::uint64_t bytes = 0;
  void update(std::string_view s) {
    for (unsigned char c : s) {
      value ^= c;
      value *= 1099511628211ull;
    }
    bytes += s.size();
  }
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

}  // namespace reactor::test::nethelpers
