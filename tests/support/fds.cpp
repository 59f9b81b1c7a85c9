// SPDX-License-Identifier: MIT
#include "tests/support/fds.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <string>
#include <string_view>
#include <system_error>

#include "tests/support/io.hpp"

namespace reactor::test {

std::vector<int> open_fds() {
  std::vector<int> fds;
  DIR* dir = ::opendir("/proc/self/fd");
  if (dir == nullptr) throw std::system_error(errno, std::generic_category(), "opendir");
  const int own = ::dirfd(dir);
  while (const dirent* e = ::readdir(dir)) {
    if (e->d_name[0] == '.') continue;
    const int fd = std::atoi(e->d_name);
    if (fd != own) fds.push_back(fd);
  }
  ::closedir(dir);
  return fds;
}

std::size_t open_fd_count() { return open_fds().size(); }

Fd& Fd::operator=(Fd&& o) noexcept {
  if (this != &o) reset(o.release());
  return *this;
}

void Fd::reset(int fd) {
  if (fd_ >= 0) ::close(fd_);
  fd_ = fd;
}

SocketPair::SocketPair() {
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) != 0)
    throw std::system_error(errno, std::generic_category(), "socketpair");
  a.reset(sv[0]);
  b.reset(sv[1]);
}

rlim_t limit_leaving_free(std::size_t free_slots) {
  const std::vector<int> fds = open_fds();
  std::set<int> used(fds.begin(), fds.end());
  std::size_t free = 0;
  int n = 0;
  for (; free < free_slots || used.count(n) != 0; ++n) {
    if (used.count(n) == 0) ++free;
  }
  return static_cast<rlim_t>(n);
}

ScopedFdLimit::ScopedFdLimit() { ok_ = ::getrlimit(RLIMIT_NOFILE, &saved_) == 0; }

bool ScopedFdLimit::set_soft(rlim_t soft) {
  if (!ok_) return false;
  rlimit lim = saved_;
  lim.rlim_cur = soft;
  return ::setrlimit(RLIMIT_NOFILE, &lim) == 0;
}

bool ScopedFdLimit::raise_to_hard(rlim_t want) {
  if (!ok_) return false;
  rlimit lim = saved_;
  lim.rlim_cur = lim.rlim_max;
  if (::setrlimit(RLIMIT_NOFILE, &lim) != 0) return false;
  return lim.rlim_cur == RLIM_INFINITY || lim.rlim_cur >= want;
}

void ScopedFdLimit::restore() {
  if (ok_) ::setrlimit(RLIMIT_NOFILE, &saved_);
}

ino_t inode_of(int fd) {
  struct stat st {};
  if (::fstat(fd, &st) != 0) return 0;
  return st.st_ino;
}

bool socket_inode_open(ino_t ino) {
  const std::string want = "socket:[" + std::to_string(ino) + "]";
  bool found = false;
  if (DIR* dir = ::opendir("/proc/self/fd")) {
    while (const dirent* e = ::readdir(dir)) {
      if (e->d_name[0] == '.') continue;
      char link[64];
      const std::string p = std::string("/proc/self/fd/") + e->d_name;
      const ssize_t n = ::readlink(p.c_str(), link, sizeof link - 1);
      if (n > 0 && want == std::string_view(link, static_cast<std::size_t>(n))) found = true;
    }
    ::closedir(dir);
  }
  return found;
}

void ReusePipes::open(std::size_t n) {
  for (std::size_t i = 0; i < n; ++i) {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC | O_NONBLOCK) != 0) return;
    pipes_.push_back({Fd(fds[0]), Fd(fds[1]), false});
    numbers_.insert(fds[0]);
    numbers_.insert(fds[1]);
  }
}

void ReusePipes::fill() {
  for (Pipe& p : pipes_) {
    if (!p.filled) p.filled = write_byte(p.w.get(), 'p');
  }
}

::testing::AssertionResult ReusePipes::intact() {
  for (Pipe& p : pipes_) {
    if (::fcntl(p.r.get(), F_GETFD) < 0 || ::fcntl(p.w.get(), F_GETFD) < 0) {
      return ::testing::AssertionFailure()
             << "fd " << p.r.get() << " or " << p.w.get() << " was closed behind our back";
    }
    const int queued = unread_bytes(p.r.get());
    if (queued != (p.filled ? 1 : 0)) {
      return ::testing::AssertionFailure() << "pipe " << p.r.get() << " holds " << queued
                                           << " bytes, expected " << (p.filled ? 1 : 0);
    }
    if (!write_byte(p.w.get(), 'q')) {
      return ::testing::AssertionFailure() << "write to pipe fd " << p.w.get() << " failed";
    }
    const std::string got = drain(p.r.get());
    if (got != (p.filled ? "pq" : "q")) {
      return ::testing::AssertionFailure()
             << "pipe " << p.r.get() << " read \"" << got << "\": not the same pipe";
    }
    if (p.filled) write_byte(p.w.get(), 'p');
  }
  return ::testing::AssertionSuccess();
}

}  // namespace reactor::test
