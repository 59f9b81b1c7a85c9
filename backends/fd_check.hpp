// SPDX-License-Identifier: MIT
#pragma once
// For the backends whose mechanism does not check the fd itself (select, poll): the same
// answers epoll gives at EPOLL_CTL_ADD, so every backend refuses the same fds the same way.
#include <fcntl.h>
#include <sys/stat.h>

#include <cerrno>
#include <system_error>

namespace reactor::backends {

// EBADF for an fd that is not open; EPERM for a regular file, directory or block device
// (always "ready", so never worth polling, and refused by epoll).
inline std::error_code check_pollable(int fd) noexcept {
  struct stat st {};
  if (fd < 0 || ::fstat(fd, &st) != 0) return std::make_error_code(std::errc::bad_file_descriptor);
  if (S_ISREG(st.st_mode) || S_ISDIR(st.st_mode) || S_ISBLK(st.st_mode)) {
    return std::make_error_code(std::errc::operation_not_permitted);
  }
  return {};
}

}  // namespace reactor::backends
