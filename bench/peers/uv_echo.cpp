// SPDX-License-Identifier: MIT
// peer-uv: the echo on libuv, as a careful libuv user writes it. Every read lands in one
// loop-wide 64 KiB buffer (alloc_cb hands out the same block: the data is consumed before
// the callback returns), and goes straight back with uv_try_write; only what the kernel
// does not take is copied into a uv_write request. libuv itself keeps the order: while any
// request is queued, uv_try_write returns UV_EAGAIN. Reading stops while the write queue is
// over kHighWater and resumes when a write callback finds it empty.
//
// Accept failures for want of fds are libuv's own business: on EMFILE it closes a reserved
// fd, accepts and closes whatever is pending, and reopens the reserve (the "EMFILE trick"),
// so the listener neither spins nor needs a back-off timer here; the callback only sees the
// error.
#include <uv.h>

#include <vector>

#include "bench/peers/common.hpp"

namespace {

using namespace reactor::bench::peers;

struct Conn {
  uv_tcp_t tcp;  // tcp.data points back here
  bool paused = false;
};

struct WriteReq {
  uv_write_t req;
  std::vector<char> bytes;  // what uv_try_write left, alive until the callback
};

char read_buf[kReadSize];  // one loop, one thread: every connection reads into it

void on_alloc(uv_handle_t*, std::size_t, uv_buf_t* buf) {
  *buf = uv_buf_init(read_buf, sizeof read_buf);
}

// Memory is released only here, after every pending write has called back (cancelled).
void on_closed(uv_handle_t* handle) { delete static_cast<Conn*>(handle->data); }

void close_conn(uv_stream_t* stream) {
  if (!uv_is_closing(reinterpret_cast<uv_handle_t*>(stream))) {
    uv_close(reinterpret_cast<uv_handle_t*>(stream), on_closed);
  }
}

void on_read(uv_stream_t* stream, ssize_t nread, const uv_buf_t* buf);

void on_written(uv_write_t* req, int status) {
  uv_stream_t* stream = req->handle;
  delete static_cast<WriteReq*>(req->data);
  if (status < 0) {
    close_conn(stream);
    return;
  }
  auto* c = static_cast<Conn*>(stream->data);
  if (c->paused && uv_stream_get_write_queue_size(stream) == 0) {
    c->paused = false;
    uv_read_start(stream, on_alloc, on_read);
  }
}

void on_read(uv_stream_t* stream, ssize_t nread, const uv_buf_t* buf) {
  if (nread < 0) {  // UV_EOF or an error
    close_conn(stream);
    return;
  }
  if (nread == 0) return;  // EAGAIN
  uv_buf_t data = uv_buf_init(buf->base, static_cast<unsigned>(nread));
  int written = uv_try_write(stream, &data, 1);
  if (written == UV_EAGAIN) written = 0;
  if (written < 0) {
    close_conn(stream);
    return;
  }
  if (written == nread) return;

  auto* w = new WriteReq;
  w->req.data = w;
  w->bytes.assign(buf->base + written, buf->base + nread);
  uv_buf_t rest = uv_buf_init(w->bytes.data(), static_cast<unsigned>(w->bytes.size()));
  if (uv_write(&w->req, stream, &rest, 1, on_written) != 0) {
    delete w;
    close_conn(stream);
    return;
  }
  if (uv_stream_get_write_queue_size(stream) > kHighWater) {
    static_cast<Conn*>(stream->data)->paused = true;
    uv_read_stop(stream);
  }
}

void on_connection(uv_stream_t* server, int status) {
  if (status < 0) return;  // see the top of the file
  auto* c = new Conn;
  uv_tcp_init(server->loop, &c->tcp);
  c->tcp.data = c;
  auto* stream = reinterpret_cast<uv_stream_t*>(&c->tcp);
  if (uv_accept(server, stream) != 0) {
    close_conn(stream);
    return;
  }
  uv_tcp_nodelay(&c->tcp, 1);
  uv_read_start(stream, on_alloc, on_read);
}

}  // namespace

int main(int argc, char** argv) {
  const sockaddr_in addr = start(argc, argv);
  uv_loop_t* loop = uv_default_loop();

  uv_tcp_t server;
  uv_tcp_init(loop, &server);
  if (const int err = uv_tcp_bind(&server, reinterpret_cast<const sockaddr*>(&addr), 0)) {
    die("uv_tcp_bind", -err);
  }
  if (const int err = uv_listen(reinterpret_cast<uv_stream_t*>(&server), kBacklog, on_connection)) {
    die("uv_listen", -err);
  }
  uv_os_fd_t fd = -1;
  uv_fileno(reinterpret_cast<uv_handle_t*>(&server), &fd);
  announce(fd);
  return uv_run(loop, UV_RUN_DEFAULT);
}
