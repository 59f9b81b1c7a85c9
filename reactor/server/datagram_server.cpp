// SPDX-License-Identifier: MIT
#include "reactor/server/datagram_server.hpp"

#include <sys/socket.h>
#include <unistd.h>

#include <fcntl.h>

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <stdexcept>
#include <string>

#include "reactor/core/log.hpp"
#include "reactor/net/datagram.hpp"
#include "reactor/server/detail/server_base.hpp"

namespace reactor {
namespace detail {

namespace {

// Any thread: a datagram socket's sendto is one atomic system call.
std::error_code send_datagram(int fd, const Address& to, std::string_view bytes) noexcept {
  for (;;) {
    if (::sendto(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL, to.native(), to.native_size()) >=
        0) {
      return {};
    }
    if (errno != EINTR) return {errno, std::generic_category()};
  }
}

// Reports of lost datagrams, so that a storm does not flood the log: the first, then every
// kEvery-th, each with the count so far. Any thread.
class DropReport {
 public:
  static constexpr std::uint64_t kEvery = 1000;
  explicit DropReport(const char* what) noexcept : what_(what) {}
  void add(const Address& client, const char* why) noexcept {
    const std::uint64_t n = ++count_;
    if (n != 1 && n % kEvery != 0) return;
    detail::log(LogLevel::warning, "datagram server: %s (%s, from %s; %llu so far)", what_, why,
                client.empty() ? "(unnamed)" : client.to_string().c_str(),
                static_cast<unsigned long long>(n));
  }

 private:
  const char* what_;
  std::atomic<std::uint64_t> count_{0};
};

struct Packet {
  std::string data;
  Address from;
  bool truncated = false;
};

}  // namespace

class DatagramServerImpl : public ServerBase<DatagramServerImpl, Packet, DatagramSocket> {
 public:
  DatagramServerImpl(const Address& address, DatagramHandler handler, ServerOptions options)
      : ServerBase(std::move(options)), handler_(std::move(handler)) {
    if (!handler_) throw std::invalid_argument("DatagramServer: empty handler");
    // Never SO_REUSEADDR: on UDP it lets a second server share the port silently (Python's
    // UDPServer keeps it off too).
    options_.max_datagram = core_.options().max_datagram;
    options_.reuse_port = address.is_ip() && loops_.size() > 1;
    loops_[0]->source = std::make_unique<DatagramSocket>(core_.loop(0), address, options_);
    set_address(loops_[0]->source->local_address());
    start_receiving(0);
  }

  // The pool's other loops get their sockets when serving starts, so that handle_request(),
  // which runs loop 0 alone, sees every datagram.
  void serve_forever() {
    if (!core_.closed()) {
      for (std::size_t w = 1; w < loops_.size(); ++w) {
        if (loops_[w]->source) continue;
        if (options_.reuse_port) {
          // UDP: one socket per loop on the same port; the kernel spreads clients over them.
          loops_[w]->source = std::make_unique<DatagramSocket>(core_.loop(w), address(), options_);
        } else {
          // Unix: every loop reads the one socket through a dup of its own.
          int fd = ::fcntl(loops_[0]->source->fd(), F_DUPFD_CLOEXEC, 0);
          if (fd < 0) throw std::system_error(errno, std::generic_category(), "DatagramServer");
          loops_[w]->source = std::make_unique<DatagramSocket>(core_.loop(w), Socket(fd), options_);
        }
        start_receiving(w);
      }
    }
    core_.serve();
  }

  ~DatagramServerImpl() { close(); }

 private:
  friend class ServerBase<DatagramServerImpl, Packet, DatagramSocket>;

  // ServerBase's hooks (and start() below).
  static void switch_source(DatagramSocket& s, bool on) { on ? (void)s.start() : s.stop(); }
  static bool request_finished() noexcept { return true; }  // a datagram is handled at once
  static void request_ended() noexcept {}
  void close_loop(std::size_t w) noexcept {
    if (const std::size_t n = loops_[w]->admission.waiting()) {
      detail::log(LogLevel::warning,
                  "datagram server: %zu datagrams dropped at close, still waiting for a handler",
                  n);
    }
  }

  void start_receiving(std::size_t w) {
    DatagramSocket& s = *loops_[w]->source;
    s.on_datagram([this, w](std::string_view data, const Address& from, bool truncated) {
      on_datagram(w, data, from, truncated);
    });
    if (auto ec = s.start()) throw std::system_error(ec, "DatagramServer");
  }

  void on_datagram(std::size_t w, std::string_view data, const Address& from, bool truncated) {
    if (truncated) {
      truncated_.add(from, ("longer than max_datagram, " +
                            std::to_string(core_.options().max_datagram) + " bytes kept")
                               .c_str());
    }
    if (!core_.admit(from)) {
      if (core_.stopping()) unanswered_.add(from, "the server is shutting down");
      return;
    }
    const Model model = core_.options().model;
    if (model != Model::threading && model != Model::forking) {
      started(w);
      core_.count(handle(loops_[w]->source->fd(), data, from, truncated));
      return;
    }
    loops_[w]->admission.admit(Packet{std::string(data), from, truncated});
  }

  // threading, forking: a slot is held. False: no thread or process could be made.
  bool start(std::size_t w, Packet& packet) {
    DatagramSocket* socket = loops_[w]->source.get();
    if (!socket) return true;  // closed by a handler
    const int fd = socket->fd();
    bool ok = false;
    if (core_.options().model == Model::threading) {
      auto shared = std::make_shared<Packet>(std::move(packet));
      ok = core_.workers().spawn_thread(
          [this, fd, shared] {
            core_.count(handle(fd, shared->data, shared->from, shared->truncated));
          },
          [this] { release_slot(); });
      if (!ok) packet = std::move(*shared);
    } else {
      ok = core_.workers().spawn_child(
          [] {},
          [&] { return static_cast<int>(handle(fd, packet.data, packet.from, packet.truncated)); },
          [this](int status) {
            core_.count(outcome_of_exit(status));
            release_slot();
          });
    }
    if (ok) started(w);
    return ok;
  }

  Outcome handle(int fd, std::string_view data, const Address& from, bool truncated) noexcept {
    try {
      DatagramRequest request(data, from, truncated);
      handler_(request);
      if (request.replied()) {
        // Not the handler's failure: the reply is lost like a datagram on the wire, and
        // reported.
        if (auto ec = send_datagram(fd, from, request.reply_bytes())) {
          lost_replies_.add(from, ec.message().c_str());
        }
      }
      return Outcome::handled;
    } catch (...) {
      return core_.fail(from, std::current_exception());
    }
  }

  DatagramHandler handler_;
  DatagramSocket::Options options_;
  DropReport truncated_{"a datagram arrived truncated"};
  DropReport unanswered_{"a datagram was dropped unanswered"};
  DropReport lost_replies_{"a reply could not be sent"};
};

}  // namespace detail

DatagramServer::DatagramServer(const Address& address, DatagramHandler handler,
                               ServerOptions options)
    : impl_(std::make_unique<detail::DatagramServerImpl>(address, std::move(handler),
                                                         std::move(options))) {}
DatagramServer::~DatagramServer() = default;
void DatagramServer::serve_forever() { impl_->serve_forever(); }
bool DatagramServer::handle_request() { return impl_->handle_request(); }
void DatagramServer::shutdown() noexcept { impl_->core_.shutdown(); }
void DatagramServer::server_close() noexcept { impl_->close(); }
const Address& DatagramServer::address() const noexcept { return impl_->address(); }
int DatagramServer::fileno() const noexcept { return impl_->fileno(); }
Reactor& DatagramServer::loop() noexcept { return impl_->core_.loop(0); }
const ServerOptions& DatagramServer::options() const noexcept { return impl_->core_.options(); }
ServerStats DatagramServer::stats() const noexcept { return impl_->core_.stats(); }

}  // namespace reactor
