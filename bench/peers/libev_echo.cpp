// SPDX-License-Identifier: MIT
// peer-libev: the echo on libev's default loop (epoll on Linux), as its users write it. libev
// only watches fds, so the sockets, the read buffer and the output queue are ours, as in
// the raw loops: one ev_io per connection, re-armed with stop/set/start when interest
// changes (libev batches those into one epoll_ctl before it next polls), one read of up
// to 64 KiB per callback written straight back, the rest queued. An ev_timer re-arms the
// listener after an accept back-off.
#include <ev.h>

#include "bench/peers/common.hpp"

namespace {

using namespace reactor::bench::peers;

struct Conn {
  ev_io io;  // io.data points back here
  OutputQueue out;
  bool paused = false;  // not reading: out went over kHighWater, until it drains
};

struct Listener {
  ev_io io;
  ev_timer backoff;
};

constexpr double kBackoffSeconds = std::chrono::duration<double>(kAcceptBackoff).count();

char read_buf[kReadSize];  // one loop, one thread: every connection reads into it

void close_conn(struct ev_loop* loop, Conn* c) {
  ev_io_stop(loop, &c->io);
  ::close(c->io.fd);
  delete c;
}

// Writes as much of the queue as the kernel takes. False if closed.
bool flush(struct ev_loop* loop, Conn* c) {
  if (flush_queue(c->io.fd, c->out, c->paused)) return true;
  close_conn(loop, c);
  return false;
}

// One read, written back at once unless older bytes are still queued. False if closed.
bool echo(struct ev_loop* loop, Conn* c) {
  if (echo_once(c->io.fd, c->out, c->paused, read_buf, sizeof read_buf)) return true;
  close_conn(loop, c);
  return false;
}

void on_conn(struct ev_loop* loop, ev_io* w, int revents) {
  auto* c = static_cast<Conn*>(w->data);
  if ((revents & EV_WRITE) && !flush(loop, c)) return;
  if ((revents & EV_READ) && !c->paused && !echo(loop, c)) return;
  const int want = (c->paused ? 0 : EV_READ) | (c->out.empty() ? 0 : EV_WRITE);
  if (want != (c->io.events & (EV_READ | EV_WRITE))) {
    ev_io_stop(loop, &c->io);
    ev_io_set(&c->io, c->io.fd, want);
    ev_io_start(loop, &c->io);
  }
}

void on_acceptable(struct ev_loop* loop, ev_io* w, int /*revents*/) {
  auto* listener = static_cast<Listener*>(w->data);
  for (;;) {
    const int fd = ::accept4(w->fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      switch (after_accept_error(errno)) {
        case AcceptNext::kRetry:
          continue;
        case AcceptNext::kDrained:
          return;
        case AcceptNext::kBackOff:
          ev_io_stop(loop, &listener->io);
          // A one-shot timer that has fired has used up its delay: set it again.
          ev_timer_set(&listener->backoff, kBackoffSeconds, 0.);
          ev_timer_start(loop, &listener->backoff);
          return;
      }
    }
    set_nodelay(fd);
    auto* c = new Conn;
    ev_io_init(&c->io, on_conn, fd, EV_READ);
    c->io.data = c;
    ev_io_start(loop, &c->io);
  }
}

void on_backoff_over(struct ev_loop* loop, ev_timer* t, int /*revents*/) {
  ev_io_start(loop, &static_cast<Listener*>(t->data)->io);
}

}  // namespace

int main(int argc, char** argv) {
  const sockaddr_in addr = start(argc, argv);
  struct ev_loop* loop = ev_default_loop(0);
  if (loop == nullptr) die("ev_default_loop", ENOSYS);

  Listener listener;
  ev_io_init(&listener.io, on_acceptable, listen_tcp(addr), EV_READ);
  listener.io.data = &listener;
  ev_timer_init(&listener.backoff, on_backoff_over, kBackoffSeconds, 0.);
  listener.backoff.data = &listener;
  ev_io_start(loop, &listener.io);

  announce(listener.io.fd);
  ev_run(loop, 0);
  return 0;
}
