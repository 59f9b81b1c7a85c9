#pragma once
/// Header-only helpers for the datagram, listener, connector, allocation-failure and echo
/// tests: the loopback transports to loop over, bounded loop driving, raw sockets that do not
/// go through the library, fd-limit and buffer-allocator scopes.
/// Everything here is for the test's own (loop) thread unless it says otherwise.
/// Namespace reactor::test::netutil, so that nothing here can clash with other helpers.
#include <dirent.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <mutex>
#include <random>
#include <set>
#include <string>
#include <system_error>
#include <vector>

#include "reactor/core/reactor.hpp"
#include "reactor/net/address.hpp"
#include "reactor/net/buffer.hpp"
#include "reactor/net/socket.hpp"
#include "tests/support/fds.hpp"

namespace reactor::test::netutil {

using namespace std::chrono_literals;

/// Builds and destroys one Reactor over `backend` once per process: libuv opens process-wide
/// fds on first use and never closes them, which must not count against a FdLeakCheck.
inline void warm_up(const std::string& backend) {
  static std::mutex mutex;
  static std::set<std::string> done;
  std::lock_guard lock(mutex);
  if (!done.insert(backend).second) return;
  Reactor loop(backend);
  loop.run_once(std::chrono::nanoseconds{0});
}

/// Success when `ec` names the same errno as `expected` (whatever its category).
inline ::testing::AssertionResult IsErrc(const std::error_code& ec, std::errc expected) {
  if (ec == expected) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure()
         << "got " << (ec ? ec.message() : std::string("no error")) << " (" << ec.value()
         << "), expected " << std::make_error_code(expected).message() << " ("
         << static_cast<int>(expected) << ")";
}

// ---------------------------------------------------------------------------------------
// Transports

/// True when an IPv6 socket can be bound to ::1 (some containers have no IPv6).
inline bool ipv6_loopback_available() {
  static const bool available = [] {
    const int fd = ::socket(AF_INET6, SOCK_DGRAM | SOCK_CLOEXEC, 0);
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

/// A fresh Linux abstract Unix name, unique in this process and unlikely to clash with
/// another process ("@reactor-nt-<pid>-<n>-<tag>").
inline Address unique_unix_address(const std::string& tag = "") {
  static std::atomic<unsigned> counter{0};
  const std::string text = "unix:@reactor-nt-" + std::to_string(::getpid()) + "-" +
                           std::to_string(counter.fetch_add(1)) + "-" + tag;
  return Address::parse(text);
}

/// One loopback transport: a name for messages and the address to bind (port 0 / a fresh
/// abstract name).
struct Transport {
  std::string name;
  Address bind;
  bool ip() const { return bind.is_ip(); }
};

/// TCP over 127.0.0.1, TCP over ::1 (when available) and Unix stream (abstract name).
inline std::vector<Transport> stream_transports() {
  std::vector<Transport> t;
  t.push_back({"tcp4", Address::ipv4_loopback(0)});
  if (ipv6_loopback_available()) t.push_back({"tcp6", Address::ipv6_loopback(0)});
  t.push_back({"unix", unique_unix_address("stream")});
  return t;
}

/// UDP over 127.0.0.1, UDP over ::1 (when available) and Unix datagram (abstract name).
inline std::vector<Transport> datagram_transports() {
  std::vector<Transport> t;
  t.push_back({"udp4", Address::ipv4_loopback(0)});
  if (ipv6_loopback_available()) t.push_back({"udp6", Address::ipv6_loopback(0)});
  t.push_back({"unixdgram", unique_unix_address("dgram")});
  return t;
}

/// Another bind address of the same kind as `t.bind` (port 0, or a fresh abstract name).
inline Address another_address(const Transport& t) {
  return t.ip() ? t.bind.with_port(0) : unique_unix_address("peer");
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
// Driving a loop, bounded

/// Calls loop.run_once(step) until `done()` or `cap` of wall time passed; returns done().
template <class Pred>
bool drive(Reactor& loop, Pred done, std::chrono::milliseconds cap = 5000ms,
           std::chrono::milliseconds step = 10ms) {
  const auto deadline = std::chrono::steady_clock::now() + cap;
  while (!done() && std::chrono::steady_clock::now() < deadline) loop.run_once(step);
  return done();
}

/// Runs `n` short iterations so that posted close callbacks and deferred releases run.
inline void settle(Reactor& loop, int n = 5) {
  for (int i = 0; i < n; ++i) loop.run_once(1ms);
}

/// Iterations the loop made while run_once(step) was called for about `span` of wall time
/// (at most 10,000 calls, so that a spinning loop cannot hang the test).
inline std::uint64_t iterations_over(Reactor& loop, std::chrono::milliseconds span,
                                     std::chrono::milliseconds step) {
  const std::uint64_t before = loop.iterations();
  const auto deadline = std::chrono::steady_clock::now() + span;
  for (int calls = 0; calls < 10000 && std::chrono::steady_clock::now() < deadline; ++calls) {
    loop.run_once(step);
  }
  return loop.iterations() - before;
}

// ---------------------------------------------------------------------------------------
// Raw sockets (no library in the way)

/// Waits up to `ms` for `events` on `fd` with poll(2); the revents (0 on timeout).
inline short wait_fd(int fd, short events, int ms) {
  pollfd p{fd, events, 0};
  int rc;
  do {
    rc = ::poll(&p, 1, ms);
  } while (rc < 0 && errno == EINTR);
  return rc > 0 ? p.revents : 0;
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

/// Both ends of a connected stream over the transport of `transport` (a throw-away listening
/// socket on port 0 or a fresh abstract name, closed before returning). Non-blocking; empty
/// Sockets on failure.
struct StreamPair {
  Socket client;
  Socket server;
};
inline StreamPair make_stream_pair(const Address& transport) {
  StreamPair p;
  const Address bind = transport.is_unix() ? unique_unix_address("pair") : transport.with_port(0);
  std::error_code ec;
  Socket listener = Socket::open(bind, SOCK_STREAM, ec);
  if (ec || listener.bind(bind) || listener.listen(4)) return p;
  const Address at = listener.local_address(ec);
  if (ec) return p;
  Socket client = Socket::open(at, SOCK_STREAM, ec);
  if (ec) return p;
  const std::error_code cec = client.connect(at);
  if (cec && cec != std::errc::operation_in_progress) return p;
  if ((wait_fd(listener.fd(), POLLIN, 5000) & POLLIN) == 0) return p;
  const int fd = ::accept4(listener.fd(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
  if (fd < 0) return p;
  Socket server(fd);
  if ((wait_fd(client.fd(), POLLOUT, 5000) & POLLOUT) == 0 || client.pending_error()) return p;
  p.client = std::move(client);
  p.server = std::move(server);
  return p;
}

/// Sends as much of `data` from offset `off` as the socket takes; returns the new offset.
inline std::size_t send_some(int fd, const std::string& data, std::size_t off) {
  while (off < data.size()) {
    const ssize_t n = ::send(fd, data.data() + off, data.size() - off, MSG_NOSIGNAL);
    if (n <= 0) break;
    off += static_cast<std::size_t>(n);
  }
  return off;
}

/// What read_some() found: bytes (and then maybe EAGAIN), only EAGAIN, end of file, an error.
enum class ReadResult { data, again, eof, error };
/// Reads what is available (non-blocking) into `out`, at most `limit` bytes in total. On
/// ReadResult::error, `*err` (when given) holds errno.
inline ReadResult read_some(int fd, std::string& out, std::size_t limit, int* err = nullptr) {
  char buf[16384];
  ReadResult r = ReadResult::again;
  while (out.size() < limit) {
    const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n > 0) {
      out.append(buf, static_cast<std::size_t>(n));
      r = ReadResult::data;
      continue;
    }
    if (n == 0) return ReadResult::eof;
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) return r;
    if (err != nullptr) *err = errno;
    return ReadResult::error;
  }
  return r;
}

/// `n` random bytes from `rng`.
inline std::string random_bytes(std::mt19937_64& rng, std::size_t n) {
  std::string s(n, '\0');
  for (std::size_t i = 0; i < n; ++i) s[i] = static_cast<char>(rng() & 0xff);
  return s;
}

// ---------------------------------------------------------------------------------------
// Process-wide state, saved and restored per test

/// The open fd numbers of this process.
inline std::vector<int> open_fds() {
  std::vector<int> fds;
  DIR* dir = ::opendir("/proc/self/fd");
  if (dir == nullptr) return fds;
  const int own = ::dirfd(dir);
  while (const dirent* e = ::readdir(dir)) {
    if (e->d_name[0] == '.') continue;
    const int fd = std::atoi(e->d_name);
    if (fd != own) fds.push_back(fd);
  }
  ::closedir(dir);
  return fds;
}

/// The smallest soft RLIMIT_NOFILE under which exactly `free_slots` fd numbers are free.
inline rlim_t limit_leaving_free(std::size_t free_slots) {
  const std::vector<int> fds = open_fds();
  std::set<int> used(fds.begin(), fds.end());
  std::size_t free = 0;
  int n = 0;
  for (; free < free_slots || used.count(n) != 0; ++n) {
    if (used.count(n) == 0) ++free;
  }
  return static_cast<rlim_t>(n);
}

/// Saves RLIMIT_NOFILE and restores it at scope end (also when an assertion fails).
class ScopedFdLimit {
 public:
  ScopedFdLimit() { ok_ = ::getrlimit(RLIMIT_NOFILE, &saved_) == 0; }
  ScopedFdLimit(const ScopedFdLimit&) = delete;
  ScopedFdLimit& operator=(const ScopedFdLimit&) = delete;
  ~ScopedFdLimit() { restore(); }

  /// Sets the soft limit; true on success.
  bool set_soft(rlim_t soft) {
    if (!ok_) return false;
    rlimit lim = saved_;
    lim.rlim_cur = soft;
    return ::setrlimit(RLIMIT_NOFILE, &lim) == 0;
  }
  /// Raises the soft limit to the hard limit; true when it then allows `want` fds.
  bool raise_to_hard(rlim_t want) {
    if (!ok_) return false;
    rlimit lim = saved_;
    lim.rlim_cur = lim.rlim_max;
    if (::setrlimit(RLIMIT_NOFILE, &lim) != 0) return false;
    return lim.rlim_cur == RLIM_INFINITY || lim.rlim_cur >= want;
  }
  void restore() {
    if (ok_) ::setrlimit(RLIMIT_NOFILE, &saved_);
  }

 private:
  rlimit saved_{};
  bool ok_ = false;
};

/// A buffer allocator that fails on demand: while fail_ is on, every allocation of at least
/// `fail_from_` bytes returns nullptr (and is counted). Everything else goes to the allocator
/// that was installed before. Installed for the scope; the previous one is restored after.
class ScopedFailingAllocator {
 public:
  ScopedFailingAllocator() {
    failures_count().store(0);
    fail().store(false);
    previous() = set_buffer_allocator(BufferAllocator{&allocate, &release});
  }
  ScopedFailingAllocator(const ScopedFailingAllocator&) = delete;
  ScopedFailingAllocator& operator=(const ScopedFailingAllocator&) = delete;
  ~ScopedFailingAllocator() {
    fail().store(false);
    set_buffer_allocator(previous());
  }

  /// Turns failure on for allocations of at least `from_bytes`, or off.
  void fail_from(std::size_t from_bytes) {
    threshold().store(from_bytes);
    fail().store(true);
  }
  void stop_failing() { fail().store(false); }
  /// Allocations refused so far.
  std::size_t failures() const { return failures_count().load(); }

 private:
  static BufferAllocator& previous() {
    static BufferAllocator p{};
    return p;
  }
  static std::atomic<bool>& fail() {
    static std::atomic<bool> f{false};
    return f;
  }
  static std::atomic<std::size_t>& threshold() {
    static std::atomic<std::size_t> t{0};
    return t;
  }
  static std::atomic<std::size_t>& failures_count() {
    static std::atomic<std::size_t> n{0};
    return n;
  }
  static void* allocate(std::size_t size) noexcept {
    if (fail().load() && size >= threshold().load()) {
      failures_count().fetch_add(1);
      return nullptr;
    }
    return previous().allocate(size);
  }
  static void release(void* p) noexcept { previous().release(p); }
};

}  // namespace reactor::test::netutil
