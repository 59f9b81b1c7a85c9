// SPDX-License-Identifier: MIT
#include "reactor/net/connection.hpp"

#include "reactor/core/detail/watch_access.hpp"
#include "reactor/core/handler_call.hpp"

#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <cerrno>
#include <cstring>
#include <utility>

namespace reactor {

namespace {

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

struct Connection::Cold {
  DataHandler on_data;
  CloseHandler on_close;
  Handler on_eof;
  Handler on_high;
  Handler on_low;
  Timer idle_timer;
  Timer deadline_timer;
  Reactor::Clock::time_point last_activity{};
  std::unique_ptr<Options> options;  // set_idle_timeout()/set_deadline() changed a value
  std::unique_ptr<Address> peer;     // a peer the compact form cannot hold
};

namespace {

constexpr std::uint8_t kPeerInCold = 0xff;

// One reference to the last Options made on this thread: connections accepted by one server
// share one block instead of a copy each.
struct LastShared {
  void* shared = nullptr;
  void (*release)(void*) = nullptr;
  ~LastShared() {
    if (shared) release(shared);
  }
};
thread_local LastShared last_shared;

}  // namespace

Connection::Shared* Connection::share(Reactor& loop, const Options& options) {
  Options o = options;
  if (o.reads_per_iteration == 0) o.reads_per_iteration = 1;
  if (o.read_size == 0) o.read_size = 64 * 1024;
  auto* last = static_cast<Shared*>(last_shared.shared);
  const detail::LoopRef& life = detail::WatchAccess::life(loop);
  // The same loop, not another one made later at the same address.
  if (last && last->life == life && last->options == o) {
    last->refs.fetch_add(1, std::memory_order_relaxed);
    return last;
  }
  auto* made = new Shared{{2}, &loop, life, o};  // ours and the thread's
  if (last) release(last);
  last_shared.shared = made;
  last_shared.release = [](void* p) { release(static_cast<Shared*>(p)); };
  return made;
}

void Connection::release(Shared* shared) noexcept {
  if (shared->refs.fetch_sub(1, std::memory_order_acq_rel) == 1) delete shared;
}

inline const Connection::Options& Connection::opts() const noexcept {
  return cold_ && cold_->options ? *cold_->options : shared_->options;
}

std::shared_ptr<Connection> Connection::make(Reactor& loop, Socket socket, Options options) {
  return std::make_shared<Connection>(Key{}, loop, std::move(socket), options);
}

Connection::Connection(Reactor& loop, Socket socket, const Options& options)
    : shared_(share(loop, options)),
      input_(options.max_input),
      output_(options.max_output),
      socket_(std::move(socket)) {
  if (options.no_delay) socket_.set_no_delay(true);
  try {
    keep_peer();
  } catch (...) {
    release(shared_);
    throw;
  }
}

void Connection::keep_peer() {
  std::error_code ignored;
  const Address peer = socket_.peer_address(ignored);
  std::memset(peer_ip_, 0, sizeof peer_ip_);
  peer_scope_ = 0;
  peer_port_ = 0;
  peer_family_ = static_cast<std::uint8_t>(peer.family());
  switch (peer.family()) {
    case Address::Family::none:
      return;
    case Address::Family::ipv4: {
      const auto* in = reinterpret_cast<const sockaddr_in*>(peer.native());
      std::memcpy(peer_ip_, &in->sin_addr, sizeof in->sin_addr);
      peer_port_ = in->sin_port;
      return;
    }
    case Address::Family::ipv6: {
      // The flow label is per packet, not part of the address (operator== ignores it too).
      const auto* in6 = reinterpret_cast<const sockaddr_in6*>(peer.native());
      std::memcpy(peer_ip_, &in6->sin6_addr, sizeof in6->sin6_addr);
      peer_port_ = in6->sin6_port;
      peer_scope_ = in6->sin6_scope_id;
      return;
    }
    default:
      if (peer.native_size() == sizeof(sa_family_t)) return;  // unnamed Unix: the usual peer
      peer_family_ = kPeerInCold;
      cold().peer = std::make_unique<Address>(peer);
  }
}

// The watcher stops before the socket closes: the loop must never see the number reused.
Connection::~Connection() {
  stop_watching();
  cold_.reset();
  socket_.close();
  release(shared_);
}

Address Connection::peer_address() const noexcept {
  std::error_code ignored;
  switch (static_cast<Address::Family>(peer_family_)) {
    case Address::Family::none:
      return {};
    case Address::Family::ipv4: {
      sockaddr_in in{};
      in.sin_family = AF_INET;
      in.sin_port = peer_port_;
      std::memcpy(&in.sin_addr, peer_ip_, sizeof in.sin_addr);
      return Address::from_native(reinterpret_cast<const sockaddr*>(&in), sizeof in, ignored);
    }
    case Address::Family::ipv6: {
      sockaddr_in6 in6{};
      in6.sin6_family = AF_INET6;
      in6.sin6_port = peer_port_;
      in6.sin6_scope_id = peer_scope_;
      std::memcpy(&in6.sin6_addr, peer_ip_, sizeof in6.sin6_addr);
      return Address::from_native(reinterpret_cast<const sockaddr*>(&in6), sizeof in6, ignored);
    }
    case Address::Family::unix_path: {
      sockaddr_un un{};
      un.sun_family = AF_UNIX;
      return Address::from_native(reinterpret_cast<const sockaddr*>(&un), sizeof(sa_family_t),
                                  ignored);
    }
    default:
      // Set by the constructor, before any other thread can see this connection.
      return *cold_->peer;
  }
}

const Connection::Options& Connection::options() const noexcept {
  REACTOR_CHECK_LOOP_THREAD(loop(), "Connection::options()");
  return opts();
}

Connection::Cold& Connection::cold() {
  if (!cold_) cold_ = std::make_unique<Cold>();
  return *cold_;
}

void Connection::on_data(DataHandler h) {
  REACTOR_CHECK_LOOP_THREAD(loop(), "Connection::on_data()");
  if (h || cold_) cold().on_data = std::move(h);
}

void Connection::on_close(CloseHandler h) {
  REACTOR_CHECK_LOOP_THREAD(loop(), "Connection::on_close()");
  if (h || cold_) cold().on_close = std::move(h);
}

void Connection::on_eof(Handler h) {
  REACTOR_CHECK_LOOP_THREAD(loop(), "Connection::on_eof()");
  if (h || cold_) cold().on_eof = std::move(h);
}

void Connection::on_high_watermark(Handler h) {
  REACTOR_CHECK_LOOP_THREAD(loop(), "Connection::on_high_watermark()");
  if (h || cold_) cold().on_high = std::move(h);
}

void Connection::on_low_watermark(Handler h) {
  REACTOR_CHECK_LOOP_THREAD(loop(), "Connection::on_low_watermark()");
  if (h || cold_) cold().on_low = std::move(h);
}

void Connection::data_event(Buffer& input) {
  if (cold_) invoke(cold_->on_data, *this, input);
}

bool Connection::eof_event() {
  if (!cold_ || !cold_->on_eof) return false;
  invoke(cold_->on_eof, *this);
  return true;
}

void Connection::high_watermark_event() {
  if (cold_) invoke(cold_->on_high, *this);
}

void Connection::low_watermark_event() {
  if (cold_) invoke(cold_->on_low, *this);
}

void Connection::close_event(CloseReason reason, std::error_code ec) {
  if (!cold_) return;
  CloseHandler on_close = std::move(cold_->on_close);
  // Handlers often capture a shared_ptr to this connection: drop them to break the cycle.
  cold_->on_data = nullptr;
  cold_->on_eof = nullptr;
  cold_->on_high = nullptr;
  cold_->on_low = nullptr;
  if (on_close) on_close(*this, reason, ec);
}

void Connection::start() {
  REACTOR_CHECK_LOOP_THREAD(loop(), "Connection::start()");
  REACTOR_CHECK(!started_, "Connection::start()", "called a second time");
  if (started_ || state_ == State::closed) return;
  started_ = true;
  std::error_code ec;
  interest_ = reading_ ? Interest::read : Interest::none;         // paused before start()
  if (!output_.empty()) interest_ = interest_ | Interest::write;  // queued before start()
  // The registration owns the connection: the loop runs a handler from the stack, so the
  // connection outlives its own callbacks without a reference count per event, and a loop
  // destroyed with connections open frees them.
  IoWatcher watcher = loop().watch(
      socket_.fd(), interest_, [self = shared_from_this()](IoEvents e) { self->on_io(e); }, ec);
  // Kept as its generation alone (the fd is the socket's, the loop's life is in shared_).
  watch_generation_ = detail::WatchAccess::release(watcher);
  watching_ = !ec;
  if (ec) {
    teardown(CloseReason::error, ec);
    return;
  }
  set_idle_timeout(opts().idle_timeout);
  set_deadline(opts().deadline);
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
  {
    const Options& o = opts();  // not across data_event(): it may change the options
    for (unsigned i = 0; i < o.reads_per_iteration; ++i) {
      std::error_code ec;
      const std::size_t n = input_.read_from(socket_.fd(), o.read_size, ec);
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
      if (n < o.read_size) break;  // drained, most likely: spare an EAGAIN read
    }
  }
  if (got > 0) {
    touch();
    data_event(input_);
    // All consumed: an idle connection holds no input memory.
    if (input_.empty()) input_.shrink();
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
  update_interest();
  if (state_ != State::open) return;
  if (eof_event() || state_ != State::open) return;
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
      teardown(close_reason_, {});
      return;
    }
    if (shutdown_requested_ && !write_shut_) finish_shutdown();
  }
  if (state_ == State::closed) return;
  update_interest();
  if (above_high_ && output_.size() <= opts().low_watermark) {
    above_high_ = false;
    low_watermark_event();
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
  touch();
  if (output_.empty()) output_.shrink();  // flushed: an idle connection holds no output memory
  return true;
}

void Connection::touch() noexcept {
  if (cold_ && opts().idle_timeout.count() > 0) cold_->last_activity = loop().now();
}

void Connection::on_idle_timer() {
  const auto idle = opts().idle_timeout;
  const auto quiet = loop().now() - cold_->last_activity;
  if (quiet >= idle) {
    teardown(CloseReason::timeout, std::make_error_code(std::errc::timed_out));
    return;
  }
  // Activity since the timer was set: one timer per connection, re-armed only when it
  // fires, instead of a timer operation per message.
  cold_->idle_timer = loop().after(idle - quiet, [this] { on_idle_timer(); });
}

// ---------------------------------------------------------------------------------------
// Calls from the user

std::error_code Connection::send(std::string_view bytes) {
  REACTOR_CHECK_LOOP_THREAD(loop(), "Connection::send()");
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
    touch();
    if (written == bytes.size()) return {};
  }
  const std::string_view rest = bytes.substr(written);
  const Options& o = opts();
  std::error_code ec;
  if (rest.size() > o.max_output - output_.size()) {
    ec = std::make_error_code(std::errc::no_buffer_space);
  } else {
    ec = output_.append(rest);
  }
  if (ec) {
    teardown(CloseReason::limit, ec);
    return ec;
  }
  if (started_) update_interest();
  if (!above_high_ && output_.size() >= o.high_watermark) {
    above_high_ = true;
    // Not from inside this call: the producer hears it from the loop.
    loop().post([self = shared_from_this()] {
      if (self->state_ != State::closed && self->above_high_) self->high_watermark_event();
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
  loop().post([self = shared_from_this(), bytes = std::move(bytes)] { self->send(bytes); });
}

std::error_code Connection::shutdown() {
  REACTOR_CHECK_LOOP_THREAD(loop(), "Connection::shutdown()");
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
  REACTOR_CHECK_LOOP_THREAD(loop(), "Connection::close()");
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
  REACTOR_CHECK_LOOP_THREAD(loop(), "Connection::abort()");
  if (state_ == State::closed) return;
  socket_.set_reset_on_close();
  aborted_ = true;
  output_.clear();
  teardown(CloseReason::local, {});
}

void Connection::close_from_any_thread() {
  loop().post([self = shared_from_this()] { self->close(); });
}

void Connection::pause_reading() {
  REACTOR_CHECK_LOOP_THREAD(loop(), "Connection::pause_reading()");
  reading_ = false;
  update_interest();
}

void Connection::resume_reading() {
  REACTOR_CHECK_LOOP_THREAD(loop(), "Connection::resume_reading()");
  reading_ = true;
  update_interest();
}

// Copy on write: the shared block is never changed, a connection that changes a timeout gets
// its own Options.
void Connection::change_options(std::chrono::nanoseconds Options::*field,
                                std::chrono::nanoseconds value) {
  if (opts().*field == value) return;
  Cold& c = cold();
  if (!c.options) c.options = std::make_unique<Options>(shared_->options);
  (*c.options).*field = value;
}

void Connection::set_idle_timeout(std::chrono::nanoseconds timeout) {
  REACTOR_CHECK_LOOP_THREAD(loop(), "Connection::set_idle_timeout()");
  change_options(&Options::idle_timeout, timeout);
  if (cold_) cold_->idle_timer.cancel();
  if (!started_ || state_ == State::closed || timeout.count() <= 0) return;
  Cold& c = cold();
  c.last_activity = loop().now();
  c.idle_timer = loop().after(timeout, [this] { on_idle_timer(); });
}

void Connection::set_deadline(std::chrono::nanoseconds from_now) {
  REACTOR_CHECK_LOOP_THREAD(loop(), "Connection::set_deadline()");
  change_options(&Options::deadline, from_now);
  if (cold_) cold_->deadline_timer.cancel();
  if (!started_ || state_ == State::closed || from_now.count() <= 0) return;
  cold().deadline_timer = loop().after(from_now, [this] {
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
  const std::error_code ec =
      watching_ ? detail::WatchAccess::set_interest(loop(), socket_.fd(), watch_generation_, want)
                : std::make_error_code(std::errc::bad_file_descriptor);
  if (ec) {
    teardown(CloseReason::error, ec);
    return;
  }
  interest_ = want;
}

// As IoWatcher::stop(): the registration goes first (unwatching may drop the loop's
// reference), and a loop already destroyed is not touched.
void Connection::stop_watching() noexcept {
  if (!watching_) return;
  watching_ = false;
  if (Reactor* loop = *shared_->life) {
    detail::WatchAccess::unwatch(*loop, socket_.fd(), watch_generation_);
  }
}

void Connection::teardown(CloseReason reason, std::error_code ec) {
  if (state_ == State::closed) return;
  // Stopping the watcher below may drop the loop's reference, possibly the last one.
  std::shared_ptr<Connection> keep = shared_from_this();
  state_ = State::closed;
  close_reason_ = reason;
  stop_watching();  // before close(): the loop must never see the number reused under us
  if (cold_) {
    cold_->idle_timer.cancel();
    cold_->deadline_timer.cancel();
  }
  const Options& o = opts();
  if (reason == CloseReason::local && !aborted_ && started_ && !read_eof_) {
    // A graceful close with the peer possibly still sending: closing with unread input
    // would reset the connection, and the reset can overtake what we sent last.
    if (!write_shut_) socket_.shutdown(SHUT_WR);
    linger_on_loop(loop(), std::move(socket_), o.linger_bytes, o.linger_timeout);
  }
  socket_.close();
  output_ = Buffer(o.max_output);
  if (!started_) return;
  // close_event runs from the loop, never inside the call that closed us; the task keeps us
  // alive until it has run.
  loop().post([self = std::move(keep), reason, ec] { self->close_event(reason, ec); });
}

}  // namespace reactor
