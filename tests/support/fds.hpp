#pragma once
/// Small fd helpers for tests: socket pairs that close themselves, and an fd-leak check.
#include <gtest/gtest.h>

#include <cstddef>
#include <utility>

namespace reactor::test {

/// Number of fds open in this process (counted from /proc/self/fd).
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

}  // namespace reactor::test
