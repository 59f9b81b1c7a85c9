// SPDX-License-Identifier: MIT
#include "reactor/net/connection.hpp"

#include "reactor/core/handler_call.hpp"

#include <sys/socket.h>

#include <cerrno>
#include <utility>

namespace reactor {

namespace {

constexpr std::size_t kShrinkAbove = std::size_t{1} << 20;

std::error_code errno_code(int e = errno) noexcept { return {e, std::generic_category()}; }

CloseReason reason_for(std::error_code ec) noexcept {
  if (ec == std::errc::connection_reset || ec == std::errc::broken_pipe) return CloseReason::reset;
  if (ec == std::errc::timed_out) return CloseReason::timeout;
  if (ec == std::errc::no_buffer_space || ec == std::errc::not_enough_memory) {
    return CloseReason::limit;
  }
  return CloseReason::error;
}

// A handler may replace itself while it runs; the connection itself outlives the call (the
// loop's registration or the caller holds it).
template <class Handler, class... Args>
void invoke(Handler& member, Args&&... args) {
  detail::call_member(
      member, [] { return true; }, std::forward<Args>(args)...);
}

// A lingering close on the loop (see Connection::close()): the descriptor, shut down for
// writing, is read and discarded until the peer's end of stream or a bound, then closed. It
// owns itself through its watcher's handler, as a Connection does, so a destroyed loop frees
// it.
struct Lingering : std::enable_shared_from_this<Lingering> {
  Socket socket;
  IoWatcher watcher;
  Timer timer;
  std::size_t left = 0;

  void finish() {
    const std::shared_ptr<Lingering> keep = shared_from_this();  // the handler holds us
    watcher.stop();
    timer.cancel();
    socket.close();
  }

  void drain() {
    char sink[16 * 1024];
    for (int i = 0; i < 4; ++i) {  // bounded per wake-up, as a Connection's reads are
      const ssize_t n = ::recv(socket.fd(), sink, sizeof sink, MSG_DONTWAIT);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
      if (n <= 0 || static_cast<std::size_t>(n) >= left) {  // end of stream, error, bound
        finish();
        return;
      }
      left -= static_cast<std::size_t>(n);
    }
  }
};

void linger_on_loop(Reactor& loop, Socket socket, std::size_t max_bytes,
                    std::chrono::nanoseconds max_time) {
  if (max_bytes == 0 || max_time.count() <= 0) return;  // `socket` closes at once
  auto lingering = std::make_shared<Lingering>();
  Lingering* l = lingering.get();
  l->socket = std::move(socket);
  l->left = max_bytes;
  std::error_code ec;
  l->watcher = loop.watch(
      l->socket.fd(), Interest::read, [lingering](IoEvents) { lingering->drain(); }, ec);
  if (ec) return;  // the lambda, and with it the socket, is gone: closed at once
  l->timer = loop.after(max_time, [l] { l->finish(); });
}

}  // namespace

std::string_view to_string(CloseReason reason) noexcept {
  switch (reason) {
    case CloseReason::eof:
      return "eof";
    case CloseReason::reset:
      return "reset";
    case CloseReason::timeout:
      return "timeout";
    case CloseReason::limit:
      return "limit";
    case CloseReason::local:
      return "local";
    case CloseReason::error:
      return "error";
  }
  return "unknown";
}

std::shared_ptr<Connection> Connection::make(Reactor& loop, Socket socket, Options options) {
  return std::make_shared<Connection>(Key{}, loop, std::move(socket), options);
}

Connection::Connection(Key, Reactor& loop, Socket socket, Options options)
    : loop_(loop),
      socket_(std::move(socket)),
      options_(options),
      input_(options.max_input),
      output_(options.max_output) {
  if (options_.reads_per_iteration == 0) options_.reads_per_iteration = 1;
  if (options_.read_size == 0) options_.read_size = 64 * 1024;
  if (options_.no_delay) socket_.set_no_delay(true);
  std::error_code ignored;
  peer_ = socket_.peer_address(ignored);
}

Connection::~Connection() = default;  // members stop the watcher before closing the socket

void Connection::start() {
  REACTOR_CHECK_LOOP_THREAD(loop_, "Connection::start()");
  REACTOR_CHECK(!started_, "Connection::start()", "called a second time");
  if (started_ || state_ == State::closed) return;
  started_ = true;
  std::error_code ec;
  interest_ = reading_ ? Interest::read : Interest::none;         // paused before start()
  if (!output_.empty()) interest_ = interest_ | Interest::write;  // queued before start()
  // The registration owns the connection: the loop runs a handler from the stack, so the
  // connection outlives its own callbacks without a reference count per event, and a loop
  // destroyed with connections open frees them.
  watcher_ = loop_.watch(
      socket_.fd(), interest_, [self = shared_from_this()](IoEvents e) { self->on_io(e); }, ec);
  if (ec) {
    teardown(CloseReason::error, ec);
    return;
  }
  set_idle_timeout(options_.idle_timeout);
  set_deadline(options_.deadline);
}

// ---------------------------------------------------------------------------------------
// Events from the loop

void Connection::on_io(IoEvents events) {
  if (events.invalid()) {
    teardown(CloseReason::error, std::make_error_code(std::errc::bad_file_descriptor));
    return;
  }
  if (events.readable()) handle_read();
  // A read callback may have closed us; then nothing more is delivered for this batch.
  if (state_ != State::closed && events.writable()) handle_write();
}

void Connection::handle_read() {
  std::size_t got = 0;
  bool eof = false;
  std::error_code failure;
  for (unsigned i = 0; i < options_.reads_per_iteration; ++i) {
    std::error_code ec;
    const std::size_t n = input_.read_from(socket_.fd(), options_.read_size, ec);
    if (ec == std::errc::resource_unavailable_try_again) break;
    if (ec) {
      failure = ec;
      break;
    }
    if (n == 0) {
      eof = true;
      break;
    }
    got += n;
    if (n < options_.read_size) break;  // drained, most likely: spare an EAGAIN read
  }
  if (got > 0) {
    if (options_.idle_timeout.count() > 0) last_activity_ = loop_.now();
    invoke(on_data_, *this, input_);
    if (state_ == State::closed) return;
  }
  if (failure) {
    // ENOBUFS: the input cap is reached because nobody consumes it.
    teardown(reason_for(failure), failure);
  } else if (eof) {
    handle_eof();
  }
}

void Connection::handle_eof() {
  read_eof_ = true;
  if (state_ != State::open) {  // already closing: just stop reading
    update_interest();
    return;
  }
  if (write_shut_) {  // we shut down writing before: both directions are finished
    teardown(CloseReason::eof, {});
    return;
  }
  if (on_eof_) {
    update_interest();
    invoke(on_eof_, *this);
    return;
  }
  if (output_.empty()) {
    teardown(CloseReason::eof, {});
    return;
  }
  state_ = State::closing;  // flush what is queued, then close
  close_reason_ = CloseReason::eof;
  update_interest();
}

void Connection::handle_write() {
  if (!write_queued()) return;
  if (output_.empty()) {
    if (state_ == State::closing) {
      teardown(close_reason_, close_error_);
      return;
    }
    if (shutdown_requested_ && !write_shut_) finish_shutdown();
  }
  if (state_ == State::closed) return;
  update_interest();
  if (above_high_ && output_.size() <= options_.low_watermark) {
    above_high_ = false;
    invoke(on_low_, *this);
  }
}

// Writes queued output until the socket is full. False if the connection broke.
bool Connection::write_queued() {
  while (!output_.empty()) {
    const ssize_t n = ::send(socket_.fd(), output_.data(), output_.size(), MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) break;
      const std::error_code ec = errno_code();
      teardown(reason_for(ec), ec);
      return false;
    }
    const bool partial = static_cast<std::size_t>(n) < output_.size();
    output_.consume(static_cast<std::size_t>(n));
    if (partial) break;  // the socket is full
  }
  if (options_.idle_timeout.count() > 0) last_activity_ = loop_.now();
  if (output_.empty() && output_.capacity() > kShrinkAbove) output_.shrink();
  return true;
}

void Connection::on_idle_timer() {
  const auto idle = options_.idle_timeout;
  const auto quiet = loop_.now() - last_activity_;
  if (quiet >= idle) {
    teardown(CloseReason::timeout, std::make_error_code(std::errc::timed_out));
    return;
  }
  // Activity since the timer was set: one timer per connection, re-armed only when it
  // fires, instead of a timer operation per message.
  idle_timer_ = loop_.after(idle - quiet, [this] { on_idle_timer(); });
}

// ---------------------------------------------------------------------------------------
// Calls from the user

std::error_code Connection::send(std::string_view bytes) {
  REACTOR_CHECK_LOOP_THREAD(loop_, "Connection::send()");
  if (state_ != State::open || shutdown_requested_) {
    return std::make_error_code(std::errc::broken_pipe);
  }
  if (bytes.empty()) return {};
  std::size_t written = 0;
  if (output_.empty() && started_) {
    // Nothing queued: write directly. Never when something is queued: that would overtake.
    for (;;) {
      const ssize_t n = ::send(socket_.fd(), bytes.data(), bytes.size(), MSG_NOSIGNAL);
      if (n >= 0) {
        written = static_cast<std::size_t>(n);
        break;
      }
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) break;
      const std::error_code ec = errno_code();
      teardown(reason_for(ec), ec);
      return ec;
    }
    if (options_.idle_timeout.count() > 0) last_activity_ = loop_.now();
    if (written == bytes.size()) return {};
  }
  const std::string_view rest = bytes.substr(written);
  std::error_code ec;
  if (rest.size() > options_.max_output - output_.size()) {
    ec = std::make_error_code(std::errc::no_buffer_space);
  } else {
    ec = output_.append(rest);
  }
  if (ec) {
    teardown(CloseReason::limit, ec);
    return ec;
  }
  if (started_) update_interest();
  if (!above_high_ && output_.size() >= options_.high_watermark) {
    above_high_ = true;
    // Not from inside this call: the producer hears it from the loop.
    loop_.post([self = shared_from_this()] {
      if (self->state_ != State::closed && self->above_high_) invoke(self->on_high_, *self);
    });
  }
  return {};
}

std::error_code Connection::send(Buffer& bytes) {
  const std::error_code ec = send(bytes.view());
  if (!ec) bytes.clear();
  return ec;
}

void Connection::send_from_any_thread(std::string bytes) {
  loop_.post([self = shared_from_this(), bytes = std::move(bytes)] { self->send(bytes); });
}

std::error_code Connection::shutdown() {
  REACTOR_CHECK_LOOP_THREAD(loop_, "Connection::shutdown()");
  if (state_ != State::open || shutdown_requested_) {
    return std::make_error_code(std::errc::broken_pipe);
  }
  shutdown_requested_ = true;
  if (output_.empty()) finish_shutdown();
  return {};
}

void Connection::finish_shutdown() {
  write_shut_ = true;
  socket_.shutdown(SHUT_WR);  // ENOTCONN after a reset: the read side will report it
  update_interest();
  if (read_eof_) teardown(CloseReason::eof, {});  // both directions are finished
}

void Connection::close() {
  REACTOR_CHECK_LOOP_THREAD(loop_, "Connection::close()");
  if (state_ != State::open) return;
  if (!started_ || output_.empty() || write_shut_) {
    teardown(CloseReason::local, {});
    return;
  }
  state_ = State::closing;
  close_reason_ = CloseReason::local;
  update_interest();
}

void Connection::abort() {
  REACTOR_CHECK_LOOP_THREAD(loop_, "Connection::abort()");
  if (state_ == State::closed) return;
  socket_.set_reset_on_close();
  aborted_ = true;
  output_.clear();
  teardown(CloseReason::local, {});
}

void Connection::close_from_any_thread() {
  loop_.post([self = shared_from_this()] { self->close(); });
}

void Connection::pause_reading() {
  REACTOR_CHECK_LOOP_THREAD(loop_, "Connection::pause_reading()");
  reading_ = false;
  update_interest();
}

void Connection::resume_reading() {
  REACTOR_CHECK_LOOP_THREAD(loop_, "Connection::resume_reading()");
  reading_ = true;
  update_interest();
}

void Connection::set_idle_timeout(std::chrono::nanoseconds timeout) {
  REACTOR_CHECK_LOOP_THREAD(loop_, "Connection::set_idle_timeout()");
  options_.idle_timeout = timeout;
  idle_timer_.cancel();
  if (!started_ || state_ == State::closed || timeout.count() <= 0) return;
  last_activity_ = loop_.now();
  idle_timer_ = loop_.after(timeout, [this] { on_idle_timer(); });
}

void Connection::set_deadline(std::chrono::nanoseconds from_now) {
  REACTOR_CHECK_LOOP_THREAD(loop_, "Connection::set_deadline()");
  options_.deadline = from_now;
  deadline_timer_.cancel();
  if (!started_ || state_ == State::closed || from_now.count() <= 0) return;
  deadline_timer_ = loop_.after(from_now, [this] {
    teardown(CloseReason::timeout, std::make_error_code(std::errc::timed_out));
  });
}

// ---------------------------------------------------------------------------------------
// State

void Connection::update_interest() {
  if (state_ == State::closed || !started_) return;
  Interest want = Interest::none;
  if (reading_ && state_ == State::open && !read_eof_) want = want | Interest::read;
  if (!output_.empty() && !write_shut_) want = want | Interest::write;
  if (want == interest_) return;
  if (const std::error_code ec = watcher_.set_interest(want)) {
    teardown(CloseReason::error, ec);
    return;
  }
  interest_ = want;
}

void Connection::teardown(CloseReason reason, std::error_code ec) {
  if (state_ == State::closed) return;
  // Stopping the watcher below may drop the loop's reference, possibly the last one.
  std::shared_ptr<Connection> keep = shared_from_this();
  state_ = State::closed;
  close_reason_ = reason;
  close_error_ = ec;
  watcher_.stop();  // before close(): the loop must never see the number reused under us
  idle_timer_.cancel();
  deadline_timer_.cancel();
  if (reason == CloseReason::local && !aborted_ && started_ && !read_eof_) {
    // A graceful close with the peer possibly still sending: closing with unread input
    // would reset the connection, and the reset can overtake what we sent last.
    if (!write_shut_) socket_.shutdown(SHUT_WR);
    linger_on_loop(loop_, std::move(socket_), options_.linger_bytes, options_.linger_timeout);
  }
  socket_.close();
  output_ = Buffer(options_.max_output);
  if (!started_) return;
  // on_close runs from the loop, never inside the call that closed us; the task keeps us
  // alive until it has run.
  loop_.post([self = std::move(keep)] { self->report_close(); });
}

void Connection::report_close() {
  CloseHandler on_close = std::move(on_close_);
  // Handlers often capture a shared_ptr to this connection: drop them to break the cycle.
  on_data_ = nullptr;
  on_eof_ = nullptr;
  on_high_ = nullptr;
  on_low_ = nullptr;
  if (on_close) on_close(*this, close_reason_, close_error_);
}

}  // namespace reactor
