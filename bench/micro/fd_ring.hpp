// SPDX-License-Identifier: MIT
#pragma once
/// \file
/// The workload of libevent's test/bench.c (and libev's copy of it): P non-blocking AF_UNIX
/// stream socketpairs in a ring and A one-byte tokens travelling round it. The read end of
/// every pair is watched; whoever sees pair i readable calls pass_token(i), which reads one
/// byte from pair i and writes one byte into pair i+1 (wrapping), so exactly A bytes are
/// always in flight and every callback is one event.
///
/// The same pass_token() serves the reactor's callbacks and the raw epoll loop, so the two
/// differ only in how readiness reaches it.

#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace reactor::bench {

class FdRing {
 public:
  /// Opens `pairs` socketpairs. On failure (usually EMFILE) closes what it opened and
  /// leaves error() non-empty.
  explicit FdRing(std::size_t pairs);
  ~FdRing();
  FdRing(const FdRing&) = delete;
  FdRing& operator=(const FdRing&) = delete;

  /// Writes one token into each of `active` pairs, spread evenly round the ring.
  /// False (with error() set) if a write fails.
  bool seed(std::size_t active);

  /// One event: takes the token out of pair i and hands one to pair i+1.
  void pass_token(std::size_t i) noexcept {
    char byte;
    if (::read(read_fd_[i], &byte, 1) != 1) {
      ++empty_reads_;  // level-triggered: should not happen; counted, not hidden
      return;
    }
    const std::size_t next = i + 1 == read_fd_.size() ? 0 : i + 1;
    if (::write(write_fd_[next], &byte, 1) != 1) ++failed_writes_;
    ++events_;
  }

  std::size_t size() const noexcept { return read_fd_.size(); }
  int read_fd(std::size_t i) const noexcept { return read_fd_[i]; }
  /// The highest fd the ring uses.
  int max_fd() const noexcept { return max_fd_; }
  /// Tokens passed so far.
  std::uint64_t events() const noexcept { return events_; }
  /// Callbacks that found nothing to read, and writes that failed (both should stay 0).
  std::uint64_t anomalies() const noexcept { return empty_reads_ + failed_writes_; }
  const std::string& error() const noexcept { return error_; }

 private:
  std::vector<int> read_fd_;
  std::vector<int> write_fd_;
  int max_fd_ = -1;
  std::uint64_t events_ = 0;
  std::uint64_t empty_reads_ = 0;
  std::uint64_t failed_writes_ = 0;
  std::string error_;
};

}  // namespace reactor::bench
