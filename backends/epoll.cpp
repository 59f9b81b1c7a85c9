// SPDX-License-Identifier: MIT
/*
 * epoll backend.
 *
 * Mechanism: one epoll instance; interest lives in the kernel, so a wait costs O(ready), not
 * O(watched). Level-triggered (no EPOLLET), as the contract asks.
 *
 * Quirks handled here:
 * - epoll always reports EPOLLERR and EPOLLHUP, even for events = 0. An fd whose interest is
 *   none is therefore taken out of the kernel set (EPOLL_CTL_DEL) and put back when interest
 *   returns; otherwise a paused reader on a hung-up socket would wake the loop forever.
 * - epoll registers the open file description, not the number. An fd closed while a dup of
 *   it lives stays in the set, and can no longer be removed by number. Each registration
 *   therefore carries a sequence number in epoll_data beside the fd; an event whose sequence
 *   does not match the current registration is junk, and the set is rebuilt from scratch
 *   (a new epoll instance) the first time junk is seen. Correct use never pays for it.
 *   Such a stale entry can also make EPOLL_CTL_ADD fail with EEXIST, when the number names
 *   that same file again (a dup2 back) before any junk was seen: the entry is then taken
 *   over with EPOLL_CTL_MOD, since we know the number is not registered.
 * - After fork the instance is shared with the parent: after_fork() builds a new one
 *   without a single epoll_ctl on the old, so the parent's set is untouched.
 * - Timeouts are whole milliseconds, rounded up so that a wait never ends early.
 *
 * Limits: the kernel's max_user_watches (ENOSPC); regular files and some character devices
 * (/dev/null) are refused with EPERM.
 */
#include <sys/epoll.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <new>
#include <system_error>

#include "backends/fd_table.hpp"
#include "reactor/core/backend.hpp"

namespace reactor::backends {

namespace {

std::error_code errno_code(int e = errno) noexcept { return {e, std::generic_category()}; }

int timeout_ms(std::optional<std::chrono::nanoseconds> timeout) noexcept {
  if (!timeout) return -1;
  const auto ns = timeout->count();
  if (ns <= 0) return 0;
  const auto ms = ns / 1'000'000 + (ns % 1'000'000 != 0 ? 1 : 0);
  return ms > INT_MAX ? INT_MAX : static_cast<int>(ms);
}

std::uint32_t epoll_mask(Interest interest) noexcept {
  return (has(interest, Interest::read) ? EPOLLIN : 0u) |
         (has(interest, Interest::write) ? EPOLLOUT : 0u);
}

class EpollBackend final : public Backend {
 public:
  EpollBackend() : epfd_(::epoll_create1(EPOLL_CLOEXEC)) {
    if (epfd_ < 0) throw std::system_error(errno_code(), "epoll_create1");
  }
  ~EpollBackend() override { ::close(epfd_); }

  std::string_view name() const noexcept override { return "epoll"; }

  std::error_code add(int fd, Interest interest, std::uint64_t token) noexcept override {
    if (fd < 0) return std::make_error_code(std::errc::bad_file_descriptor);
    if (registered(fd)) return std::make_error_code(std::errc::file_exists);
    try {
      regs_.grow_to(static_cast<std::size_t>(fd));
    } catch (const std::bad_alloc&) {
      return std::make_error_code(std::errc::not_enough_memory);
    }
    Reg& reg = regs_[fd];
    // Always ADD once, even for Interest::none: that is how the kernel tells us the fd is
    // open (EBADF) and pollable (EPERM).
    reg.sequence = take_sequence();
    if (auto ec = put_in(fd, epoll_mask(interest), reg.sequence)) return ec;
    reg.in_kernel = true;
    reg.registered = true;
    reg.token = SplitToken(token);
    reg.set_interest(interest);
    if (interest == Interest::none) take_out(fd, reg);
    return {};
  }

  std::error_code modify(int fd, Interest interest, std::uint64_t token) noexcept override {
    if (!registered(fd)) return std::make_error_code(std::errc::no_such_file_or_directory);
    Reg& reg = regs_[fd];
    reg.token = SplitToken(token);  // lives here, not in the kernel: changing it costs nothing
    if (interest == reg.interest()) return {};
    std::error_code ec;
    if (interest == Interest::none) {
      ec = take_out(fd, reg);
    } else if (reg.in_kernel) {
      ec = ctl(EPOLL_CTL_MOD, fd, epoll_mask(interest), reg.sequence);
    } else {
      reg.sequence = take_sequence();
      ec = put_in(fd, epoll_mask(interest), reg.sequence);
      if (!ec) reg.in_kernel = true;
    }
    // ENOENT: the number was closed and reused behind our back. Say so plainly.
    if (ec == std::errc::no_such_file_or_directory) {
      ec = std::make_error_code(std::errc::bad_file_descriptor);
    }
    if (!ec) reg.set_interest(interest);
    return ec;
  }

  void remove(int fd) noexcept override {
    if (!registered(fd)) return;
    Reg& reg = regs_[fd];
    if (reg.in_kernel) take_out(fd, reg);
    reg.registered = false;
    reg.set_interest(Interest::none);
  }

  std::error_code poll(std::vector<Readiness>& out,
                       std::optional<std::chrono::nanoseconds> timeout) noexcept override {
    const std::size_t room = out.capacity() - out.size();
    if (room == 0) return std::make_error_code(std::errc::no_buffer_space);
    if (events_.size() < room) {
      try {
        events_.resize(room);
      } catch (const std::bad_alloc&) {
        if (events_.empty()) return std::make_error_code(std::errc::not_enough_memory);
      }
    }
    const int max = static_cast<int>(std::min(room, events_.size()));
    const int n = ::epoll_wait(epfd_, events_.data(), max, timeout_ms(timeout));
    if (n < 0) return errno == EINTR ? std::error_code{} : errno_code();
    bool junk = false;
    for (int i = 0; i < n; ++i) {
      const epoll_event& e = events_[i];
      const int fd = static_cast<int>(e.data.u64 & 0xffffffffu);
      const auto sequence = static_cast<std::uint32_t>(e.data.u64 >> 32);
      if (!registered(fd) || !regs_[fd].in_kernel || regs_[fd].sequence != sequence) {
        junk = true;
        continue;
      }
      const Reg& reg = regs_[fd];
      std::uint8_t bits = 0;
      if (e.events & (EPOLLIN | EPOLLPRI)) bits |= IoEvents::kReadable;
      if (e.events & EPOLLOUT) bits |= IoEvents::kWritable;
      if (e.events & (EPOLLERR | EPOLLHUP)) {
        bits |= IoEvents::kHangupOrError | static_cast<std::uint8_t>(reg.interest());
      }
      out.push_back(Readiness{reg.token.value(), IoEvents{bits}});
    }
    if (junk) return rebuild();
    return {};
  }

  std::error_code after_fork() noexcept override { return rebuild(); }

 private:
  // 12 bytes per fd. The sequence has 28 bits: it wraps after 2^28 registrations, long after
  // any stale entry it tells apart has been seen (and the set rebuilt).
  struct Reg {
    SplitToken token;
    std::uint32_t sequence : 28 = 0;
    std::uint32_t interest_bits : 2 = 0;
    std::uint32_t registered : 1 = 0;  // known to us
    std::uint32_t in_kernel : 1 = 0;   // in the epoll set (false while interest is none)

    Interest interest() const noexcept { return static_cast<Interest>(interest_bits); }
    void set_interest(Interest i) noexcept { interest_bits = static_cast<std::uint8_t>(i) & 3u; }
  };
  static_assert(sizeof(Reg) == 12);

  static constexpr std::uint32_t kSequenceMask = (1u << 28) - 1;
  std::uint32_t take_sequence() noexcept { return next_sequence_++ & kSequenceMask; }

  bool registered(int fd) const noexcept {
    return fd >= 0 && static_cast<std::size_t>(fd) < regs_.size() && regs_[fd].registered;
  }

  std::error_code ctl(int op, int fd, std::uint32_t mask, std::uint32_t sequence) noexcept {
    epoll_event e{};
    e.events = mask;
    e.data.u64 = (std::uint64_t{sequence} << 32) | static_cast<std::uint32_t>(fd);
    if (::epoll_ctl(epfd_, op, fd, &e) != 0) return errno_code();
    return {};
  }

  // EPOLL_CTL_ADD for an fd we do not have in the set. EEXIST means the kernel still holds
  // an entry of an earlier registration of this number and file (closed behind our back
  // while a dup kept the file open, then dup2'd back): take it over.
  std::error_code put_in(int fd, std::uint32_t mask, std::uint32_t sequence) noexcept {
    std::error_code ec = ctl(EPOLL_CTL_ADD, fd, mask, sequence);
    if (ec == std::errc::file_exists) ec = ctl(EPOLL_CTL_MOD, fd, mask, sequence);
    return ec;
  }

  std::error_code take_out(int fd, Reg& reg) noexcept {
    reg.in_kernel = false;
    epoll_event unused{};
    if (::epoll_ctl(epfd_, EPOLL_CTL_DEL, fd, &unused) != 0) return errno_code();
    return {};
  }

  // A fresh instance holding exactly our registrations. Used after fork, and when a file
  // closed behind our back (kept alive by a dup) haunts the old set. An fd that can no
  // longer be added is left out; its owner learns of it from its next modify() or read.
  std::error_code rebuild() noexcept {
    const int fresh = ::epoll_create1(EPOLL_CLOEXEC);
    if (fresh < 0) return errno_code();
    ::close(epfd_);
    epfd_ = fresh;
    for (std::size_t fd = 0; fd < regs_.size(); ++fd) {
      Reg& reg = regs_[fd];
      if (!reg.registered || !reg.in_kernel) continue;
      reg.sequence = take_sequence();
      if (ctl(EPOLL_CTL_ADD, static_cast<int>(fd), epoll_mask(reg.interest()), reg.sequence)) {
        reg.in_kernel = false;
      }
    }
    return {};
  }

  int epfd_;
  FdTable<Reg> regs_;  // by fd
  std::vector<epoll_event> events_;
  std::uint32_t next_sequence_ = 1;
};

}  // namespace

std::unique_ptr<Backend> make_epoll() { return std::make_unique<EpollBackend>(); }

}  // namespace reactor::backends
