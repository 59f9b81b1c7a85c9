// SPDX-License-Identifier: MIT
#include "reactor/net/datagram.hpp"

#include "reactor/core/handler_call.hpp"

#include <sys/socket.h>
#include <sys/un.h>

#include <cerrno>

namespace reactor {

namespace {
std::error_code errno_code(int e = errno) noexcept { return {e, std::generic_category()}; }

}  // namespace

DatagramSocket::DatagramSocket(Reactor& loop, const Address& address, Options options)
    : loop_(loop), options_(options) {
  if (options_.max_datagram == 0) options_.max_datagram = 1;
  if (options_.reads_per_iteration == 0) options_.reads_per_iteration = 1;
  std::error_code ec;
  socket_ = Socket::open(address, SOCK_DGRAM, ec);
  if (!ec && options_.reuse_address) ec = socket_.set_reuse_address(true);
  if (!ec && options_.reuse_port) ec = socket_.set_reuse_port(true);
  if (!ec) {
    if (address.is_unix() && address.native_size() <= sizeof(sa_family_t) + 1) {
      // An empty Unix address: autobind to an abstract name the kernel picks.
      const sa_family_t family = AF_UNIX;
      if (::bind(socket_.fd(), reinterpret_cast<const sockaddr*>(&family), sizeof family) != 0) {
        ec = errno_code();
      }
    } else {
      ec = socket_.bind(address);
    }
  }
  if (!ec) local_ = socket_.local_address(ec);
  if (ec) {
    socket_.close();
    throw std::system_error(ec, "datagram socket on " + address.to_string());
  }
  buffer_.resize(options_.max_datagram);
}

DatagramSocket::DatagramSocket(Reactor& loop, Socket socket, Options options)
    : loop_(loop), options_(options), socket_(std::move(socket)) {
  if (options_.max_datagram == 0) options_.max_datagram = 1;
  if (options_.reads_per_iteration == 0) options_.reads_per_iteration = 1;
  std::error_code ec;
  local_ = socket_.local_address(ec);
  if (ec) throw std::system_error(ec, "datagram socket");
  buffer_.resize(options_.max_datagram);
}

DatagramSocket::~DatagramSocket() {
  *alive_ = false;
  watcher_.stop();
}

std::error_code DatagramSocket::start() {
  REACTOR_CHECK_LOOP_THREAD(loop_, "DatagramSocket::start()");
  if (watcher_.active()) return {};
  std::error_code ec;
  watcher_ = loop_.watch(
      socket_.fd(), Interest::read, [this](IoEvents) { on_readable(); }, ec);
  return ec;
}

std::error_code DatagramSocket::connect(const Address& peer) noexcept {
  REACTOR_CHECK_LOOP_THREAD(loop_, "DatagramSocket::connect()");
  return socket_.connect(peer);
}

std::error_code DatagramSocket::send(std::string_view data) noexcept {
  REACTOR_CHECK_LOOP_THREAD(loop_, "DatagramSocket::send()");
  for (;;) {
    if (::send(socket_.fd(), data.data(), data.size(), MSG_NOSIGNAL) >= 0) return {};
    if (errno != EINTR) return errno_code();
  }
}

std::error_code DatagramSocket::send_to(const Address& to, std::string_view data) noexcept {
  REACTOR_CHECK_LOOP_THREAD(loop_, "DatagramSocket::send_to()");
  for (;;) {
    if (::sendto(socket_.fd(), data.data(), data.size(), MSG_NOSIGNAL, to.native(),
                 to.native_size()) >= 0) {
      return {};
    }
    if (errno != EINTR) return errno_code();
  }
}

void DatagramSocket::on_readable() {
  // A handler may destroy this socket: the destructor clears the flag this copy keeps.
  const std::shared_ptr<bool> alive = alive_;
  for (unsigned i = 0; i < options_.reads_per_iteration; ++i) {
    sockaddr_storage from{};
    iovec iov{buffer_.data(), buffer_.size()};
    msghdr msg{};
    msg.msg_name = &from;
    msg.msg_namelen = sizeof from;
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    const ssize_t n = ::recvmsg(socket_.fd(), &msg, 0);
    if (n < 0) {
      const int e = errno;
      if (e == EINTR) continue;
      if (e == EAGAIN || e == EWOULDBLOCK) return;
      // ECONNREFUSED and friends: a report about an earlier send, not a broken socket.
      detail::call_member(
          on_error_, [&alive] { return *alive; }, errno_code(e));
      if (!*alive) return;
      continue;
    }
    std::error_code ec;
    Address sender;
    if (msg.msg_namelen > 0) {
      sender = Address::from_native(reinterpret_cast<sockaddr*>(&from), msg.msg_namelen, ec);
    }
    const bool truncated = (msg.msg_flags & MSG_TRUNC) != 0;
    detail::call_member(
        on_datagram_, [&alive] { return *alive; },
        std::string_view(buffer_.data(), static_cast<std::size_t>(n)), sender, truncated);
    if (!*alive || !watcher_.active()) return;
  }
}

}  // namespace reactor
