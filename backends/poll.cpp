// SPDX-License-Identifier: MIT
/*
 * poll backend.
 *
 * Mechanism: an array of pollfd indexed by fd, handed to ppoll(2) whole (up to the highest
 * registered fd) on every wait, so a wait costs O(highest fd). Level-triggered by nature.
 * Entries of fds not registered, or registered with interest none, hold a negative fd, which
 * the kernel skips (revents 0): no per-fd position table, 16 bytes per fd with the tokens.
 *
 * Quirks handled here:
 * - poll reports POLLHUP, POLLERR and POLLNVAL even for events = 0, so an fd whose interest
 *   is none gets a negative number in its entry (-2 - fd; -1 marks "not registered").
 * - An fd closed behind our back comes back as POLLNVAL: reported once as invalid, then
 *   silenced (as if its interest were none) so that a caller who does not remove() it at
 *   once is not woken by it on every wait.
 * - A batch with less room than there are ready fds: the next scan starts where this one
 *   stopped, so the fds past the room come first next time and none starves.
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
#include "backends/fd_table.hpp"
#include "reactor/core/backend.hpp"

namespace reactor::backends {

namespace {

constexpr int kUnregistered = -1;

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
    const auto index = static_cast<std::size_t>(fd);
    try {
      tokens_.grow_to(index);
      if (index >= fds_.size()) {
        // Grown by a sixteenth at a time, not doubled: the array is held by fd, and memory per
        // watched fd is the point. Still amortised O(1) per fd.
        if (index >= fds_.capacity())
          fds_.reserve(std::max(index + 1, fds_.capacity() + fds_.capacity() / 16 + 64));
        fds_.resize(index + 1, pollfd{kUnregistered, 0, 0});
      }
    } catch (const std::bad_alloc&) {
      return std::make_error_code(std::errc::not_enough_memory);
    }
    tokens_[index] = token;
    set(fd, interest);
    return {};
  }

  std::error_code modify(int fd, Interest interest, std::uint64_t token) noexcept override {
    if (!registered(fd)) return std::make_error_code(std::errc::no_such_file_or_directory);
    tokens_[static_cast<std::size_t>(fd)] = token;
    set(fd, interest);
    return {};
  }

  void remove(int fd) noexcept override {
    if (!registered(fd)) return;
    fds_[static_cast<std::size_t>(fd)] = pollfd{kUnregistered, 0, 0};
    while (!fds_.empty() && fds_.back().fd == kUnregistered) fds_.pop_back();
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
    const std::size_t count = fds_.size();
    std::size_t i = start_ < count ? start_ : 0;
    for (std::size_t seen = 0; seen < count && n > 0; ++seen, i = i + 1 == count ? 0 : i + 1) {
      pollfd& p = fds_[i];
      if (p.revents == 0) continue;
      if (out.size() == out.capacity()) {
        start_ = i;  // level-triggered: reported again next time, first
        return {};
      }
      --n;
      const short revents = p.revents;
      const std::uint64_t token = tokens_[i];
      if (revents & POLLNVAL) {
        out.push_back(Readiness{token, IoEvents{IoEvents::kInvalid}});
        set(static_cast<int>(i), Interest::none);  // reported once, until a modify() asks again
        continue;
      }
      std::uint8_t bits = 0;
      if (revents & (POLLIN | POLLPRI)) bits |= IoEvents::kReadable;
      if (revents & POLLOUT) bits |= IoEvents::kWritable;
      if (revents & (POLLERR | POLLHUP)) {
        bits |= IoEvents::kHangupOrError | static_cast<std::uint8_t>(interest_of(p));
      }
      out.push_back(Readiness{token, IoEvents{bits}});
    }
    return {};
  }

 private:
  bool registered(int fd) const noexcept {
    return fd >= 0 && static_cast<std::size_t>(fd) < fds_.size() &&
           fds_[static_cast<std::size_t>(fd)].fd != kUnregistered;
  }

  static Interest interest_of(const pollfd& p) noexcept {
    if (p.fd < 0) return Interest::none;
    return static_cast<Interest>(((p.events & POLLIN) ? 1 : 0) | ((p.events & POLLOUT) ? 2 : 0));
  }

  void set(int fd, Interest interest) noexcept {
    pollfd& p = fds_[static_cast<std::size_t>(fd)];
    p.fd = interest == Interest::none ? -2 - fd : fd;
    p.events = poll_mask(interest);
    p.revents = 0;
  }

  std::vector<pollfd> fds_;        // by fd, up to the highest registered one
  FdTable<std::uint64_t> tokens_;  // by fd
  std::size_t start_ = 0;          // where the next scan of a wait's results begins
};

}  // namespace

std::unique_ptr<Backend> make_poll() { return std::make_unique<PollBackend>(); }

}  // namespace reactor::backends
