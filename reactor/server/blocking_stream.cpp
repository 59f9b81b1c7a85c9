// SPDX-License-Identifier: MIT
#include "reactor/server/blocking_stream.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <time.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <optional>

namespace reactor {

namespace {

constexpr std::size_t kFlushAt = 64 * 1024;

std::error_code last_error() noexcept { return {errno, std::generic_category()}; }

template <typename T>
T or_throw(T value, const std::error_code& ec, const char* what) {
  if (ec) throw std::system_error(ec, what);
  return value;
}

}  // namespace

// Waits are one ppoll(2) on the socket and the cancel fd, from the stack: no table sized by
// fd number (a poll backend's grows with the highest fd, ~16 bytes each) and no kernel object,
// so a forked child inherits nothing to share or rebuild.
BlockingStream::BlockingStream(Socket socket, int cancel_fd)
    : socket_(std::move(socket)), cancel_fd_(cancel_fd) {
  int flags = ::fcntl(socket_.fd(), F_GETFL);
  if (flags < 0 || ::fcntl(socket_.fd(), F_SETFL, flags | O_NONBLOCK) < 0) {
    throw std::system_error(last_error(), "BlockingStream: socket");
  }
}

BlockingStream::~BlockingStream() = default;

std::error_code BlockingStream::wait(bool for_write) {
  using Clock = std::chrono::steady_clock;
  const auto canceled = std::make_error_code(std::errc::operation_canceled);
  // After shutdown() a read fails at once (the handler waits for a request that no longer
  // matters) but a write may finish the answer within the drain time.
  const bool may_drain = for_write && drain_.count() > 0;
  if (canceled_ && !may_drain) return canceled;
  auto until = deadline_;  // the stream's deadline or this wait's timeout, the sooner
  if (timeout_.count() > 0) until = std::min(until, Clock::now() + timeout_);
  for (;;) {
    if (canceled_ && drain_until_ == Clock::time_point{}) drain_until_ = Clock::now() + drain_;
    const auto limit = canceled_ ? std::min(until, drain_until_) : until;
    timespec ts{};
    const bool timed = limit != Clock::time_point::max();
    if (timed) {
      const auto ns = std::max<std::int64_t>(
          0, std::chrono::duration_cast<std::chrono::nanoseconds>(limit - Clock::now()).count());
      ts.tv_sec = static_cast<time_t>(ns / 1'000'000'000);
      ts.tv_nsec = static_cast<long>(ns % 1'000'000'000);
    }
    // Once a draining write saw the cancel fd it stays readable: stop watching it, canceled_
    // remembers.
    pollfd fds[2] = {{socket_.fd(), static_cast<short>(for_write ? POLLOUT : POLLIN), 0},
                     {cancel_fd_, POLLIN, 0}};
    const nfds_t count = cancel_fd_ >= 0 && !canceled_ ? 2 : 1;
    const int n = ::ppoll(fds, count, timed ? &ts : nullptr, nullptr);
    if (n < 0 && errno != EINTR) return last_error();
    if (n > 0) {
      if (count == 2 && fds[1].revents != 0) {
        if (!may_drain) return canceled;  // and again while the fd stays readable
        canceled_ = true;
      }
      // Readable, writable, or an error (POLLERR, POLLHUP, POLLNVAL) the next call reports.
      if (fds[0].revents != 0) return {};
    }
    // Nothing ready: a signal interrupted the wait, the cancel fd fired, or the time is up.
    const auto now = Clock::now();
    if (canceled_ && drain_until_ != Clock::time_point{} && now >= drain_until_) return canceled;
    if (now >= until) return std::make_error_code(std::errc::timed_out);
  }
}

std::error_code BlockingStream::fill(std::size_t want_more) {
  for (;;) {
    std::error_code ec;
    std::size_t n = input_.read_from(socket_.fd(), want_more, ec);
    if (!ec) {
      if (n == 0) eof_ = true;
      return {};
    }
    if (ec != std::errc::resource_unavailable_try_again) return ec;
    if (auto wait_ec = wait(false)) return wait_ec;
  }
}

std::optional<std::string> BlockingStream::read_line(std::error_code& ec) {
  ec.clear();
  // A reader per call: read() and read_some() consume from the same buffer between calls. It
  // also checks a line that read() buffered, or that was buffered before set_max_line().
  LineReader reader(max_line_);
  // The most a line may hold with its terminator; past it the reader has failed.
  const std::size_t most = max_line_ > SIZE_MAX - 2 ? SIZE_MAX : max_line_ + 2;
  for (;;) {
    const std::string_view line = eof_ ? reader.peek_at_eof(input_, ec) : reader.peek(input_, ec);
    if (ec) return std::nullopt;
    if (!line.empty()) {
      std::string out(line);
      input_.consume(line.size());
      return out;
    }
    if (eof_) return std::nullopt;
    if (input_.size() >= most) {  // cannot happen: the reader fails first
      ec = std::make_error_code(std::errc::message_size);
      return std::nullopt;
    }
    if ((ec = fill(most - input_.size()))) return std::nullopt;
  }
}

std::optional<std::string> BlockingStream::read_line() {
  std::error_code ec;
  auto line = read_line(ec);
  return or_throw(std::move(line), ec, "read_line");
}

std::string BlockingStream::read(std::size_t n, std::error_code& ec) {
  ec.clear();
  while (input_.size() < n && !eof_) {
    if ((ec = fill(std::max(n - input_.size(), kFlushAt)))) return {};
  }
  std::size_t take = std::min(n, input_.size());
  std::string out(input_.view().substr(0, take));
  input_.consume(take);
  return out;
}

std::string BlockingStream::read(std::size_t n) {
  std::error_code ec;
  auto out = read(n, ec);
  return or_throw(std::move(out), ec, "read");
}

std::string BlockingStream::read_some(std::size_t max, std::error_code& ec) {
  ec.clear();
  if (max == 0) return {};
  if (input_.empty() && !eof_) {
    if ((ec = fill(max))) return {};
  }
  std::size_t take = std::min(max, input_.size());
  std::string out(input_.view().substr(0, take));
  input_.consume(take);
  return out;
}

std::string BlockingStream::read_some(std::size_t max) {
  std::error_code ec;
  auto out = read_some(max, ec);
  return or_throw(std::move(out), ec, "read_some");
}

namespace {
// Sends all of `bytes`, waiting for room with `wait`; on error `bytes` is what is left.
template <typename Wait>
std::error_code send_all(int fd, std::string_view& bytes, Wait&& wait) {
  while (!bytes.empty()) {
    ssize_t n = ::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL);
    if (n >= 0) {
      bytes.remove_prefix(static_cast<std::size_t>(n));
    } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
      if (auto ec = wait()) return ec;
    } else if (errno != EINTR) {
      return last_error();
    }
  }
  return {};
}
}  // namespace

void BlockingStream::flush(std::error_code& ec) {
  std::string_view left = output_.view();
  ec = send_all(socket_.fd(), left, [this] { return wait(true); });
  output_.consume(output_.size() - left.size());
  if (ec) output_lost_ = true;
}

void BlockingStream::flush() {
  std::error_code ec;
  flush(ec);
  if (ec) throw std::system_error(ec, "flush");
}

void BlockingStream::write(std::string_view bytes, std::error_code& ec) {
  ec.clear();
  if (output_.size() + bytes.size() <= kFlushAt) {
    ec = output_.append(bytes);
    return;
  }
  // Large: flush what is queued, then send straight from the caller's bytes (no copy).
  flush(ec);
  if (!ec) ec = send_all(socket_.fd(), bytes, [this] { return wait(true); });
  if (ec) output_lost_ = true;
  // A failed large write leaves its unsent rest unqueued: the stream is broken anyway.
}

void BlockingStream::write(std::string_view bytes) {
  std::error_code ec;
  write(bytes, ec);
  if (ec) throw std::system_error(ec, "write");
}

void BlockingStream::shutdown_write(std::error_code& ec) {
  flush(ec);
  if (!ec) ec = socket_.shutdown(SHUT_WR);
}

}  // namespace reactor
