// SPDX-License-Identifier: MIT
#pragma once
/// \file
/// A blocking, buffered reader and writer over one stream socket: Python's rfile and wfile
/// in one object, for the handlers of the sync, threading and forking models.
///
/// - Every wait has a timeout (set_timeout; zero: none), the stream may have an absolute
///   deadline (set_deadline; each wait takes the shorter of the two), and every wait can be
///   cancelled: the server cancels the waits of its handlers at shutdown(), in this process
///   and in forked children. A cancelled read fails at once; a cancelled write (the handler
///   is sending its answer) goes on for up to the drain time (set_drain; zero: fails at once)
///   and fails only then. A timed-out wait fails with errc::timed_out, a cancelled one with
///   errc::operation_canceled; neither loses buffered input.
/// - Signals never break an operation: EINTR is retried and the remaining time waited.
/// - read_line() is capped (max_line, counted without the terminator, as LineReader counts:
///   read_line() splits with it): a longer line fails with errc::message_size, and read_line()
///   itself never buffers more than the cap and a CRLF (read(n) buffers what it is asked).
/// - write() buffers; flush() (and a full buffer) writes everything out. SIGPIPE is never
///   raised; a vanished peer is errc::broken_pipe or errc::connection_reset.
/// - Each operation has a throwing form (std::system_error, for handler code written the
///   Python way) and an error_code form.
/// - Thread rule: one thread at a time.

#include <chrono>
#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>

#include "reactor/export.hpp"
#include "reactor/net/address.hpp"
#include "reactor/net/buffer.hpp"
#include "reactor/net/socket.hpp"

namespace reactor {

/// One client's connection as the blocking models see it: buffered reads and writes that
/// wait, with a timeout, for the socket. Owns the socket; not copyable or movable. The file
/// comment is its contract.
class REACTOR_API BlockingStream {
 public:
  /// Default cap on read_line()'s line length, terminator excluded: LineReader's, 64 KiB.
  static constexpr std::size_t kDefaultMaxLine = LineReader::kDefaultMaxLine;

  /// Takes a connected stream socket (made non-blocking if it is not). `cancel_fd`, if not
  /// -1, is an fd that becomes readable to cancel every wait (the stream does not own it).
  /// Throws std::system_error if the socket cannot be made non-blocking. Waiting needs no
  /// memory or fd beyond the stream itself, whatever the fd numbers.
  explicit BlockingStream(Socket socket, int cancel_fd = -1);
  ~BlockingStream();
  BlockingStream(const BlockingStream&) = delete;
  BlockingStream& operator=(const BlockingStream&) = delete;

  /// Per-wait timeout; zero: wait as long as it takes.
  void set_timeout(std::chrono::milliseconds timeout) noexcept { timeout_ = timeout; }
  /// The per-wait timeout; zero: none.
  std::chrono::milliseconds timeout() const noexcept { return timeout_; }
  /// Absolute deadline of every later wait; time_point::max(): none (the default).
  void set_deadline(std::chrono::steady_clock::time_point deadline) noexcept {
    deadline_ = deadline;
  }
  /// The absolute deadline; time_point::max(): none.
  std::chrono::steady_clock::time_point deadline() const noexcept { return deadline_; }
  /// How long a write may go on once the waits are cancelled (counted from the first write
  /// wait that sees the cancellation); zero (the default): a cancelled write fails at once.
  void set_drain(std::chrono::milliseconds drain) noexcept { drain_ = drain; }
  /// True once a write or flush failed: the peer may not have everything written.
  bool output_lost() const noexcept { return output_lost_; }
  /// Sets the cap on read_line()'s line length, terminator excluded; applies from the next call.
  void set_max_line(std::size_t max_line) noexcept { max_line_ = max_line; }
  /// The cap on read_line()'s line length, terminator excluded.
  std::size_t max_line() const noexcept { return max_line_; }

  /// The next line, with its LF (the last line may lack it); nullopt at end of stream.
  std::optional<std::string> read_line();
  /// As above, with the error in `ec` and nullopt instead of a throw.
  std::optional<std::string> read_line(std::error_code& ec);
  /// Exactly `n` bytes, fewer only at end of stream.
  std::string read(std::size_t n);
  /// As above, with the error in `ec` and an empty string instead of a throw; bytes already
  /// buffered stay for the next read.
  std::string read(std::size_t n, std::error_code& ec);
  /// What is available now or after one wait (1..max bytes); empty at end of stream.
  std::string read_some(std::size_t max = 64 * 1024);
  /// As above, with the error in `ec` and an empty string instead of a throw.
  std::string read_some(std::size_t max, std::error_code& ec);

  /// Buffers `bytes`; writes out when more than 64 KiB is buffered.
  void write(std::string_view bytes);
  /// As above, with the error in `ec` instead of a throw.
  void write(std::string_view bytes, std::error_code& ec);
  /// Writes everything buffered.
  void flush();
  /// As above, with the error in `ec` instead of a throw; what was not written stays buffered.
  void flush(std::error_code& ec);

  /// Flushes, then shuts down the writing side (the peer reads end of stream).
  void shutdown_write(std::error_code& ec);

  /// Bytes read and not yet returned / written and not yet flushed.
  ///@{
  std::size_t buffered_input() const noexcept { return input_.size(); }
  std::size_t buffered_output() const noexcept { return output_.size(); }
  ///@}
  /// True once end of stream was read.
  bool eof() const noexcept { return eof_; }
  /// The socket's fd, for socket options; reading or writing it directly bypasses the buffers.
  int fd() const noexcept { return socket_.fd(); }
  /// The socket itself (the servers close it gently after the handler).
  Socket& socket() noexcept { return socket_; }

 private:
  std::error_code fill(std::size_t want_more);
  std::error_code wait(bool for_write);

  Socket socket_;
  int cancel_fd_;
  Buffer input_;
  Buffer output_;
  std::chrono::milliseconds timeout_{0};
  std::chrono::steady_clock::time_point deadline_ = std::chrono::steady_clock::time_point::max();
  std::chrono::milliseconds drain_{0};
  std::chrono::steady_clock::time_point drain_until_{};  // set by the first cancelled write
  bool canceled_ = false;  // a write saw the cancel fd and drains: no longer watched
  bool output_lost_ = false;
  std::size_t max_line_ = kDefaultMaxLine;
  bool eof_ = false;
};

}  // namespace reactor
