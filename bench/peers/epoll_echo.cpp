// SPDX-License-Identifier: MIT
// peer-epoll: the hand-written epoll reference, the honest floor the libraries are measured
// against. Level-triggered; a connection is registered for EPOLLIN while it is reading and
// for EPOLLOUT only while it has output pending, and interest changes cost one epoll_ctl.
// Each readiness gets one read of up to 64 KiB into a loop-wide buffer, written straight
// back; only what the kernel does not take is copied into the connection's queue.
//
// This file includes <sys/epoll.h> outside backends/ on purpose: a reference must not go
// through the library.
#include <sys/epoll.h>

#include <chrono>
#include <cstdint>
#include <vector>

#include "bench/peers/common.hpp"

namespace {

using namespace reactor::bench::peers;
using Clock = std::chrono::steady_clock;

struct Conn {
  OutputQueue out;
  std::uint32_t events = 0;  // what epoll watches for now
  bool paused = false;       // not reading: out went over kHighWater, until it drains
};

class EpollEcho {
 public:
  explicit EpollEcho(int listen_fd) : listen_fd_(listen_fd), events_(256) {
    epfd_ = ::epoll_create1(EPOLL_CLOEXEC);
    if (epfd_ < 0) die("epoll_create1", errno);
    watch_listener();
  }

  [[noreturn]] void run() {
    for (;;) {
      const int n = ::epoll_wait(epfd_, events_.data(), static_cast<int>(events_.size()),
                                 accept_timeout_ms());
      if (n < 0) {
        if (errno == EINTR) continue;
        die("epoll_wait", errno);
      }
      for (int i = 0; i < n; ++i) {
        const int fd = events_[i].data.fd;
        if (fd == listen_fd_) {
          on_acceptable();
        } else {
          on_event(fd, events_[i].events);
        }
      }
      if (static_cast<std::size_t>(n) == events_.size()) events_.resize(events_.size() * 2);
    }
  }

 private:
  void watch_listener() {
    epoll_event e{};
    e.events = EPOLLIN;
    e.data.fd = listen_fd_;
    if (::epoll_ctl(epfd_, EPOLL_CTL_ADD, listen_fd_, &e) != 0) die("epoll_ctl", errno);
    accepting_ = true;
  }

  // -1 while accepting; otherwise the wait until the back-off ends (re-arming it when due).
  int accept_timeout_ms() {
    if (accepting_) return -1;
    const auto left =
        std::chrono::ceil<std::chrono::milliseconds>(resume_accept_at_ - Clock::now()).count();
    if (left > 0) return static_cast<int>(left);
    watch_listener();
    return -1;
  }

  void on_acceptable() {
    for (;;) {
      const int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd < 0) {
        switch (after_accept_error(errno)) {
          case AcceptNext::kRetry:
            continue;
          case AcceptNext::kDrained:
            return;
          case AcceptNext::kBackOff:
            ::epoll_ctl(epfd_, EPOLL_CTL_DEL, listen_fd_, nullptr);
            accepting_ = false;
            resume_accept_at_ = Clock::now() + kAcceptBackoff;
            return;
        }
      }
      set_nodelay(fd);
      if (static_cast<std::size_t>(fd) >= conns_.size()) conns_.resize(fd + 1);
      Conn& c = conns_[fd];
      c = Conn{};
      c.events = EPOLLIN;
      epoll_event e{};
      e.events = EPOLLIN;
      e.data.fd = fd;
      if (::epoll_ctl(epfd_, EPOLL_CTL_ADD, fd, &e) != 0) ::close(fd);
    }
  }

  void on_event(int fd, std::uint32_t events) {
    Conn& c = conns_[fd];
    if (events & (EPOLLERR | EPOLLHUP)) {
      close_conn(fd, c);
      return;
    }
    if ((events & EPOLLOUT) && !flush(fd, c)) return;
    if ((events & EPOLLIN) && !c.paused && !echo(fd, c)) return;
    const std::uint32_t want = (c.paused ? 0u : EPOLLIN) | (c.out.empty() ? 0u : EPOLLOUT);
    if (want != c.events) {
      epoll_event e{};
      e.events = want;
      e.data.fd = fd;
      ::epoll_ctl(epfd_, EPOLL_CTL_MOD, fd, &e);
      c.events = want;
    }
  }

  // One read, written back at once unless older bytes are still queued. False if closed.
  bool echo(int fd, Conn& c) {
    return echo_once(fd, c.out, c.paused, buf_, sizeof buf_) || close_conn(fd, c);
  }

  // Writes as much of the queue as the kernel takes. False if closed.
  bool flush(int fd, Conn& c) { return flush_queue(fd, c.out, c.paused) || close_conn(fd, c); }

  // close(2) also takes the fd out of the epoll set: it is never dup'ed. Returns false, for
  // "the connection is gone".
  bool close_conn(int fd, Conn& c) {
    ::close(fd);
    c = Conn{};
    return false;
  }

  int epfd_ = -1;
  const int listen_fd_;
  bool accepting_ = false;
  Clock::time_point resume_accept_at_{};
  std::vector<Conn> conns_;  // by fd
  std::vector<epoll_event> events_;
  char buf_[kReadSize];
};

}  // namespace

int main(int argc, char** argv) {
  const sockaddr_in addr = start(argc, argv);
  const int listen_fd = listen_tcp(addr);
  static EpollEcho loop(listen_fd);  // static: the 64 KiB buffer stays off the stack
  announce(listen_fd);
  loop.run();
}
