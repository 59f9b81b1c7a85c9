// SPDX-License-Identifier: MIT
#pragma once
/// Bytes through raw fds with plain system calls (no library in the way): writing all,
/// writing what fits, filling a socket, reading what is there, waiting for readiness.
/// Sends use MSG_NOSIGNAL, so that a test never dies of SIGPIPE.
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <string>
#include <string_view>
#include <utility>

namespace reactor::test {

/// Writes one byte; true on success.
inline bool write_byte(int fd, char c = 'x') { return ::write(fd, &c, 1) == 1; }

/// Writes all of `data`: on a blocking fd, or a non-blocking one with room. Sockets are
/// written with MSG_NOSIGNAL; other fds (pipes) with write(2). False on an error, a send
/// timeout or a full non-blocking fd.
inline bool send_all(int fd, std::string_view data) {
  bool socket = true;
  std::size_t off = 0;
  while (off < data.size()) {
    ssize_t n = socket ? ::send(fd, data.data() + off, data.size() - off, MSG_NOSIGNAL) : -1;
    if (n < 0 && errno == ENOTSOCK) {
      socket = false;
      n = ::write(fd, data.data() + off, data.size() - off);
    }
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    off += static_cast<std::size_t>(n);
  }
  return true;
}

/// Sends what fits from the front of `pending` on a non-blocking socket and erases it;
/// returns the errno of a hard error (0 when fine or merely full).
inline int send_some(int fd, std::string& pending) {
  while (!pending.empty()) {
    const ssize_t n = ::send(fd, pending.data(), pending.size(), MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return (errno == EAGAIN || errno == EWOULDBLOCK) ? 0 : errno;
    pending.erase(0, static_cast<std::size_t>(n));
  }
  return 0;
}

/// Writes to a non-blocking fd until the kernel says EAGAIN; returns the bytes written
/// (bounded at 64 MiB so that a broken socket cannot make this loop forever).
inline std::size_t fill(int fd) {
  static const std::string chunk(4096, 'f');
  std::size_t total = 0;
  while (total < (std::size_t{64} << 20)) {
    const ssize_t n = ::write(fd, chunk.data(), chunk.size());
    if (n <= 0) break;
    total += static_cast<std::size_t>(n);
  }
  // Top up with single bytes: the last chunk may have left room for less than a chunk.
  for (int i = 0; i < 65536 && write_byte(fd); ++i) ++total;
  return total;
}

/// What a non-blocking reader has read so far, and how its reading ended.
struct PeerInput {
  std::string bytes;
  bool eof = false;  ///< read returned 0
  int error = 0;     ///< errno of a failed read (ECONNRESET, ...)
};

/// Reads everything available from a non-blocking fd into `in` (stops once this call has
/// read `limit` bytes or more), until EAGAIN, EOF or an error. Returns the bytes read by this call.
inline std::size_t drain_into(int fd, PeerInput& in, std::size_t limit = std::size_t{64} << 20) {
  char buf[65536];
  std::size_t got = 0;
  while (got < limit && !in.eof && in.error == 0) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
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

/// Reads everything available from a non-blocking fd, at most `limit` bytes; stops at EAGAIN
/// or EOF and returns the bytes read.
inline std::string drain(int fd, std::size_t limit = std::size_t{64} << 20) {
  PeerInput in;
  drain_into(fd, in, limit);
  return std::move(in.bytes);
}

/// Bytes waiting in `fd`'s receive queue (FIONREAD), or -1.
inline int unread_bytes(int fd) {
  int n = 0;
  if (::ioctl(fd, FIONREAD, &n) != 0) return -1;
  return n;
}

/// Waits up to `ms` for `events` on `fd` with poll(2); the revents (0 on timeout).
inline short wait_fd(int fd, short events, int ms) {
  pollfd p{fd, events, 0};
  int rc;
  do {
    rc = ::poll(&p, 1, ms);
  } while (rc < 0 && errno == EINTR);
  return rc > 0 ? p.revents : 0;
}

}  // namespace reactor::test
