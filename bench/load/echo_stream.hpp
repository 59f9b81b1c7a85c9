// SPDX-License-Identifier: MIT
#pragma once
/// \file
/// One connection's echo bookkeeping: how far its pattern stream (pattern.hpp) has been sent,
/// how far it has come back verified, how far it may be sent, and when recent messages left.
///
///     0            received          sent                  target
///     |  verified     |  in flight      |  allowed, not sent   |
///
/// The fd belongs to the caller; the stream only reads and writes it. Messages are the
/// consecutive `size`-byte pieces of the stream; a message's latency is from the write that
/// carried its last byte to the read that returned its last byte. When more messages can be in
/// flight than the ring has slots, only every stride-th message is timed.

#include <cstdint>
#include <span>
#include <stdexcept>
#include <system_error>
#include <vector>

#include "bench/load/histogram.hpp"

namespace reactor::bench::load {

/// The server returned bytes other than those sent, or more of them. Ends the run.
class PayloadMismatch : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// What one read_some() or write_some() achieved.
enum class IoState : std::uint8_t {
  kDone,     ///< read: some bytes arrived; write: everything allowed is sent
  kBlocked,  ///< the socket would block (write: wait for writable)
  kClosed,   ///< read: end of stream from the peer
  kFailed,   ///< an error (IoResult::error), e.g. ECONNRESET or EPIPE
};

/// Outcome of read_some() / write_some().
struct IoResult {
  IoState state = IoState::kDone;
  std::size_t bytes = 0;       ///< moved by this call
  std::uint64_t messages = 0;  ///< read: messages whose last byte arrived in this call
  std::error_code error;       ///< for kFailed
};

/// Send/receive offsets and send times of one connection. Single-threaded; no allocation after
/// construction.
class EchoStream {
 public:
  /// `max_in_flight`: the most bytes that can be sent but not echoed (sizes the time ring).
  EchoStream(std::uint32_t message_size, std::uint64_t max_in_flight);

  /// Starts a new stream (a new connection): offsets to zero, stream key `key`.
  void reset(std::uint64_t key) noexcept;

  /// The pattern key of the current stream (pattern_serial() gives the connection number).
  std::uint64_t key() const noexcept { return key_; }
  /// Stream offset up to which bytes have been written.
  std::uint64_t sent() const noexcept { return sent_; }
  /// Stream offset up to which the echo has come back and been verified.
  std::uint64_t received() const noexcept { return received_; }
  /// Stream offset up to which sending is allowed.
  std::uint64_t target() const noexcept { return target_; }

  /// Allows `bytes` more to be sent.
  void allow(std::uint64_t bytes) noexcept { target_ += bytes; }
  /// Allows sending up to stream offset `target` (never lowers it).
  void allow_up_to(std::uint64_t target) noexcept {
    if (target > target_) target_ = target;
  }

  /// Everything allowed has been sent and echoed.
  bool settled() const noexcept { return received_ == target_; }

  /// Writes from `sent` towards `target` through `scratch` (at least 64 KiB), until done or the
  /// socket is full. Never raises SIGPIPE.
  IoResult write_some(int fd, std::span<std::uint8_t> scratch) noexcept;

  /// One read into `scratch`, verified against the pattern; throws PayloadMismatch on a wrong
  /// or surplus byte. Latencies of completed timed messages go to `latencies` unless null.
  IoResult read_some(int fd, std::span<std::uint8_t> scratch, LatencyHistogram* latencies);

 private:
  void stamp_sent(std::uint64_t from, std::uint64_t to, std::uint64_t now) noexcept;
  void time_received(std::uint64_t from, std::uint64_t to, LatencyHistogram& latencies) noexcept;
  [[noreturn]] void mismatch(const std::uint8_t* data, std::size_t n, std::size_t at) const;

  std::uint64_t key_ = 0;
  std::uint64_t sent_ = 0;
  std::uint64_t received_ = 0;
  std::uint64_t target_ = 0;
  std::uint64_t size_;
  std::uint64_t stride_ = 1;               // every stride-th message is timed
  std::vector<std::uint64_t> sent_at_ns_;  // ring, by (message / stride) % size
};

}  // namespace reactor::bench::load
