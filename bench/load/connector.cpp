// SPDX-License-Identifier: MIT
#include "bench/load/connector.hpp"

#include <unistd.h>

#include <algorithm>
#include <system_error>

#include "bench/load/clocks.hpp"
#include "bench/load/poller.hpp"

namespace reactor::bench::load {

namespace {

constexpr std::uint64_t kRetryPauseNs = 2'000'000;

class Batch {
 public:
  Batch(const Endpoint& endpoint, std::size_t count, std::size_t in_flight)
      : endpoint_(endpoint), to_start_(count), pending_(std::max<std::size_t>(in_flight, 1), -1) {
    out_.fds.reserve(count);
  }

  Established run(std::uint64_t deadline_ns) {
    for (std::uint64_t now = now_ns(); to_start_ + busy_ > 0 && now < deadline_ns; now = now_ns()) {
      if (now >= pause_until_) start_some(now);
      std::uint64_t wake = deadline_ns;  // connects finishing wake us earlier
      if (to_start_ > 0 && busy_ < pending_.size())
        wake = std::min(wake, std::max(pause_until_, now));
      const std::uint64_t wait_ms = wake > now ? (wake - now + 999'999) / 1'000'000 : 0;
      const int timeout_ms = static_cast<int>(std::min<std::uint64_t>(wait_ms, 100));
      std::error_code ec;
      for (const PollEvent& e : poller_.poll(timeout_ms, ec)) finish(e.token);
      if (ec) throw std::system_error(ec, "epoll_wait");
    }
    for (int& fd : pending_) {
      if (fd >= 0) ::close(fd);
      fd = -1;
    }
    const std::uint64_t abandoned = to_start_ + busy_;
    if (abandoned != 0 && out_.first_error.empty()) out_.first_error = "connect timed out";
    out_.failures += abandoned;
    return std::move(out_);
  }

 private:
  void start_some(std::uint64_t now) {
    for (std::size_t i = 0; i < pending_.size() && to_start_ > 0; ++i) {
      if (pending_[i] >= 0) continue;
      std::error_code ec;
      const int fd = endpoint_.open_socket(ec);
      if (fd < 0) {
        --to_start_;
        fail("socket: " + ec.message());
        continue;
      }
      switch (endpoint_.start_connect(fd, ec)) {
        case ConnectStart::kDone:
          --to_start_;
          out_.fds.push_back(fd);
          break;
        case ConnectStart::kPending:
          if (const auto err = poller_.add(fd, i, Poller::kWrite)) {
            ::close(fd);
            --to_start_;
            fail("epoll_ctl: " + err.message());
            break;
          }
          --to_start_;
          pending_[i] = fd;
          ++busy_;
          break;
        case ConnectStart::kRetry:
          ::close(fd);
          ++out_.retries;
          pause_until_ = now + kRetryPauseNs;
          return;
        case ConnectStart::kFailed:
          ::close(fd);
          --to_start_;
          fail("connect: " + ec.message());
          break;
      }
    }
  }

  void finish(std::uint64_t slot) {
    int& fd = pending_[slot];
    if (fd < 0) return;
    poller_.remove(fd);
    if (const std::error_code ec = Endpoint::connect_result(fd)) {
      ::close(fd);
      fail("connect: " + ec.message());
    } else {
      out_.fds.push_back(fd);
    }
    fd = -1;
    --busy_;
  }

  void fail(const std::string& why) {
    ++out_.failures;
    if (out_.first_error.empty()) out_.first_error = why;
  }

  const Endpoint& endpoint_;
  Poller poller_;
  std::size_t to_start_;
  std::size_t busy_ = 0;
  std::uint64_t pause_until_ = 0;
  std::vector<int> pending_;  // by slot (the token): the fd connecting there, or -1
  Established out_;
};

}  // namespace

Established establish(const Endpoint& endpoint, std::size_t count, std::uint64_t deadline_ns,
                      std::size_t in_flight) {
  if (count == 0) return {};
  return Batch(endpoint, count, in_flight).run(deadline_ns);
}

}  // namespace reactor::bench::load
