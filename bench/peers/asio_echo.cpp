// SPDX-License-Identifier: MIT
// peer-asio: the echo on standalone asio, in the shape of asio's own async_tcp_echo_server
// example: a session shared_ptr kept alive by its pending handler, async_read_some of up to
// 64 KiB into the session's buffer, then async_write of exactly those bytes (which loops
// over partial writes), then the next read. So each connection has at most one buffer of
// output in flight and needs no queue or high-water mark: it reads nothing more until its
// last read is written. asio tries a write as soon as it is started (speculatively), so
// the echo goes out without waiting for another epoll_wait.
//
// One thread runs the io_context, created with concurrency hint 1 to say so. On EMFILE
// (asio::error::no_descriptors) or similar, the acceptor waits kAcceptBackoff on a
// steady_timer before accepting again.
#include <asio.hpp>

#include <memory>

#include "bench/peers/common.hpp"

namespace {

using namespace reactor::bench::peers;
using asio::ip::tcp;

class Session : public std::enable_shared_from_this<Session> {
 public:
  explicit Session(tcp::socket socket) : socket_(std::move(socket)) {}

  void read() {
    socket_.async_read_some(asio::buffer(buf_),
                            [self = shared_from_this()](std::error_code ec, std::size_t n) {
                              if (!ec) self->write(n);
                            });
  }

 private:
  void write(std::size_t n) {
    asio::async_write(socket_, asio::buffer(buf_, n),
                      [self = shared_from_this()](std::error_code ec, std::size_t) {
                        if (!ec) self->read();
                      });
  }

  tcp::socket socket_;
  char buf_[kReadSize];  // not value-initialised: pages are touched only as reads fill them
};

class Server {
 public:
  // Throws asio::system_error if the address cannot be bound.
  Server(asio::io_context& io, const tcp::endpoint& at) : acceptor_(io), backoff_(io) {
    acceptor_.open(at.protocol());
    acceptor_.set_option(tcp::acceptor::reuse_address(true));
    acceptor_.bind(at);
    acceptor_.listen(kBacklog);
  }

  int native_handle() { return acceptor_.native_handle(); }

  void accept() {
    acceptor_.async_accept([this](std::error_code ec, tcp::socket socket) {
      if (!ec) {
        socket.set_option(tcp::no_delay(true), ec);
        std::make_shared<Session>(std::move(socket))->read();
      } else if (ec.category() != asio::system_category() ||
                 after_accept_error(ec.value()) == AcceptNext::kBackOff) {
        backoff_.expires_after(kAcceptBackoff);
        backoff_.async_wait([this](std::error_code) { accept(); });
        return;
      }
      accept();
    });
  }

 private:
  tcp::acceptor acceptor_;
  asio::steady_timer backoff_;
};

}  // namespace

int main(int argc, char** argv) {
  const sockaddr_in addr = start(argc, argv);
  asio::io_context io(1);
  try {
    Server server(
        io, tcp::endpoint(asio::ip::address_v4(ntohl(addr.sin_addr.s_addr)), ntohs(addr.sin_port)));
    server.accept();
    announce(server.native_handle());
    io.run();
  } catch (const asio::system_error& e) {
    die("listen", e.code().value());
  }
  return 0;
}
