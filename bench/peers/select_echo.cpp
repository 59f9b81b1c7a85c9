// SPDX-License-Identifier: MIT
// peer-select: the hand-written select(2) reference for the reactor's select backend. The
// same echo as peer-epoll: read interest while reading, write interest only while output
// is pending, one read of up to 64 KiB per readiness written straight back, the rest queued.
//
// fd_set holds FD_SETSIZE (1024) bits, and FD_SET on a larger fd is undefined (glibc's
// fortified build aborts). Linux's select(2) takes sets of any size, though: it reads
// ceil(nfds / bits-per-long) longs from each pointer. So this loop keeps its own bit arrays
// of unsigned long, grown with the highest fd, and passes them in place of fd_set; it
// serves every fd the process may open. Each round copies the interest sets into the
// result sets (select overwrites them) and scans the result a word at a time.
//
// Connections are closed only while scanning and new ones accepted only after the scan, so
// an fd number is never reused within one round.
//
// This file includes <sys/select.h> outside backends/ on purpose: a reference must not go
// through the library.
#include <sys/select.h>

#include <algorithm>
#include <chrono>
#include <climits>
#include <vector>

#include "bench/peers/common.hpp"

namespace {

using namespace reactor::bench::peers;
using Clock = std::chrono::steady_clock;

/// A select(2) fd set of any size: bit fd % kBits of word fd / kBits, as the kernel reads it.
class FdBits {
 public:
  static constexpr int kBits = static_cast<int>(sizeof(unsigned long) * CHAR_BIT);

  void set(int fd) {
    const auto w = static_cast<std::size_t>(fd / kBits);
    if (w >= words_.size()) words_.resize(w + 1, 0);
    words_[w] |= 1ul << (fd % kBits);
  }
  void clear(int fd) noexcept {
    const auto w = static_cast<std::size_t>(fd / kBits);
    if (w < words_.size()) words_[w] &= ~(1ul << (fd % kBits));
  }
  bool test(int fd) const noexcept {
    const auto w = static_cast<std::size_t>(fd / kBits);
    return w < words_.size() && (words_[w] >> (fd % kBits) & 1ul) != 0;
  }

  /// Makes this the first `nwords` words of `from` (zeros where `from` is shorter).
  void copy_from(const FdBits& from, std::size_t nwords) {
    words_.assign(nwords, 0);
    std::copy_n(from.words_.begin(), std::min(nwords, from.words_.size()), words_.begin());
  }
  unsigned long word(std::size_t w) const noexcept { return words_[w]; }
  // The kernel only sees an array of longs; no C++ code reads it through fd_set.
  fd_set* as_fd_set() noexcept { return reinterpret_cast<fd_set*>(words_.data()); }

 private:
  std::vector<unsigned long> words_;
};

struct Conn {
  OutputQueue out;
  bool open = false;
  bool paused = false;  // not reading: out went over kHighWater, until it drains
};

class SelectEcho {
 public:
  explicit SelectEcho(int listen_fd) : listen_fd_(listen_fd), max_fd_(listen_fd) {
    want_read_.set(listen_fd_);
  }

  [[noreturn]] void run() {
    for (;;) {
      // First: a back-off that has ended puts the listener back into the sets copied below.
      timeval backoff{};
      timeval* timeout = accept_timeout(backoff);
      const int nfds = max_fd_ + 1;
      const auto nwords = static_cast<std::size_t>((nfds + FdBits::kBits - 1) / FdBits::kBits);
      readable_.copy_from(want_read_, nwords);
      writable_.copy_from(want_write_, nwords);
      const int n = ::select(nfds, readable_.as_fd_set(), writable_.as_fd_set(), nullptr, timeout);
      if (n < 0) {
        if (errno == EINTR) continue;
        die("select", errno);
      }
      if (n == 0) continue;
      bool listener_ready = false;
      for (std::size_t w = 0; w < nwords; ++w) {
        unsigned long bits = readable_.word(w) | writable_.word(w);
        while (bits != 0) {
          const int fd = static_cast<int>(w) * FdBits::kBits + __builtin_ctzl(bits);
          bits &= bits - 1;
          if (fd == listen_fd_) {
            listener_ready = true;
          } else {
            on_event(fd, readable_.test(fd), writable_.test(fd));
          }
        }
      }
      if (listener_ready) on_acceptable();
    }
  }

 private:
  // nullptr (wait forever) while accepting; otherwise the wait until the back-off ends,
  // re-arming the listener when it is due.
  timeval* accept_timeout(timeval& tv) {
    if (!backing_off_) return nullptr;
    const auto left =
        std::chrono::ceil<std::chrono::microseconds>(resume_accept_at_ - Clock::now()).count();
    if (left <= 0) {
      backing_off_ = false;
      want_read_.set(listen_fd_);
      return nullptr;
    }
    tv.tv_sec = static_cast<time_t>(left / 1'000'000);
    tv.tv_usec = static_cast<suseconds_t>(left % 1'000'000);
    return &tv;
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
            want_read_.clear(listen_fd_);
            backing_off_ = true;
            resume_accept_at_ = Clock::now() + kAcceptBackoff;
            return;
        }
      }
      set_nodelay(fd);
      if (static_cast<std::size_t>(fd) >= conns_.size()) conns_.resize(fd + 1);
      conns_[fd] = Conn{};
      conns_[fd].open = true;
      want_read_.set(fd);
      max_fd_ = std::max(max_fd_, fd);
    }
  }

  void on_event(int fd, bool readable, bool writable) {
    Conn& c = conns_[fd];
    if (writable && !flush(fd, c)) return;
    if (readable && !c.paused && !echo(fd, c)) return;
    if (c.paused) {
      want_read_.clear(fd);
    } else {
      want_read_.set(fd);
    }
    if (c.out.empty()) {
      want_write_.clear(fd);
    } else {
      want_write_.set(fd);
    }
  }

  // One read, written back at once unless older bytes are still queued. False if closed.
  bool echo(int fd, Conn& c) {
    return echo_once(fd, c.out, c.paused, buf_, sizeof buf_) || close_conn(fd, c);
  }

  // Writes as much of the queue as the kernel takes. False if closed.
  bool flush(int fd, Conn& c) { return flush_queue(fd, c.out, c.paused) || close_conn(fd, c); }

  // Returns false, for "the connection is gone".
  bool close_conn(int fd, Conn& c) {
    ::close(fd);
    c = Conn{};
    want_read_.clear(fd);
    want_write_.clear(fd);
    while (max_fd_ > listen_fd_ && !conns_[max_fd_].open) --max_fd_;
    return false;
  }

  const int listen_fd_;
  int max_fd_;
  bool backing_off_ = false;
  Clock::time_point resume_accept_at_{};
  std::vector<Conn> conns_;  // by fd
  FdBits want_read_, want_write_;
  FdBits readable_, writable_;  // select's results, this round
  char buf_[kReadSize];
};

}  // namespace

int main(int argc, char** argv) {
  const sockaddr_in addr = start(argc, argv);
  const int listen_fd = listen_tcp(addr);
  static SelectEcho loop(listen_fd);  // static: the 64 KiB buffer stays off the stack
  announce(listen_fd);
  loop.run();
}
