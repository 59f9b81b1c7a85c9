// SPDX-License-Identifier: MIT
// The one file outside backends/ that includes <sys/epoll.h>: it is the reference the
// library is measured against, so it must not go through the library.
#include "bench/micro/raw_epoll.hpp"

#include <sys/epoll.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

namespace reactor::bench {

struct RawEpollLoop::Impl {
  explicit Impl(FdRing& r) : ring(r) {}
  FdRing& ring;
  int epfd = -1;
  std::vector<std::uint32_t> pair_of_fd;  // by fd
  std::vector<epoll_event> events;        // one slot per watched fd, as the reactor keeps
  std::uint64_t waits = 0;
  std::string error;
};

RawEpollLoop::RawEpollLoop(FdRing& ring) : impl_(std::make_unique<Impl>(ring)) {
  Impl& s = *impl_;
  s.epfd = ::epoll_create1(EPOLL_CLOEXEC);
  if (s.epfd < 0) {
    s.error = std::string("epoll_create1: ") + std::strerror(errno);
    return;
  }
  s.pair_of_fd.assign(static_cast<std::size_t>(ring.max_fd()) + 1, 0);
  s.events.resize(ring.size() + 1);
  for (std::size_t i = 0; i < ring.size(); ++i) {
    const int fd = ring.read_fd(i);
    s.pair_of_fd[fd] = static_cast<std::uint32_t>(i);
    epoll_event e{};
    e.events = EPOLLIN;  // level-triggered
    e.data.fd = fd;
    if (::epoll_ctl(s.epfd, EPOLL_CTL_ADD, fd, &e) != 0) {
      s.error = std::string("epoll_ctl: ") + std::strerror(errno);
      return;
    }
  }
}

RawEpollLoop::~RawEpollLoop() {
  if (impl_->epfd >= 0) ::close(impl_->epfd);
}

bool RawEpollLoop::run_until(std::uint64_t target) {
  Impl& s = *impl_;
  const int max_events = static_cast<int>(s.events.size());
  while (s.ring.events() < target) {
    const int n = ::epoll_wait(s.epfd, s.events.data(), max_events, -1);
    ++s.waits;
    if (n < 0) {
      if (errno == EINTR) continue;
      s.error = std::string("epoll_wait: ") + std::strerror(errno);
      return false;
    }
    for (int i = 0; i < n; ++i) s.ring.pass_token(s.pair_of_fd[s.events[i].data.fd]);
  }
  return true;
}

std::uint64_t RawEpollLoop::waits() const noexcept { return impl_->waits; }

const std::string& RawEpollLoop::error() const noexcept { return impl_->error; }

}  // namespace reactor::bench
