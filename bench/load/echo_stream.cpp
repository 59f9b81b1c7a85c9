// SPDX-License-Identifier: MIT
#include "bench/load/echo_stream.hpp"

#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <string>

#include "bench/load/clocks.hpp"
#include "bench/load/pattern.hpp"

namespace reactor::bench::load {

namespace {

constexpr std::uint64_t kMaxRing = 4096;
constexpr std::size_t kMaxChunk = 64 * 1024;

std::uint64_t round_up(std::uint64_t value, std::uint64_t step) noexcept {
  return (value + step - 1) / step * step;
}

}  // namespace

EchoStream::EchoStream(std::uint32_t message_size, std::uint64_t max_in_flight)
    : size_(std::max<std::uint32_t>(message_size, 1)) {
  // Messages whose last byte is sent but not yet echoed: at most max_in_flight / size + 1.
  const std::uint64_t timed = max_in_flight / size_ + 2;
  stride_ = (timed + kMaxRing - 1) / kMaxRing;
  sent_at_ns_.assign(timed / stride_ + 2, 0);
}

void EchoStream::reset(std::uint64_t key) noexcept {
  key_ = key;
  sent_ = received_ = target_ = 0;
}

IoResult EchoStream::write_some(int fd, std::span<std::uint8_t> scratch) noexcept {
  IoResult r;
  const std::size_t chunk_max = std::min(scratch.size(), kMaxChunk);
  while (sent_ < target_) {
    const auto chunk =
        static_cast<std::size_t>(std::min<std::uint64_t>(target_ - sent_, chunk_max));
    pattern_fill(key_, sent_, scratch.data(), chunk);
    const ssize_t n = ::send(fd, scratch.data(), chunk, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        r.state = IoState::kBlocked;
      } else if (errno != EINTR) {
        r.state = IoState::kFailed;
        r.error = {errno, std::system_category()};
      } else {
        continue;
      }
      return r;
    }
    const auto written = static_cast<std::uint64_t>(n);
    if ((sent_ + written) / size_ != sent_ / size_) stamp_sent(sent_, sent_ + written, now_ns());
    sent_ += written;
    r.bytes += static_cast<std::size_t>(n);
    if (static_cast<std::size_t>(n) < chunk) {
      r.state = IoState::kBlocked;  // the socket buffer is full; the next send would fail
      return r;
    }
  }
  return r;
}

IoResult EchoStream::read_some(int fd, std::span<std::uint8_t> scratch,
                               LatencyHistogram* latencies) {
  IoResult r;
  const ssize_t n = ::read(fd, scratch.data(), std::min(scratch.size(), kMaxChunk));
  if (n == 0) {
    r.state = IoState::kClosed;
    return r;
  }
  if (n < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
      r.state = IoState::kBlocked;
    } else {
      r.state = IoState::kFailed;
      r.error = {errno, std::system_category()};
    }
    return r;
  }
  const auto got = static_cast<std::size_t>(n);
  const std::size_t ok = pattern_check(key_, received_, scratch.data(), got);
  if (ok != got || received_ + got > sent_) mismatch(scratch.data(), got, ok);
  const std::uint64_t from = received_;
  received_ += got;
  r.bytes = got;
  r.messages = received_ / size_ - from / size_;
  if (r.messages != 0 && latencies != nullptr) time_received(from, received_, *latencies);
  return r;
}

// Messages whose last byte lies in (from, to] are m in [from / size, to / size - 1].
void EchoStream::stamp_sent(std::uint64_t from, std::uint64_t to, std::uint64_t now) noexcept {
  const std::uint64_t end = to / size_;
  for (std::uint64_t m = round_up(from / size_, stride_); m < end; m += stride_) {
    sent_at_ns_[(m / stride_) % sent_at_ns_.size()] = now;
  }
}

void EchoStream::time_received(std::uint64_t from, std::uint64_t to,
                               LatencyHistogram& latencies) noexcept {
  const std::uint64_t end = to / size_;
  std::uint64_t m = round_up(from / size_, stride_);
  if (m >= end) return;
  const std::uint64_t now = now_ns();
  for (; m < end; m += stride_) {
    const std::uint64_t sent_at = sent_at_ns_[(m / stride_) % sent_at_ns_.size()];
    latencies.record(now > sent_at ? now - sent_at : 0);
  }
}

void EchoStream::mismatch(const std::uint8_t* data, std::size_t n, std::size_t at) const {
  char text[320];
  if (at == n) {
    std::snprintf(text, sizeof text,
                  "connection #%llu: the server returned %llu bytes but only %llu were sent",
                  static_cast<unsigned long long>(pattern_serial(key_)),
                  static_cast<unsigned long long>(received_ + n),
                  static_cast<unsigned long long>(sent_));
  } else {
    const std::uint64_t offset = received_ + at;
    std::snprintf(text, sizeof text,
                  "payload mismatch on connection #%llu at stream byte %llu (message %llu, byte "
                  "%llu of %llu): expected 0x%02x, got 0x%02x",
                  static_cast<unsigned long long>(pattern_serial(key_)),
                  static_cast<unsigned long long>(offset),
                  static_cast<unsigned long long>(offset / size_),
                  static_cast<unsigned long long>(offset % size_),
                  static_cast<unsigned long long>(size_), pattern_byte(key_, offset), data[at]);
  }
  throw PayloadMismatch(text);
}

}  // namespace reactor::bench::load
