// SPDX-License-Identifier: MIT
// peer-libevent: the echo on libevent 2.1 bufferevents, as its own samples write it. An
// evconnlistener accepts; each connection is a socket bufferevent whose read callback moves
// the input buffer's chains onto the output buffer (evbuffer_add_buffer: no copy), and
// libevent writes them when the socket is writable. Reading is disabled while the output
// buffer is over kHighWater; the write callback, which libevent calls when the output
// drains to its low-water mark (0 by default), enables it again. The per-callback read and
// write limits are raised to 64 KiB with the documented setters (the defaults are 16 KiB).
//
// evconnlistener reports accept errors other than EAGAIN/EINTR/ECONNABORTED to an error
// callback and keeps the listener armed, so on EMFILE it would be called again at once;
// the callback disables the listener and an evtimer re-enables it after kAcceptBackoff.
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>

#include "bench/peers/common.hpp"

namespace {

using namespace reactor::bench::peers;

struct Server {
  event_base* base = nullptr;
  evconnlistener* listener = nullptr;
  event* backoff = nullptr;  // re-enables the listener
};

void on_read(bufferevent* bev, void*) {
  evbuffer* out = bufferevent_get_output(bev);
  evbuffer_add_buffer(out, bufferevent_get_input(bev));
  if (evbuffer_get_length(out) > kHighWater) bufferevent_disable(bev, EV_READ);
}

void on_drained(bufferevent* bev, void*) {
  if ((bufferevent_get_enabled(bev) & EV_READ) == 0) bufferevent_enable(bev, EV_READ);
}

void on_event(bufferevent* bev, short events, void*) {
  if (events & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) bufferevent_free(bev);
}

void on_accept(evconnlistener*, evutil_socket_t fd, sockaddr*, int, void* arg) {
  auto* server = static_cast<Server*>(arg);
  set_nodelay(fd);
  bufferevent* bev = bufferevent_socket_new(server->base, fd, BEV_OPT_CLOSE_ON_FREE);
  if (bev == nullptr) {
    evutil_closesocket(fd);
    return;
  }
  bufferevent_set_max_single_read(bev, kReadSize);
  bufferevent_set_max_single_write(bev, kReadSize);
  bufferevent_setcb(bev, on_read, on_drained, on_event, nullptr);
  bufferevent_enable(bev, EV_READ);
}

void on_accept_error(evconnlistener* listener, void* arg) {
  if (after_accept_error(EVUTIL_SOCKET_ERROR()) != AcceptNext::kBackOff) return;
  auto* server = static_cast<Server*>(arg);
  evconnlistener_disable(listener);
  const timeval delay{0,
                      static_cast<suseconds_t>(std::chrono::microseconds(kAcceptBackoff).count())};
  evtimer_add(server->backoff, &delay);
}

void on_backoff_over(evutil_socket_t, short, void* arg) {
  evconnlistener_enable(static_cast<Server*>(arg)->listener);
}

}  // namespace

int main(int argc, char** argv) {
  const sockaddr_in addr = start(argc, argv);
  Server server;
  server.base = event_base_new();
  if (server.base == nullptr) die("event_base_new", ENOMEM);
  server.listener = evconnlistener_new_bind(server.base, on_accept, &server,
                                            LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE, kBacklog,
                                            reinterpret_cast<const sockaddr*>(&addr), sizeof addr);
  if (server.listener == nullptr) die("evconnlistener_new_bind", errno);
  evconnlistener_set_error_cb(server.listener, on_accept_error);
  server.backoff = evtimer_new(server.base, on_backoff_over, &server);

  announce(evconnlistener_get_fd(server.listener));
  return event_base_dispatch(server.base) < 0 ? 1 : 0;
}
