// SPDX-License-Identifier: MIT
#include "reactor/net/connector.hpp"

#include <sys/socket.h>

namespace reactor {

std::shared_ptr<Connector> Connector::connect(Reactor& loop, const Address& address,
                                              Handler handler, std::chrono::nanoseconds timeout) {
  REACTOR_CHECK_LOOP_THREAD(loop, "Connector::connect()");
  auto c = std::make_shared<Connector>(Key{}, loop, std::move(handler));
  c->start(address, timeout);
  return c;
}

Connector::Connector(Key, Reactor& loop, Handler handler)
    : loop_(loop), handler_(std::move(handler)) {}

void Connector::start(const Address& address, std::chrono::nanoseconds timeout) {
  std::error_code ec;
  socket_ = Socket::open(address, SOCK_STREAM, ec);
  if (!ec) ec = socket_.connect(address);
  if (!ec) {
    // Connected at once (usual for Unix sockets). Reported from the loop, and not settled
    // until then: a cancel() before it still wins.
    loop_.post([self = shared_from_this()] { self->finish({}); });
    return;
  }
  // Only EINPROGRESS means "in progress". A Unix socket answers EAGAIN when the listener's
  // backlog is full: it is not connecting, and would look writable at once.
  if (ec != std::errc::operation_in_progress) {
    finish_later(ec);
    return;
  }
  // While pending, the loop's handlers hold the connector (it holds only their handles).
  watcher_ = loop_.watch(
      socket_.fd(), Interest::write,
      [self = shared_from_this()](IoEvents) { self->finish(self->socket_.pending_error()); }, ec);
  if (ec) {
    finish_later(ec);
    return;
  }
  if (timeout.count() > 0) {
    timer_ = loop_.after(timeout, [self = shared_from_this()] {
      self->finish(std::make_error_code(std::errc::timed_out));
    });
  }
}

void Connector::cancel() {
  REACTOR_CHECK_LOOP_THREAD(loop_, "Connector::cancel()");
  finish_later(std::make_error_code(std::errc::operation_canceled));
}

void Connector::settle(std::error_code ec) {
  settled_ = true;
  watcher_.stop();
  timer_.cancel();
  if (ec) socket_.close();
}

void Connector::finish(std::error_code ec) {
  if (settled_) return;
  std::shared_ptr<Connector> keep = shared_from_this();  // settle() drops the loop's refs
  settle(ec);
  report(ec);
}

void Connector::finish_later(std::error_code ec) {
  if (settled_) return;
  settle(ec);  // settled now, reported from the loop
  loop_.post([self = shared_from_this(), ec] { self->report(ec); });
}

void Connector::report(std::error_code ec) {
  Handler handler = std::move(handler_);
  handler(ec, ec ? Socket{} : std::move(socket_));
}

}  // namespace reactor
