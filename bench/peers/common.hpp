// SPDX-License-Identifier: MIT
#pragma once
/// \file
/// What every peer echo server shares, and nothing of how it handles events: the limits
/// they all obey, the command line ("peer-<name> 127.0.0.1:PORT"), the one line printed
/// when ready, exit on SIGTERM/SIGINT, the fd limit, and, for the peers that manage their own
/// sockets, a listening socket and a pending-output queue.
///
/// Exit on a signal is `_exit(0)` straight from the handler: it is prompt however busy the
/// loop is, the kernel closes every socket, and no peer's loop carries a signal watcher
/// that the others would not. SIGPIPE is ignored, as every careful server does.
///
/// Single-threaded: nothing here may be called from more than one thread.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>

namespace reactor::bench::peers {

/// Largest single read, in bytes.
inline constexpr std::size_t kReadSize = 64 * 1024;
/// A connection stops reading while more than this many bytes wait to be written, and
/// resumes once they are all written, so each connection holds at most about
/// kHighWater + kReadSize bytes.
inline constexpr std::size_t kHighWater = 1024 * 1024;
/// listen(2) backlog (the kernel caps it at net.core.somaxconn).
inline constexpr int kBacklog = 4096;
/// How long a peer stops accepting after accept(2) fails for want of fds or memory.
inline constexpr std::chrono::milliseconds kAcceptBackoff{50};

/// Prints "<program>: <what>: <strerror(err)>" to stderr and exits 1.
[[noreturn]] inline void die(const char* what, int err) {
  std::fprintf(stderr, "%s: %s: %s\n", program_invocation_short_name, what, std::strerror(err));
  std::exit(1);
}

/// Parses "A.B.C.D:PORT" (port 0 allowed); nullopt if it is anything else.
inline std::optional<sockaddr_in> parse_address(std::string_view text) {
  const std::size_t colon = text.rfind(':');
  if (colon == std::string_view::npos) return std::nullopt;
  const std::string host(text.substr(0, colon));
  const std::string_view port_text = text.substr(colon + 1);
  unsigned port = 0;
  const auto [end, ec] =
      std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
  if (port_text.empty() || ec != std::errc() || end != port_text.data() + port_text.size() ||
      port > 65535) {
    return std::nullopt;
  }
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<std::uint16_t>(port));
  if (::inet_pton(AF_INET, host.c_str(), &addr.sin_addr) != 1) return std::nullopt;
  return addr;
}

/// The start of every peer's main(): installs the signal dispositions, raises the soft fd
/// limit to the hard one (benchmarks hold thousands of connections), and returns the
/// address in argv[1], or prints usage and exits 2.
inline sockaddr_in start(int argc, char** argv) {
  rlimit fds{};
  if (::getrlimit(RLIMIT_NOFILE, &fds) == 0 && fds.rlim_cur < fds.rlim_max) {
    fds.rlim_cur = fds.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &fds);
  }

  struct sigaction exit_now {};
  exit_now.sa_handler = [](int) { ::_exit(0); };
  ::sigemptyset(&exit_now.sa_mask);
  ::sigaction(SIGTERM, &exit_now, nullptr);
  ::sigaction(SIGINT, &exit_now, nullptr);
  ::signal(SIGPIPE, SIG_IGN);

  std::optional<sockaddr_in> addr;
  if (argc == 2) addr = parse_address(argv[1]);
  if (!addr) {
    std::fprintf(stderr, "usage: %s 127.0.0.1:PORT\n", argc > 0 ? argv[0] : "peer");
    std::exit(2);
  }
  return *addr;
}

/// Prints "listening on A.B.C.D:PORT" for the address `fd` is bound to, and flushes.
inline void announce(int fd) {
  sockaddr_in bound{};
  socklen_t len = sizeof bound;
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&bound), &len) != 0) {
    die("getsockname", errno);
  }
  char host[INET_ADDRSTRLEN] = {};
  ::inet_ntop(AF_INET, &bound.sin_addr, host, sizeof host);
  std::printf("listening on %s:%u\n", host, unsigned{ntohs(bound.sin_port)});
  std::fflush(stdout);
}

/// A non-blocking listening socket with SO_REUSEADDR, bound to `addr`; exits 1 on failure.
/// For the peers whose library has no listener of its own.
inline int listen_tcp(const sockaddr_in& addr) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) die("socket", errno);
  const int on = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
  if (::bind(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) die("bind", errno);
  if (::listen(fd, kBacklog) != 0) die("listen", errno);
  return fd;
}

/// Turns Nagle off on an accepted socket.
inline void set_nodelay(int fd) noexcept {
  const int on = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on);
}

/// What a loop does after accept(2) failed with `err`.
enum class AcceptNext {
  kRetry,    ///< that connection failed on its own (aborted, refused by policy): accept again
  kDrained,  ///< no connection is waiting: wait for readiness
  kBackOff,  ///< out of fds or memory, or worse: the listening socket stays readable, so a
             ///< level-triggered loop stops watching it for kAcceptBackoff instead of spinning
};

inline AcceptNext after_accept_error(int err) noexcept {
  switch (err) {
    case EAGAIN:
      return AcceptNext::kDrained;
    case EINTR:
    case ECONNABORTED:
    case EPROTO:
    case EPERM:
      return AcceptNext::kRetry;
    default:
      return AcceptNext::kBackOff;
  }
}

/// Bytes the kernel has not taken yet, oldest first: appended at the back, consumed from
/// the front. Storage is released when a large queue drains, so an idle connection that
/// once fell behind does not keep a megabyte.
class OutputQueue {
 public:
  bool empty() const noexcept { return head_ == bytes_.size(); }
  std::size_t size() const noexcept { return bytes_.size() - head_; }
  const char* data() const noexcept { return bytes_.data() + head_; }

  void append(const char* data, std::size_t n) { bytes_.append(data, n); }

  /// Drops the first `n` bytes (n <= size()).
  void consume(std::size_t n) {
    head_ += n;
    if (head_ == bytes_.size()) {
      head_ = 0;
      if (bytes_.capacity() > kReadSize) {
        std::string().swap(bytes_);
      } else {
        bytes_.clear();
      }
    } else if (head_ >= kReadSize && head_ * 2 >= bytes_.size()) {
      bytes_.erase(0, head_);  // amortised: moves at most as much as was consumed
      head_ = 0;
    }
  }

 private:
  std::string bytes_;
  std::size_t head_ = 0;
};

/// The raw peers' echo step: one read of up to `size` bytes into `buf`, written straight
/// back unless older bytes are queued; what the kernel does not take is queued, and reading
/// pauses past kHighWater. False: the connection is finished (end of stream or an error).
inline bool echo_once(int fd, OutputQueue& out, bool& paused, char* buf, std::size_t size) {
  const ssize_t n = ::read(fd, buf, size);
  if (n == 0) return false;
  if (n < 0) return errno == EAGAIN || errno == EINTR;
  ssize_t written = 0;
  if (out.empty()) {
    written = ::write(fd, buf, static_cast<std::size_t>(n));
    if (written < 0) {
      if (errno != EAGAIN && errno != EINTR) return false;
      written = 0;
    }
    if (written == n) return true;
  }
  out.append(buf + written, static_cast<std::size_t>(n - written));
  if (out.size() > kHighWater) paused = true;
  return true;
}

/// Writes as much of the queue as the kernel takes; reading resumes once it is empty.
/// False: the connection failed.
inline bool flush_queue(int fd, OutputQueue& out, bool& paused) {
  const ssize_t n = ::write(fd, out.data(), out.size());
  if (n < 0) return errno == EAGAIN || errno == EINTR;
  out.consume(static_cast<std::size_t>(n));
  if (out.empty()) paused = false;
  return true;
}

}  // namespace reactor::bench::peers
