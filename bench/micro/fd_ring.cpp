// SPDX-License-Identifier: MIT
#include "bench/micro/fd_ring.hpp"

#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace reactor::bench {

FdRing::FdRing(std::size_t pairs) {
  read_fd_.reserve(pairs);
  write_fd_.reserve(pairs);
  for (std::size_t i = 0; i < pairs; ++i) {
    int sv[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) != 0) {
      error_ = "socketpair #" + std::to_string(i) + ": " + std::strerror(errno);
      break;
    }
    read_fd_.push_back(sv[0]);
    write_fd_.push_back(sv[1]);
    max_fd_ = std::max({max_fd_, sv[0], sv[1]});
  }
}

FdRing::~FdRing() {
  for (int fd : read_fd_) ::close(fd);
  for (int fd : write_fd_) ::close(fd);
}

bool FdRing::seed(std::size_t active) {
  const std::size_t space = std::max<std::size_t>(1, size() / std::max<std::size_t>(1, active));
  for (std::size_t k = 0; k < active; ++k) {
    const char byte = 'e';
    if (::write(write_fd_[(k * space) % size()], &byte, 1) != 1) {
      error_ = std::string("seeding the ring: ") + std::strerror(errno);
      return false;
    }
  }
  return true;
}

}  // namespace reactor::bench
