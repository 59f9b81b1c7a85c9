#include "reactor/server/datagram_server.hpp"

#include <sys/socket.h>
#include <unistd.h>

#include <fcntl.h>

#include <atomic>
#include <cerrno>
#include <deque>
#include <optional>
#include <stdexcept>
#include <string>

#include "reactor/net/datagram.hpp"
#include "reactor/server/detail/admission.hpp"
#include "reactor/server/detail/server_core.hpp"

namespace reactor {
namespace detail {

namespace {

using Outcome = ServerCore::Outcome;

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

struct Packet {
  std::string data;
  Address from;
  bool truncated = false;
};

}  // namespace

class DatagramServerImpl {
 public:
  DatagramServerImpl(const Address& address, DatagramHandler handler, ServerOptions options)
      : core_(std::move(options)), handler_(std::move(handler)) {
    if (!handler_) throw std::invalid_argument("DatagramServer: empty handler");
    for (std::size_t w = 0; w < core_.loop_count(); ++w) {
      workers_.push_back(std::make_unique<Worker>(core_, w, admission_hooks(w)));
    }
    // Never SO_REUSEADDR: on UDP it lets a second server share the port silently (Python's
    // UDPServer keeps it off too).
    options_.max_datagram = core_.options().max_datagram;
    options_.reuse_port = address.is_ip() && workers_.size() > 1;
    workers_[0]->socket = std::make_unique<DatagramSocket>(core_.loop(0), address, options_);
    address_ = workers_[0]->socket->local_address();
    unix_path_ = address_.family() == Address::Family::unix_path;
    start_receiving(0);
  }

  // The pool's other loops get their sockets when serving starts, so that handle_request(),
  // which runs loop 0 alone, sees every datagram.
  void serve_forever() {
    if (!core_.closed()) {
      for (std::size_t w = 1; w < workers_.size(); ++w) {
        if (workers_[w]->socket) continue;
        if (options_.reuse_port) {
          // UDP: one socket per loop on the same port; the kernel spreads clients over them.
          workers_[w]->socket = std::make_unique<DatagramSocket>(core_.loop(w), address_, options_);
        } else {
          // Unix: every loop reads the one socket through a dup of its own.
          int fd = ::fcntl(workers_[0]->socket->fd(), F_DUPFD_CLOEXEC, 0);
          if (fd < 0) throw std::system_error(errno, std::generic_category(), "DatagramServer");
          workers_[w]->socket =
              std::make_unique<DatagramSocket>(core_.loop(w), Socket(fd), options_);
        }
        start_receiving(w);
      }
    }
    core_.serve();
  }

  ~DatagramServerImpl() { close(); }

  const Address& address() const noexcept { return address_; }
  int fileno() const noexcept { return workers_[0]->socket ? workers_[0]->socket->fd() : -1; }

  bool handle_request() {
    one_shot_ = true;
    one_shot_target_ = started_ + 1;
    return core_.handle_request([this] { return started_ >= one_shot_target_; },
                                [] { return true; },
                                [this] {
                                  one_shot_ = false;
                                  workers_[0]->admission.rebalance();
                                });
  }

  void close() noexcept {
    if (core_.closed()) return;
    core_.join_all();
    for (auto& worker : workers_) {
      worker->admission.clear();
      worker->socket.reset();
    }
    if (unix_path_) ::unlink(address_.to_string().substr(5).c_str());  // after "unix:"
    core_.mark_closed();
  }

  ServerCore core_;

 private:
  void start_receiving(std::size_t w) {
    DatagramSocket& s = *workers_[w]->socket;
    s.on_datagram([this, w](std::string_view data, const Address& from, bool truncated) {
      on_datagram(w, data, from, truncated);
    });
    if (auto ec = s.start()) throw std::system_error(ec, "DatagramServer");
  }

  // One per loop.
  struct Worker {
    Worker(ServerCore& core, std::size_t loop, Admission<Packet>::Hooks hooks)
        : admission(core, loop, std::move(hooks)) {}
    std::unique_ptr<DatagramSocket> socket;
    Admission<Packet> admission;  // threading and forking: packets waiting for a slot
  };

  Admission<Packet>::Hooks admission_hooks(std::size_t w) {
    return {[this, w](bool on) {
              if (DatagramSocket* s = workers_[w]->socket.get()) on ? (void)s->start() : s->stop();
            },
            [this, w](Packet& p) { return start(w, p); },
            [this] { return !(one_shot_ && started_ >= one_shot_target_); }};
  }

  void on_datagram(std::size_t w, std::string_view data, const Address& from, bool truncated) {
    if (!core_.admit(from)) return;
    const Model model = core_.options().model;
    if (model != Model::threading && model != Model::forking) {
      ++started_;
      if (one_shot_) workers_[w]->socket->stop();
      core_.count(handle(workers_[w]->socket->fd(), data, from, truncated));
      return;
    }
    workers_[w]->admission.admit(Packet{std::string(data), from, truncated});
  }

  // threading, forking: a slot is held. False: no thread or process could be made.
  bool start(std::size_t w, Packet& packet) {
    DatagramSocket* socket = workers_[w]->socket.get();
    if (!socket) return true;  // closed by a handler
    if (one_shot_) socket->stop();
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
    if (ok) ++started_;
    return ok;
  }

  Outcome handle(int fd, std::string_view data, const Address& from, bool truncated) noexcept {
    try {
      DatagramRequest request(data, from, truncated);
      handler_(request);
      if (request.replied()) {
        if (auto ec = send_datagram(fd, from, request.reply_bytes())) {
          throw std::system_error(ec, "reply to " + from.to_string());
        }
      }
      return Outcome::handled;
    } catch (...) {
      return core_.fail(from, std::current_exception());
    }
  }

  // Any thread.
  void release_slot() {
    core_.release_slot([this](std::size_t w) { workers_[w]->admission.rebalance(); });
  }

  DatagramHandler handler_;
  DatagramSocket::Options options_;
  std::vector<std::unique_ptr<Worker>> workers_;
  Address address_;
  bool unix_path_ = false;
  std::atomic<std::uint64_t> started_{0};  // pool loops receive concurrently
  bool one_shot_ = false;
  std::uint64_t one_shot_target_ = 0;
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
