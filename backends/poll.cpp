// SPDX-License-Identifier: MIT
/*
 * poll backend.
 *
 * Mechanism: a dense array of pollfd handed to ppoll(2) whole on every wait, so a wait costs
 * O(watched). Level-triggered by nature. Removal swaps the last entry into the hole, so the
 * array never has gaps; a per-fd table maps fd -> position.
 *
 * Quirks handled here:
 * - poll reports POLLHUP, POLLERR and POLLNVAL even for events = 0, so an fd whose interest
 *   is none is taken out of the array altogether (and put back when interest returns).
 * - An fd closed behind our back comes back as POLLNVAL: reported once as invalid, then
 *   taken out of the array (as if its interest were none) so that a caller who does not
 *   remove() it at once is not woken by it on every wait.
 * - ppoll takes a timespec, so timeouts keep nanosecond precision.
 *
 * Limits: none beyond RLIMIT_NOFILE.
 */
#include <poll.h>

#include <algorithm>
#include <cerrno>
#include <ctime>
#include <new>

#include "backends/fd_check.hpp"
#include "reactor/core/backend.hpp"

namespace reactor::backends {

namespace {

short poll_mask(Interest interest) noexcept {
  return static_cast<short>((has(interest, Interest::read) ? POLLIN : 0) |
                            (has(interest, Interest::write) ? POLLOUT : 0));
}

class PollBackend final : public Backend {
 public:
  std::string_view name() const noexcept override { return "poll"; }

  std::error_code add(int fd, Interest interest, std::uint64_t token) noexcept override {
    if (registered(fd)) return std::make_error_code(std::errc::file_exists);
    if (auto ec = check_pollable(fd)) return ec;
    try {
      if (static_cast<std::size_t>(fd) >= regs_.size()) regs_.resize(fd + 1);
    } catch (const std::bad_alloc&) {
      return std::make_error_code(std::errc::not_enough_memory);
    }
    regs_[fd] = Reg{token, -1, Interest::none, true};
    return set(fd, interest);
  }

  std::error_code modify(int fd, Interest interest, std::uint64_t token) noexcept override {
    if (!registered(fd)) return std::make_error_code(std::errc::no_such_file_or_directory);
    regs_[fd].token = token;
    return set(fd, interest);
  }

  void remove(int fd) noexcept override {
    if (!registered(fd)) return;
    set(fd, Interest::none);
    regs_[fd].registered = false;
  }

  std::error_code poll(std::vector<Readiness>& out,
                       std::optional<std::chrono::nanoseconds> timeout) noexcept override {
    if (out.size() == out.capacity()) return std::make_error_code(std::errc::no_buffer_space);
    timespec ts{};
    if (timeout) {
      const auto ns = std::max<std::int64_t>(timeout->count(), 0);
      ts.tv_sec = static_cast<time_t>(ns / 1'000'000'000);
      ts.tv_nsec = static_cast<long>(ns % 1'000'000'000);
    }
    int n = ::ppoll(fds_.data(), fds_.size(), timeout ? &ts : nullptr, nullptr);
    if (n < 0)
      return errno == EINTR ? std::error_code{} : std::error_code{errno, std::generic_category()};
    for (std::size_t i = 0; i < fds_.size() && n > 0;) {
      const pollfd p = fds_[i];
      if (p.revents == 0) {
        ++i;
        continue;
      }
      --n;
      if (out.size() == out.capacity()) break;  // level-triggered: reported again next time
      const Reg& reg = regs_[p.fd];
      if (p.revents & POLLNVAL) {
        out.push_back(Readiness{reg.token, IoEvents{IoEvents::kInvalid}});
        // Reported once: out of the array until a modify() asks again. The last entry moves
        // into slot i, so i is examined again (its revents are from this same call).
        set(p.fd, Interest::none);
        continue;
      }
      std::uint8_t bits = 0;
      if (p.revents & (POLLIN | POLLPRI)) bits |= IoEvents::kReadable;
      if (p.revents & POLLOUT) bits |= IoEvents::kWritable;
      if (p.revents & (POLLERR | POLLHUP)) {
        bits |= IoEvents::kHangupOrError | static_cast<std::uint8_t>(reg.interest);
      }
      out.push_back(Readiness{reg.token, IoEvents{bits}});
      ++i;
    }
    return {};
  }

 private:
  struct Reg {
    std::uint64_t token = 0;
    int pos = -1;  // index in fds_, -1 while interest is none
    Interest interest = Interest::none;
    bool registered = false;
  };

  bool registered(int fd) const noexcept {
    return fd >= 0 && static_cast<std::size_t>(fd) < regs_.size() && regs_[fd].registered;
  }

  std::error_code set(int fd, Interest interest) noexcept {
    Reg& reg = regs_[fd];
    if (interest == Interest::none) {
      if (reg.pos >= 0) {
        const pollfd last = fds_.back();
        fds_[reg.pos] = last;
        regs_[last.fd].pos = reg.pos;
        fds_.pop_back();
        reg.pos = -1;
      }
    } else if (reg.pos >= 0) {
      fds_[reg.pos].events = poll_mask(interest);
    } else {
      try {
        fds_.push_back(pollfd{fd, poll_mask(interest), 0});
      } catch (const std::bad_alloc&) {
        return std::make_error_code(std::errc::not_enough_memory);
      }
      reg.pos = static_cast<int>(fds_.size() - 1);
    }
    reg.interest = interest;
    return {};
  }

  std::vector<pollfd> fds_;  // only fds with some interest
  std::vector<Reg> regs_;    // by fd
};

}  // namespace

std::unique_ptr<Backend> make_poll() { return std::make_unique<PollBackend>(); }

}  // namespace reactor::backends
