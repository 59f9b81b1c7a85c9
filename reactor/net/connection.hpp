// SPDX-License-Identifier: MIT
#pragma once
/// \file
/// A buffered, ordered, flow-controlled stream connection (TCP or Unix stream) on a Reactor.
///
/// Contract:
/// - Bytes are never reordered, duplicated or lost while the connection is open: send()
///   writes directly only when nothing is queued, and queues the rest in order; the queue is
///   flushed when the socket is writable.
/// - Every buffer has a hard cap. Input past Options::max_input (the user is not consuming)
///   or output past Options::max_output (the producer ignores the watermarks) closes the
///   connection with CloseReason::limit; a peer is never given unbounded memory.
/// - Flow control: when queued output reaches the high watermark, on_high_watermark runs
///   (pause the producer); when it falls back to the low watermark, on_low_watermark runs
///   (resume it). pause_reading()/resume_reading() stop and restart input; a paused
///   connection costs the loop nothing (its fd leaves the kernel set).
/// - Fairness: at most Options::reads_per_iteration reads per loop iteration.
/// - on_close runs exactly once, with the reason, always from the loop (never inside a call
///   of yours into this class), after which no other callback runs. No callback ever runs
///   inside one of your calls: a send() that fails reports through its return value now and
///   through on_close later.
/// - A graceful close (close(), or shutdown() then the peer's end of stream) delivers what was
///   sent: the writing side is shut down after the queue is flushed, and input the peer still
///   sends is read and discarded (at most Options::linger_bytes, for at most
///   Options::linger_timeout) before the descriptor is closed, so the kernel never answers
///   with a reset. on_close(local) runs once the queue is flushed, not after the lingering.
///   abort() resets at once.
/// - SIGPIPE is never raised (MSG_NOSIGNAL on every send) and its disposition is untouched.
/// - Interrupted system calls are retried; EINTR never reaches you.
/// - Lifetime: a Connection is held by std::shared_ptr. Once started, its registration with
///   the loop holds a reference until it is closed and on_close has run, so you need not keep
///   one, and dropping your last reference inside a callback is safe. Destroying the loop
///   releases connections still open (no on_close then).
/// - Thread rule: the loop's (reactor/core/reactor.hpp), checked by the debug checks on
///   every member except these, which any thread may call: make() (it touches no loop
///   state), send_from_any_thread(), close_from_any_thread(), loop(), local_address(),
///   peer_address() (fixed by make()), and the destructor. A Connection must not be used
///   after its Reactor is destroyed (destroying it then is safe).
/// - Closed is a state, not a misuse: the peer or a limit can close a connection at any time,
///   so send() and shutdown() after a close return EPIPE, and close(), abort(), the pauses and
///   the timeouts do nothing, with or without the debug checks. Only start() twice aborts.
///
/// Extension point: a class may derive from Connection instead of setting the five callbacks,
/// to keep its own per-connection state in the same allocation (std::make_shared<Derived>).
/// It calls the protected constructor and overrides the protected event hooks (data_event(),
/// eof_event(), high_watermark_event(), low_watermark_event(), close_event()), whose default
/// implementations call the callbacks set with on_data() and the others. Every clause above
/// holds for the hooks as for the callbacks: they run on the loop, never inside a call of
/// yours into this class; close_event() runs exactly once, last, for a started connection.
/// The object must be held by std::shared_ptr before start() (the loop's registration holds
/// a reference, as for make()).
///
/// Memory: an idle connection holds no buffer memory (input is given back once on_data has
/// consumed it, output once it is flushed); the Options are shared by the connections made
/// on one thread with equal Options and the same loop; the callbacks, the timers and a peer
/// address that is not IPv4, IPv6 or an unnamed Unix socket live in a block allocated only
/// when one of them is used.

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <system_error>

#include "reactor/core/reactor.hpp"
#include "reactor/export.hpp"
#include "reactor/net/address.hpp"
#include "reactor/net/buffer.hpp"
#include "reactor/net/socket.hpp"

namespace reactor {

/// Why a connection closed.
enum class CloseReason : std::uint8_t {
  eof,      ///< the peer closed (after our queued output was flushed)
  reset,    ///< the peer reset the connection (or it broke: EPIPE, ECONNRESET)
  timeout,  ///< idle timeout or absolute deadline passed (error ETIMEDOUT)
  limit,    ///< an input or output cap was passed (error ENOBUFS), or memory ran out
  local,    ///< close() or abort() was called
  error,    ///< any other socket error (given as the error_code)
};
/// "eof", "reset", ...
REACTOR_API std::string_view to_string(CloseReason reason) noexcept;

/// One stream connection: a socket, its input and output buffers and its callbacks. Made by
/// make() and held by std::shared_ptr; the file comment is its contract.
class REACTOR_API Connection : public std::enable_shared_from_this<Connection> {
 public:
  /// Caps, watermarks, fairness and timeouts, fixed at make() (set_idle_timeout() and
  /// set_deadline() change the two timeouts later).
  struct Options {
    std::size_t max_input = std::size_t{4} << 20;        ///< input cap, bytes
    std::size_t max_output = std::size_t{64} << 20;      ///< output cap, bytes
    std::size_t high_watermark = std::size_t{4} << 20;   ///< on_high_watermark at/above
    std::size_t low_watermark = std::size_t{256} << 10;  ///< on_low_watermark at/below
    std::size_t read_size = 64 * 1024;                   ///< bytes asked for per read
    unsigned reads_per_iteration = 4;                    ///< fairness bound
    std::chrono::nanoseconds idle_timeout{0};            ///< 0: none
    std::chrono::nanoseconds deadline{0};                ///< from start(); 0: none
    bool no_delay = true;                                ///< TCP_NODELAY
    /// Lingering close (see close()): unread input discarded at most before the final
    /// close, bytes.
    std::size_t linger_bytes = std::size_t{256} << 10;
    /// Lingering close: longest wait for the peer's end of stream; 0: close at once (a
    /// peer whose input is unread then gets a reset, and may lose our last bytes).
    std::chrono::nanoseconds linger_timeout{std::chrono::seconds{1}};

    /// Memberwise.
    friend bool operator==(const Options&, const Options&) = default;
  };

  /// Called with the connection and its input buffer when bytes arrived (on_data()).
  using DataHandler = std::function<void(Connection&, Buffer& input)>;
  /// Called once with why the connection closed and the error behind it, if any (on_close()).
  using CloseHandler = std::function<void(Connection&, CloseReason, std::error_code)>;
  /// Called with the connection for a state change (on_eof(), the watermarks).
  using Handler = std::function<void(Connection&)>;

  /// Wraps a connected, non-blocking socket. Nothing happens until start().
  static std::shared_ptr<Connection> make(Reactor& loop, Socket socket, Options options);
  /// As above, with the default Options.
  static std::shared_ptr<Connection> make(Reactor& loop, Socket socket) {
    return make(loop, std::move(socket), Options{});
  }
  virtual ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  /// Data arrived: it is in `input`; consume what you use (input.consume(n)). What you
  /// leave stays for the next call.
  void on_data(DataHandler h);
  /// Exactly once, last (for a connection that was started).
  void on_close(CloseHandler h);
  /// The peer shut down its writing side. If set, the connection stays open (you may still
  /// send, then shutdown() or close()); if not set, queued output is flushed and the
  /// connection closes with CloseReason::eof. After our own shutdown() it is not called: both
  /// directions are finished and the connection closes with CloseReason::eof.
  void on_eof(Handler h);
  /// Queued output reached Options::high_watermark: pause what produces it. Runs once per
  /// crossing: not again until the queue has fallen back to Options::low_watermark.
  void on_high_watermark(Handler h);
  /// Queued output fell back to Options::low_watermark after a high-watermark call: resume
  /// the producer.
  void on_low_watermark(Handler h);

  /// Starts reading (and the timers). Call once, after setting the handlers (debug checks:
  /// a second call aborts; without them it does nothing). Errors (the loop refused the fd)
  /// close the connection with CloseReason::error. On a connection closed before it was
  /// started it does nothing (no on_close follows).
  void start();

  /// Sends bytes, in order after everything sent before. Returns:
  ///   {}        written or queued;
  ///   EPIPE     after shutdown()/close(), or the connection is closed;
  ///   ENOBUFS   the output cap would be passed: the connection closes (CloseReason::limit);
  ///   ECONNRESET/EPIPE from the kernel: the connection closes (CloseReason::reset).
  std::error_code send(std::string_view bytes);
  /// Sends and empties `bytes` (its memory is reused when nothing is queued).
  std::error_code send(Buffer& bytes);
  /// Marshals a send to the loop thread. Thread rule: any thread (never checked).
  void send_from_any_thread(std::string bytes);

  /// Shuts down the writing side once the queue is flushed; reading goes on.
  /// EPIPE if already shut down or closed.
  std::error_code shutdown();
  /// Graceful close: stop reading, flush the queue, shut down the writing side (the peer
  /// reads everything sent, then end of stream), then on_close(local). Unless the peer's end
  /// of stream was already read, the descriptor then lingers: what the peer still sends is
  /// read and discarded until it closes, Options::linger_bytes were discarded or
  /// Options::linger_timeout passed, and only then is it closed. (Linux answers a close with
  /// unread input by a reset, which can destroy the answer still in flight to the peer.)
  /// The lingering happens after on_close, on the loop, owned by it; destroying the loop
  /// closes a lingering descriptor at once.
  void close();
  /// Abortive close: discard the queue and reset the connection (RST) now; no lingering.
  void abort();
  /// close() marshalled to the loop thread. Thread rule: any thread (never checked).
  void close_from_any_thread();

  /// Stops reading: the fd leaves the kernel's read set and input stays in the kernel (the
  /// peer is slowed by TCP flow control). Allowed before start(). Does nothing once closed.
  void pause_reading();
  /// Reads again after pause_reading(). Does nothing once closed.
  void resume_reading();
  /// False between pause_reading() and resume_reading(); true otherwise.
  bool reading() const noexcept {
    REACTOR_CHECK_LOOP_THREAD(loop(), "Connection::reading()");
    return reading_;
  }

  /// Re-arms the idle timeout (0: none) from now.
  void set_idle_timeout(std::chrono::nanoseconds timeout);
  /// Sets an absolute deadline from now (0: none).
  void set_deadline(std::chrono::nanoseconds from_now);

  /// True until the connection is closed (by either side, a limit or a timeout); a
  /// connection that is flushing its queue before a graceful close is still open.
  bool open() const noexcept {
    REACTOR_CHECK_LOOP_THREAD(loop(), "Connection::open()");
    return state_ != State::closed;
  }
  /// Bytes of output queued and not yet written to the socket.
  std::size_t queued() const noexcept {
    REACTOR_CHECK_LOOP_THREAD(loop(), "Connection::queued()");
    return output_.size();
  }
  /// The input buffer on_data() is given: bytes received and not yet consumed.
  Buffer& input() noexcept {
    REACTOR_CHECK_LOOP_THREAD(loop(), "Connection::input()");
    return input_;
  }
  /// This end's address, asked of the kernel (getsockname) on each call: a connection does
  /// not keep a copy (136 bytes) it is rarely asked for. An empty Address once closed, or
  /// on another failure, which the first form reports in `ec`. Thread rule: any thread
  /// (one getsockname on the socket; after a close it reports the error).
  ///@{
  Address local_address(std::error_code& ec) const noexcept { return socket_.local_address(ec); }
  Address local_address() const noexcept {
    std::error_code ignored;
    return local_address(ignored);
  }
  ///@}
  /// The peer's address, asked of the kernel by make() and kept (an empty Address if the
  /// kernel did not tell). Returned by value, from a compact copy. Thread rule: any thread.
  Address peer_address() const noexcept;
  /// -1 once closed.
  int fd() const noexcept {
    REACTOR_CHECK_LOOP_THREAD(loop(), "Connection::fd()");
    return socket_.fd();
  }
  /// Thread rule: any thread.
  Reactor& loop() const noexcept { return *shared_->loop; }
  /// set_idle_timeout() and set_deadline() change it.
  const Options& options() const noexcept;

 private:
  struct Key {};

 public:
  /// For std::make_shared inside make() only: `Key` is private, so use make().
  Connection(Key, Reactor& loop, Socket socket, const Options& options)
      : Connection(loop, std::move(socket), options) {}

 protected:
  /// For a derived class (see the file comment): wraps a connected, non-blocking socket as
  /// make() does. Hold the object in a std::shared_ptr before start().
  Connection(Reactor& loop, Socket socket, const Options& options);

  /// Bytes arrived and are in `input` (input()). Default: calls the on_data() callback.
  virtual void data_event(Buffer& input);
  /// The peer shut down its writing side (on_eof()). Return true to keep the connection open
  /// (you may still send, then shutdown() or close()), false to have queued output flushed
  /// and the connection closed with CloseReason::eof. Default: calls the on_eof() callback
  /// and returns true if one is set, false otherwise.
  virtual bool eof_event();
  /// Queued output reached the high watermark (on_high_watermark()). Default: the callback.
  virtual void high_watermark_event();
  /// Queued output fell back to the low watermark (on_low_watermark()). Default: the callback.
  virtual void low_watermark_event();
  /// Exactly once, last. Default: drops the other callbacks (they often hold a reference to
  /// this connection), then calls the on_close() callback.
  virtual void close_event(CloseReason reason, std::error_code ec);

 private:
  enum class State : std::uint8_t { open, closing, closed };

  // The Options, immutable and shared by the connections made on one thread with equal
  // Options and the same loop; never replaced, so loop() is safe from any thread.
  struct Shared {
    std::atomic<std::uint32_t> refs{1};
    Reactor* loop;
    detail::LoopRef life;  // *life is null once the loop is destroyed
    Options options;
  };
  // What few connections use, allocated when first needed: the callbacks, the timers,
  // Options changed by set_idle_timeout()/set_deadline(), a peer the compact form cannot hold.
  struct Cold;
  static Shared* share(Reactor& loop, const Options& options);
  Cold& cold();
  void keep_peer();
  const Options& opts() const noexcept;  // options() without the thread check
  static void release(Shared* shared) noexcept;
  void change_options(std::chrono::nanoseconds Options::*field, std::chrono::nanoseconds value);
  void touch() noexcept;
  void on_io(IoEvents events);
  void handle_read();
  void handle_eof();
  void handle_write();
  void on_idle_timer();
  bool write_queued();
  void update_interest();
  void finish_shutdown();
  void teardown(CloseReason reason, std::error_code ec);
  void stop_watching() noexcept;

  Shared* shared_;
  std::unique_ptr<Cold> cold_;
  Buffer input_;
  Buffer output_;
  std::uint32_t watch_generation_ = 0;  // the loop's registration while watching_
  // The peer: IPv4, IPv6 or an unnamed Unix socket here (the port in network byte order);
  // any other in the cold block. Loose members, not a struct: the flags below fill the gap.
  unsigned char peer_ip_[16];
  std::uint32_t peer_scope_;
  std::uint16_t peer_port_;
  std::uint8_t peer_family_;
  State state_ = State::open;
  Socket socket_;
  CloseReason close_reason_ = CloseReason::local;
  Interest interest_ = Interest::none;  // what the watcher asks for now
  bool started_ : 1 = false;
  bool reading_ : 1 = true;
  bool read_eof_ : 1 = false;
  bool shutdown_requested_ : 1 = false;  // shut down writing once the queue is flushed
  bool write_shut_ : 1 = false;
  bool above_high_ : 1 = false;
  bool aborted_ : 1 = false;   // abort(): a reset, never a lingering close
  bool watching_ : 1 = false;  // registered with the loop (watch_generation_)
};

}  // namespace reactor
