// SPDX-License-Identifier: MIT
#pragma once
/// Plain blocking clients for servers, every wait bounded by SO_RCVTIMEO/SO_SNDTIMEO: stream
/// and datagram requests, reading a line or to the end, hanging up for sure, and telling
/// whether an address still answers. Any thread.
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstring>
#include <string>
#include <string_view>

#include "reactor/net/address.hpp"
#include "tests/support/fds.hpp"
#include "tests/support/io.hpp"
#include "tests/support/sockets.hpp"

namespace reactor::test {

/// How long a client waits for any single receive or send before giving up (SO_RCVTIMEO,
/// SO_SNDTIMEO): a library bug fails the test instead of hanging it.
inline constexpr std::chrono::milliseconds kIoTimeout{10000};

/// A blocking stream socket connected to `to` (bound first to `bind_to` when it is not
/// empty: a Unix client with a name the server can see). On failure the Fd is empty and
/// `err` holds errno.
inline Fd connect_stream(const Address& to, int& err, const Address& bind_to = {},
                         std::chrono::milliseconds timeout = kIoTimeout) {
  err = 0;
  Fd fd(::socket(to.domain(), SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (fd.get() < 0) {
    err = errno;
    return Fd{};
  }
  set_io_timeouts(fd.get(), timeout);
  if (!bind_to.empty() && ::bind(fd.get(), bind_to.native(), bind_to.native_size()) != 0) {
    err = errno;
    return Fd{};
  }
  int rc;
  do {
    rc = ::connect(fd.get(), to.native(), to.native_size());
  } while (rc != 0 && errno == EINTR);
  if (rc != 0) {
    err = errno;
    return Fd{};
  }
  if (to.is_ip()) {
    const int one = 1;
    ::setsockopt(fd.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  }
  return fd;
}

/// What a client read: the bytes, and how the reading ended.
struct ClientRead {
  std::string bytes;
  bool eof = false;  ///< recv returned 0
  int error = 0;     ///< errno of a failed recv (EAGAIN: SO_RCVTIMEO ran out)
  /// The server ended the connection (FIN or reset), rather than the wait timing out.
  bool ended() const { return eof || error == ECONNRESET || error == EPIPE; }
  std::string describe() const {
    std::string s = "read \"" + bytes + "\"";
    if (eof) s += " then EOF";
    if (error != 0) s += std::string(" then ") + std::strerror(error);
    return s;
  }
};

/// Reads until EOF, an error, a receive timeout or, when `to_newline`, a '\n' (kept; read
/// byte by byte so that nothing after it is taken).
inline ClientRead read_client(int fd, bool to_newline) {
  ClientRead r;
  char buf[4096];
  for (;;) {
    const ssize_t n = ::recv(fd, buf, to_newline ? 1 : sizeof buf, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      r.error = errno;
      return r;
    }
    if (n == 0) {
      r.eof = true;
      return r;
    }
    r.bytes.append(buf, static_cast<std::size_t>(n));
    if (to_newline && buf[0] == '\n') return r;
  }
}

/// Reads until a '\n' (kept), EOF, an error or a receive timeout.
inline ClientRead read_line(int fd) { return read_client(fd, true); }

/// Reads until EOF, an error or a receive timeout.
inline ClientRead read_to_end(int fd) { return read_client(fd, false); }

/// Ends a client connection for sure: shutdown(2) first, then close. A forking server's
/// children are forked from this very process and inherit a copy of every client fd open at
/// that moment, so a bare close() would not end the connection while such a copy lives.
inline void hang_up(Fd& fd) {
  if (fd.get() >= 0) ::shutdown(fd.get(), SHUT_RDWR);
  fd.reset();
}

/// One stream request: connect, send `line`, read one line back, hang up. Returns the line
/// read, or a description of what went wrong (which never ends in '\n').
inline std::string stream_echo(const Address& to, const std::string& line,
                               const Address& bind_to = {}) {
  int err = 0;
  Fd fd = connect_stream(to, err, bind_to);
  if (fd.get() < 0) return std::string("connect failed: ") + std::strerror(err);
  if (!send_all(fd.get(), line)) return std::string("send failed: ") + std::strerror(errno);
  const ClientRead r = read_line(fd.get());
  hang_up(fd);
  if (!r.bytes.empty() && r.bytes.back() == '\n') return r.bytes;
  return r.describe();
}

/// A datagram socket for talking to `server`, bound at once (so that its address is known
/// before it sends): IP clients to loopback port 0, Unix clients to an autobound abstract
/// name (else the server could not answer). Timeouts set. Empty on failure.
inline Fd datagram_client(const Address& server, std::chrono::milliseconds timeout = kIoTimeout) {
  Fd fd(::socket(server.domain(), SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (fd.get() < 0) return Fd{};
  set_io_timeouts(fd.get(), timeout);
  if (server.is_ip()) {
    const Address local = server.with_port(0);
    if (::bind(fd.get(), local.native(), local.native_size()) != 0) return Fd{};
  } else {
    sockaddr_un sa{};
    sa.sun_family = AF_UNIX;
    if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&sa), sizeof(sa_family_t)) != 0) {
      return Fd{};
    }
  }
  return fd;
}

/// Sends one datagram; true when the kernel took it.
inline bool send_datagram(int fd, const Address& to, std::string_view bytes) {
  ssize_t n;
  do {
    n = ::sendto(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL, to.native(), to.native_size());
  } while (n < 0 && errno == EINTR);
  return n == static_cast<ssize_t>(bytes.size());
}

/// Receives one datagram; nullopt-like empty result with `err` set on a timeout or error.
inline std::string receive_datagram(int fd, int& err) {
  err = 0;
  char buf[65536];
  for (;;) {
    const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      err = errno;
      return {};
    }
    return std::string(buf, static_cast<std::size_t>(n));
  }
}

/// True when nothing is waiting to be received on `fd` (a reply that should not exist).
inline bool nothing_queued(int fd) {
  char c;
  return ::recv(fd, &c, 1, MSG_DONTWAIT | MSG_PEEK) < 0 && errno == EAGAIN;
}

/// One datagram request and its reply (or a description of what went wrong).
inline std::string datagram_echo(const Address& to, const std::string& payload) {
  Fd fd = datagram_client(to);
  if (fd.get() < 0) return std::string("socket failed: ") + std::strerror(errno);
  if (!send_datagram(fd.get(), to, payload)) {
    return std::string("sendto failed: ") + std::strerror(errno);
  }
  int err = 0;
  std::string got = receive_datagram(fd.get(), err);
  if (err != 0) return std::string("recv failed: ") + std::strerror(err);
  return got;
}

/// One request over `t`.
inline std::string echo(Transport t, const Address& to, const std::string& line) {
  return is_stream(t) ? stream_echo(to, line) : datagram_echo(to, line);
}

/// After a server closed: 0 if `to` still answers, else the errno a client gets
/// (ECONNREFUSED; ENOENT for a removed socket file).
inline int unreachable_error(Transport t, const Address& to) {
  if (is_stream(t)) {
    int err = 0;
    Fd fd = connect_stream(to, err, {}, std::chrono::seconds{2});
    return fd.get() >= 0 ? 0 : err;
  }
  Fd fd = datagram_client(to, std::chrono::seconds{1});
  if (fd.get() < 0) return errno;
  if (to.is_ip()) {
    // A connected UDP socket learns of the ICMP port-unreachable on its next call.
    if (::connect(fd.get(), to.native(), to.native_size()) != 0) return errno;
    if (::send(fd.get(), "x", 1, MSG_NOSIGNAL) != 1) return errno;
    char c;
    if (::recv(fd.get(), &c, 1, 0) >= 0) return 0;
    return errno == EAGAIN ? 0 : errno;
  }
  if (!send_datagram(fd.get(), to, "x")) return errno;
  return 0;
}

/// A client line a server test sends: "<tag>-<i>-<padding>\n".
inline std::string client_line(std::string_view tag, std::size_t i) {
  return std::string(tag) + "-" + std::to_string(i) + "-abcdefghijklmnopqrstuvwxyz\n";
}

}  // namespace reactor::test
