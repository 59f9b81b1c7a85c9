// SPDX-License-Identifier: MIT
/*
 * select backend.
 *
 * Mechanism: two bit sets (read, write) copied into scratch sets and handed to select(2) on
 * every wait; the answer is found by scanning the scratch sets a word at a time. A wait
 * costs O(highest fd), however few fds are ready. Level-triggered by nature.
 *
 * Limits and how they are met: glibc's fd_set holds FD_SETSIZE (1024) bits and FD_SET past
 * it is undefined behaviour. This backend never uses fd_set storage or the FD_* macros: it
 * sizes its own arrays of words to the highest registered fd, which the kernel accepts for
 * any nfds up to RLIMIT_NOFILE. So fds above 1024 work, only more slowly.
 *
 * Quirks handled here:
 * - select cannot report hang-up (the hangup_or_error hint stays clear). An error shows as
 *   readable and writable; a hang-up shows only as the EOF it also is (readable) and as
 *   writable only while there is send room. So a write-only watcher of a hung-up socket whose
 *   sent bytes still fill the peer's queue is not woken until they are read or dropped, where
 *   poll and epoll report it writable at once.
 * - One closed fd in the sets fails the whole call with EBADF. The registered fds are then
 *   probed with fcntl(F_GETFD) and each closed one is reported once as invalid and taken out
 *   of the sets (as if its interest were none), so the next wait is clean whether or not
 *   the caller has removed it yet.
 * - A batch with less room than there are ready fds: the next scan starts at the first fd
 *   left out, wrapping around, so none starves.
 * - Timeouts have microsecond precision, rounded up so that a wait never ends early.
 */
#include <fcntl.h>
#include <sys/select.h>

#include <algorithm>
#include <cerrno>
#include <new>

#include "backends/fd_check.hpp"
#include "backends/fd_table.hpp"
#include "reactor/core/backend.hpp"

namespace reactor::backends {

namespace {

using Word = unsigned long;  // the kernel's unit for fd sets
constexpr int kWordBits = static_cast<int>(sizeof(Word) * 8);

class SelectBackend final : public Backend {
 public:
  std::string_view name() const noexcept override { return "select"; }

  std::error_code add(int fd, Interest interest, std::uint64_t token) noexcept override {
    if (registered(fd)) return std::make_error_code(std::errc::file_exists);
    if (auto ec = check_pollable(fd)) return ec;
    try {
      const std::size_t words = static_cast<std::size_t>(fd / kWordBits) + 1;
      regs_.grow_to(static_cast<std::size_t>(fd));
      if (read_.size() < words) {
        read_.resize(words);
        write_.resize(words);
        scratch_read_.resize(words);
        scratch_write_.resize(words);
      }
    } catch (const std::bad_alloc&) {
      return std::make_error_code(std::errc::not_enough_memory);
    }
    regs_[fd] = Reg{SplitToken(token), Interest::none, true};
    set(fd, interest);
    return {};
  }

  std::error_code modify(int fd, Interest interest, std::uint64_t token) noexcept override {
    if (!registered(fd)) return std::make_error_code(std::errc::no_such_file_or_directory);
    regs_[fd].token = SplitToken(token);
    set(fd, interest);
    return {};
  }

  void remove(int fd) noexcept override {
    if (!registered(fd)) return;
    set(fd, Interest::none);
    regs_[fd].registered = false;
  }

  std::error_code poll(std::vector<Readiness>& out,
                       std::optional<std::chrono::nanoseconds> timeout) noexcept override {
    if (out.size() == out.capacity()) return std::make_error_code(std::errc::no_buffer_space);
    timeval tv{};
    if (timeout) {
      const auto ns = std::max<std::int64_t>(timeout->count(), 0);
      const auto us = ns / 1000 + (ns % 1000 != 0 ? 1 : 0);
      tv.tv_sec = static_cast<time_t>(us / 1'000'000);
      tv.tv_usec = static_cast<suseconds_t>(us % 1'000'000);
    }
    const int nfds = max_fd_ + 1;
    const std::size_t words = nfds > 0 ? static_cast<std::size_t>((nfds - 1) / kWordBits) + 1 : 0;
    std::copy_n(read_.begin(), words, scratch_read_.begin());
    std::copy_n(write_.begin(), words, scratch_write_.begin());
    int n = ::select(nfds, as_set(scratch_read_), as_set(scratch_write_), nullptr,
                     timeout ? &tv : nullptr);
    if (n < 0 && errno == EBADF) {
      // Report the closed fds, then ask again without them so that the live ones are
      // served in this same batch.
      std::copy_n(read_.begin(), words, scratch_read_.begin());
      std::copy_n(write_.begin(), words, scratch_write_.begin());
      report_closed(out);
      timeval zero{};
      n = ::select(nfds, as_set(scratch_read_), as_set(scratch_write_), nullptr, &zero);
    }
    if (n < 0) {
      if (errno == EINTR || errno == EBADF) return {};  // EBADF: closed meanwhile; next time
      return {errno, std::generic_category()};
    }
    // From start_'s word (its lower bits masked off) round to that same word again (only
    // its lower bits): every ready fd once, those left out by the last full batch first.
    const int start = start_ <= max_fd_ ? start_ : 0;
    const std::size_t first = static_cast<std::size_t>(start / kWordBits);
    const int first_bit = start % kWordBits;
    for (std::size_t step = 0; step <= words && words > 0; ++step) {
      const std::size_t w = (first + step) % words;
      Word any = scratch_read_[w] | scratch_write_[w];
      if (step == 0) {
        any &= ~Word{0} << first_bit;
      } else if (step == words) {
        any &= (Word{1} << first_bit) - 1;
      }
      while (any != 0) {
        const int bit = __builtin_ctzl(any);
        any &= any - 1;
        const Word mask = Word{1} << bit;
        const int fd = static_cast<int>(w) * kWordBits + bit;
        if (out.size() == out.capacity()) {
          start_ = fd;  // level-triggered: reported again next time, first
          return {};
        }
        std::uint8_t bits = 0;
        if (scratch_read_[w] & mask) bits |= IoEvents::kReadable;
        if (scratch_write_[w] & mask) bits |= IoEvents::kWritable;
        out.push_back(Readiness{regs_[fd].token.value(), IoEvents{bits}});
      }
    }
    return {};
  }

 private:
  struct Reg {
    SplitToken token;  // 12 bytes per fd in all
    Interest interest = Interest::none;
    bool registered = false;
  };

  // The kernel reads nfds bits from these words; fd_set is only the pointer type it wants.
  static fd_set* as_set(std::vector<Word>& words) noexcept {
    return words.empty() ? nullptr : reinterpret_cast<fd_set*>(words.data());
  }

  bool registered(int fd) const noexcept {
    return fd >= 0 && static_cast<std::size_t>(fd) < regs_.size() && regs_[fd].registered;
  }

  void set(int fd, Interest interest) noexcept {
    const std::size_t w = static_cast<std::size_t>(fd / kWordBits);
    const Word mask = Word{1} << (fd % kWordBits);
    read_[w] = has(interest, Interest::read) ? (read_[w] | mask) : (read_[w] & ~mask);
    write_[w] = has(interest, Interest::write) ? (write_[w] | mask) : (write_[w] & ~mask);
    regs_[fd].interest = interest;
    if (interest != Interest::none) {
      if (fd > max_fd_) max_fd_ = fd;
    } else if (fd == max_fd_) {
      while (max_fd_ >= 0 && regs_[max_fd_].interest == Interest::none) --max_fd_;
    }
  }

  // Finds the closed fds among those in the sets: reports each as invalid and clears it
  // from the sets, the scratch ones included.
  void report_closed(std::vector<Readiness>& out) noexcept {
    for (int fd = 0; fd <= max_fd_ && out.size() < out.capacity(); ++fd) {
      if (regs_[fd].interest == Interest::none || ::fcntl(fd, F_GETFD) >= 0) continue;
      out.push_back(Readiness{regs_[fd].token.value(), IoEvents{IoEvents::kInvalid}});
      const Word mask = Word{1} << (fd % kWordBits);
      scratch_read_[fd / kWordBits] &= ~mask;
      scratch_write_[fd / kWordBits] &= ~mask;
      set(fd, Interest::none);  // reported once: out of the sets until a modify() asks again
    }
  }

  std::vector<Word> read_, write_, scratch_read_, scratch_write_;
  FdTable<Reg> regs_;  // by fd
  int start_ = 0;      // the fd where the next scan of a wait's results begins
  int max_fd_ = -1;
};

}  // namespace

std::unique_ptr<Backend> make_select() { return std::make_unique<SelectBackend>(); }

}  // namespace reactor::backends
