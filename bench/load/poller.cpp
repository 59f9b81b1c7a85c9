// SPDX-License-Identifier: MIT
// The one file of reactor-load that includes <sys/epoll.h>.
#include "bench/load/poller.hpp"

#include <sys/epoll.h>
#include <unistd.h>

#include <cerrno>

namespace reactor::bench::load {

namespace {

constexpr int kMaxEvents = 512;

std::error_code result(int rc) noexcept {
  return rc == 0 ? std::error_code{} : std::error_code{errno, std::system_category()};
}

std::uint32_t mask_of(unsigned interest) noexcept {
  return ((interest & Poller::kRead) != 0 ? EPOLLIN : 0u) |
         ((interest & Poller::kWrite) != 0 ? EPOLLOUT : 0u);
}

}  // namespace

Poller::Poller() : raw_(std::make_unique<epoll_event[]>(kMaxEvents)) {
  fd_ = ::epoll_create1(EPOLL_CLOEXEC);
  if (fd_ < 0) throw std::system_error(errno, std::system_category(), "epoll_create1");
  ready_.reserve(kMaxEvents);
}

Poller::~Poller() { ::close(fd_); }

std::error_code Poller::add(int fd, std::uint64_t token, unsigned interest) noexcept {
  epoll_event e{};
  e.events = mask_of(interest);
  e.data.u64 = token;
  return result(::epoll_ctl(fd_, EPOLL_CTL_ADD, fd, &e));
}

std::error_code Poller::modify(int fd, std::uint64_t token, unsigned interest) noexcept {
  epoll_event e{};
  e.events = mask_of(interest);
  e.data.u64 = token;
  return result(::epoll_ctl(fd_, EPOLL_CTL_MOD, fd, &e));
}

std::error_code Poller::remove(int fd) noexcept {
  return result(::epoll_ctl(fd_, EPOLL_CTL_DEL, fd, nullptr));
}

std::span<const PollEvent> Poller::poll(int timeout_ms, std::error_code& ec) noexcept {
  ec.clear();
  ready_.clear();
  const int n = ::epoll_wait(fd_, raw_.get(), kMaxEvents, timeout_ms);
  if (n < 0) {
    if (errno != EINTR) ec = {errno, std::system_category()};
    return {};
  }
  for (int i = 0; i < n; ++i) {
    const epoll_event& e = raw_[static_cast<std::size_t>(i)];
    ready_.push_back({e.data.u64, (e.events & EPOLLIN) != 0, (e.events & EPOLLOUT) != 0,
                      (e.events & (EPOLLERR | EPOLLHUP)) != 0});
  }
  return ready_;
}

}  // namespace reactor::bench::load
