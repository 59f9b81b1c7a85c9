// SPDX-License-Identifier: MIT
// peer-poll: the hand-written poll(2) reference for the reactor's poll backend. The same
// echo as peer-epoll: POLLIN while reading, POLLOUT only while output is pending, one read
// of up to 64 KiB per readiness written straight back, the rest queued.
//
// The pollfd array is passed to poll(2) as it is kept: slot 0 is the listening socket,
// slots 1.. are connections, each slot's Conn at the same index in conns_. A closed
// connection is swapped with the last slot; the scan after poll(2) runs from the end down,
// so a slot moved into place has already been seen, and it accepts last, so new slots are
// not scanned until the next round.
//
// This file includes <poll.h> outside backends/ on purpose: a reference must not go
// through the library.
#include <poll.h>

#include <chrono>
#include <vector>

#include "bench/peers/common.hpp"

namespace {

using namespace reactor::bench::peers;
using Clock = std::chrono::steady_clock;

struct Conn {
  OutputQueue out;
  bool paused = false;  // not reading: out went over kHighWater, until it drains
};

class PollEcho {
 public:
  explicit PollEcho(int listen_fd) {
    fds_.push_back(pollfd{listen_fd, POLLIN, 0});
    conns_.emplace_back();  // slot 0 has no connection; keeps the indexes aligned
  }

  [[noreturn]] void run() {
    for (;;) {
      const int n = ::poll(fds_.data(), fds_.size(), accept_timeout_ms());
      if (n < 0) {
        if (errno == EINTR) continue;
        die("poll", errno);
      }
      if (n == 0) continue;
      for (std::size_t i = fds_.size() - 1; i > 0; --i) {
        if (fds_[i].revents != 0) on_event(i);
      }
      if (fds_[0].revents != 0) on_acceptable();
    }
  }

 private:
  // -1 while accepting; otherwise the wait until the back-off ends (re-arming it when due).
  int accept_timeout_ms() {
    if (fds_[0].events != 0) return -1;
    const auto left =
        std::chrono::ceil<std::chrono::milliseconds>(resume_accept_at_ - Clock::now()).count();
    if (left > 0) return static_cast<int>(left);
    fds_[0].events = POLLIN;
    return -1;
  }

  void on_acceptable() {
    for (;;) {
      const int fd = ::accept4(fds_[0].fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd < 0) {
        switch (after_accept_error(errno)) {
          case AcceptNext::kRetry:
            continue;
          case AcceptNext::kDrained:
            return;
          case AcceptNext::kBackOff:
            fds_[0].events = 0;
            resume_accept_at_ = Clock::now() + kAcceptBackoff;
            return;
        }
      }
      set_nodelay(fd);
      fds_.push_back(pollfd{fd, POLLIN, 0});
      conns_.emplace_back();
    }
  }

  void on_event(std::size_t i) {
    pollfd& p = fds_[i];
    Conn& c = conns_[i];
    if (p.revents & (POLLERR | POLLHUP | POLLNVAL)) {
      close_conn(i);
      return;
    }
    if ((p.revents & POLLOUT) && !flush(i)) return;
    if ((p.revents & POLLIN) && !c.paused && !echo(i)) return;
    p.events = static_cast<short>((c.paused ? 0 : POLLIN) | (c.out.empty() ? 0 : POLLOUT));
  }

  // One read, written back at once unless older bytes are still queued. False if closed.
  bool echo(std::size_t i) {
    Conn& c = conns_[i];
    return echo_once(fds_[i].fd, c.out, c.paused, buf_, sizeof buf_) || close_conn(i);
  }

  // Writes as much of the queue as the kernel takes. False if closed.
  bool flush(std::size_t i) {
    Conn& c = conns_[i];
    return flush_queue(fds_[i].fd, c.out, c.paused) || close_conn(i);
  }

  // Closes slot i and moves the last slot into it. Returns false, for "the connection is gone".
  bool close_conn(std::size_t i) {
    ::close(fds_[i].fd);
    if (i != fds_.size() - 1) {
      fds_[i] = fds_.back();
      conns_[i] = std::move(conns_.back());
    }
    fds_.pop_back();
    conns_.pop_back();
    return false;
  }

  std::vector<pollfd> fds_;  // [0] = listener
  std::vector<Conn> conns_;  // conns_[i] belongs to fds_[i]
  Clock::time_point resume_accept_at_{};
  char buf_[kReadSize];
};

}  // namespace

int main(int argc, char** argv) {
  const sockaddr_in addr = start(argc, argv);
  const int listen_fd = listen_tcp(addr);
  static PollEcho loop(listen_fd);  // static: the 64 KiB buffer stays off the stack
  announce(listen_fd);
  loop.run();
}
