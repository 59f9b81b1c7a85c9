// SPDX-License-Identifier: MIT
#pragma once
/// File descriptors in tests: an owning Fd, socket pairs that close themselves, the process's
/// open fds and an fd-leak check, RLIMIT_NOFILE saved and restored, socket inodes, and pipes
/// that catch a library closing an fd number twice.
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <sys/types.h>

#include <cstddef>
#include <set>
#include <utility>
#include <vector>

namespace reactor::test {

/// The open fd numbers of this process (from /proc/self/fd).
std::vector<int> open_fds();

/// Number of fds open in this process.
std::size_t open_fd_count();

/// Owns an fd; closes it on destruction unless released.
class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  Fd(Fd&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
  Fd& operator=(Fd&& o) noexcept;
  ~Fd() { reset(); }
  int get() const { return fd_; }
  int release() { return std::exchange(fd_, -1); }
  void reset(int fd = -1);

 private:
  int fd_ = -1;
};

/// A non-blocking, close-on-exec AF_UNIX stream socket pair.
struct SocketPair {
  SocketPair();
  Fd a, b;
};

/// Asserts at scope end that no fd opened inside the scope is still open.
class FdLeakCheck {
 public:
  FdLeakCheck() : before_(open_fd_count()) {}
  ~FdLeakCheck() { EXPECT_EQ(open_fd_count(), before_) << "fds leaked"; }

 private:
  std::size_t before_;
};

/// The smallest soft RLIMIT_NOFILE under which exactly `free_slots` fd numbers are free.
rlim_t limit_leaving_free(std::size_t free_slots);

/// Saves RLIMIT_NOFILE and restores it at scope end (also when an assertion fails).
class ScopedFdLimit {
 public:
  ScopedFdLimit();
  ScopedFdLimit(const ScopedFdLimit&) = delete;
  ScopedFdLimit& operator=(const ScopedFdLimit&) = delete;
  ~ScopedFdLimit() { restore(); }

  /// Sets the soft limit; true on success.
  bool set_soft(rlim_t soft);
  /// Raises the soft limit to the hard limit; true when it then allows `want` fds.
  bool raise_to_hard(rlim_t want);
  void restore();

 private:
  rlimit saved_{};
  bool ok_ = false;
};

/// The inode of the socket behind `fd` (0 if it is not open).
ino_t inode_of(int fd);

/// True when some fd of this process refers to socket inode `ino` (/proc/self/fd links
/// read "socket:[ino]"). Safe in a forked child: no allocation beyond a small string.
bool socket_inode_open(ino_t ino);

/// Pipes opened right after the library closed fds: they take the freed numbers. A library
/// that closes a number a second time closes one of these; intact() notices.
class ReusePipes {
 public:
  /// Opens `n` pipes (2n fds).
  void open(std::size_t n);
  /// Makes the read end of every pipe opened so far readable (one byte each), so that a
  /// stale registration of a reused number would report it.
  void fill();
  /// Every pipe still open, still the same pipe (a byte written goes through), and the byte
  /// written by fill() still unread (nobody else read it). Leaves the pipes as they were.
  ::testing::AssertionResult intact();
  bool holds(int fd) const { return numbers_.count(fd) != 0; }
  std::size_t size() const { return pipes_.size(); }
  void close() {
    pipes_.clear();
    numbers_.clear();
  }

 private:
  struct Pipe {
    Fd r;
    Fd w;
    bool filled;
  };
  std::vector<Pipe> pipes_;
  std::set<int> numbers_;
};

}  // namespace reactor::test
