#include "reactor/net/listener.hpp"

#include "reactor/core/handler_call.hpp"

#include <sys/socket.h>

#include <algorithm>
#include <cerrno>

namespace reactor {

namespace detail {

struct ListenerState {
  ListenerState(Reactor& l, Listener::AcceptHandler h, Listener::Options o)
      : loop(l), handler(std::move(h)), options(o) {}

  Reactor& loop;
  Listener::AcceptHandler handler;
  Listener::Options options;
  Socket socket;
  Address address;
  IoWatcher watcher;
  Timer backoff_timer;
  std::chrono::milliseconds backoff{0};
  std::uint64_t backoffs = 0;
  bool closed = false;
  bool paused = false;
  bool backing_off = false;

  bool armed() const noexcept { return !closed && !paused && !backing_off; }

  // Puts the fd in or out of the loop's set to match armed().
  void update() {
    if (closed) return;
    watcher.set_interest(armed() ? Interest::read : Interest::none);
  }

  void on_ready() {
    for (unsigned i = 0; i < options.accepts_per_event && armed(); ++i) {
      sockaddr_storage ss{};
      socklen_t len = sizeof ss;
      const int fd = ::accept4(socket.fd(), reinterpret_cast<sockaddr*>(&ss), &len,
                               SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd < 0) {
        const int e = errno;
        if (e == EINTR || e == ECONNABORTED || e == EPROTO || e == EPERM) continue;
        if (e == EAGAIN || e == EWOULDBLOCK) break;
        start_backoff();  // EMFILE, ENFILE, ENOBUFS, ENOMEM, or the listener itself broke
        break;
      }
      backoff = std::chrono::milliseconds{0};
      std::error_code ignored;
      const Address peer = Address::from_native(reinterpret_cast<sockaddr*>(&ss), len, ignored);
      // The handler may destroy the Listener (which clears `handler`); the caller's lock
      // keeps this state alive, and `closed` says whether the handler is still wanted.
      call_member(
          handler, [this] { return !closed; }, Socket(fd), peer);
    }
    update();
  }

  void start_backoff() {
    ++backoffs;
    backing_off = true;
    backoff = std::clamp(backoff * 2, options.error_backoff, std::chrono::milliseconds{1000});
    backoff_timer = loop.after(backoff, [this] {
      backing_off = false;
      update();
    });
  }
};

}  // namespace detail

Listener::Listener(Reactor& loop, const Address& address, AcceptHandler handler, Options options)
    : state_(std::make_shared<detail::ListenerState>(loop, std::move(handler), options)) {
  detail::ListenerState& s = *state_;
  std::error_code ec;
  s.socket = Socket::open(address, SOCK_STREAM, ec);
  if (!ec && options.reuse_address && address.is_ip()) ec = s.socket.set_reuse_address(true);
  if (!ec && options.reuse_port) ec = s.socket.set_reuse_port(true);
  if (!ec) ec = s.socket.bind(address);
  if (!ec) ec = s.socket.listen(options.backlog);
  if (!ec) s.address = s.socket.local_address(ec);
  if (ec) {
    s.closed = true;
    s.socket.close();
    throw std::system_error(ec, "listen on " + address.to_string());
  }
  std::weak_ptr<detail::ListenerState> weak = state_;
  s.watcher = loop.watch(s.socket.fd(), Interest::read, [weak](IoEvents) {
    if (auto self = weak.lock()) self->on_ready();
  });
}

Listener::~Listener() {
  // Thread-checked through the watcher and the timer, which know whether the loop lives.
  detail::ListenerState& s = *state_;
  s.closed = true;
  s.watcher.stop();
  s.backoff_timer.cancel();
  s.socket.close();
  s.handler = nullptr;
}

const Address& Listener::address() const noexcept { return state_->address; }
int Listener::fd() const noexcept { return state_->socket.fd(); }

void Listener::pause() {
  REACTOR_CHECK_LOOP_THREAD(state_->loop, "Listener::pause()");
  state_->paused = true;
  state_->update();
}

void Listener::resume() {
  REACTOR_CHECK_LOOP_THREAD(state_->loop, "Listener::resume()");
  state_->paused = false;
  state_->update();
}

bool Listener::accepting() const noexcept {
  REACTOR_CHECK_LOOP_THREAD(state_->loop, "Listener::accepting()");
  return state_->armed() && state_->watcher.interest() == Interest::read;
}

std::uint64_t Listener::backoffs() const noexcept {
  REACTOR_CHECK_LOOP_THREAD(state_->loop, "Listener::backoffs()");
  return state_->backoffs;
}

}  // namespace reactor
