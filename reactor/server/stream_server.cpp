#include "reactor/server/stream_server.hpp"

#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <deque>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>

#include "reactor/net/listener.hpp"
#include "reactor/server/detail/admission.hpp"
#include "reactor/server/detail/server_core.hpp"

namespace reactor {
namespace detail {

namespace {

using Outcome = ServerCore::Outcome;

// Closes politely: our FIN goes after everything sent, and what the client sent that the
// handler did not read is drained (if it is already here) so that the kernel does not answer
// the close with a reset that could destroy the reply in flight.
void close_gently(Socket& socket) noexcept {
  socket.shutdown(SHUT_WR);
  char sink[4096];
  for (int i = 0; i < 16 && ::recv(socket.fd(), sink, sizeof sink, MSG_DONTWAIT) > 0; ++i) {
  }
  socket.close();
}

}  // namespace

class StreamServerImpl {
 public:
  StreamServerImpl(const Address& address, StreamService service, ServerOptions options)
      : core_(std::move(options)), service_(std::move(service)) {
    const Model model = core_.options().model;
    if (is_blocking(model) && !service_.blocking) {
      throw std::invalid_argument(std::string("StreamServer: model ") +
                                  std::string(to_string(model)) +
                                  " needs a blocking handler (StreamService::blocking)");
    }
    if (!is_blocking(model) && !service_.events) {
      throw std::invalid_argument(std::string("StreamServer: model ") +
                                  std::string(to_string(model)) +
                                  " needs an event handler (StreamService::events)");
    }
    // With a connection limit one acceptor hands off, so that clients get the free slots
    // in the order they came (several SO_REUSEPORT loops would race for them).
    reuse_port_ = model == Model::pool && core_.options().reuse_port && address.is_ip() &&
                  core_.loop_count() > 1 && core_.options().max_connections == 0;
    for (std::size_t w = 0; w < core_.loop_count(); ++w) {
      workers_.push_back(std::make_unique<Worker>(core_, w, admission_hooks(w)));
    }
    listen_on(0, address);
    address_ = workers_[0]->listener->address();
    unix_path_ = address_.family() == Address::Family::unix_path;
  }

  ~StreamServerImpl() { close(); }

  const Address& address() const noexcept { return address_; }
  int fileno() const noexcept { return workers_[0]->listener ? workers_[0]->listener->fd() : -1; }

  void serve_forever() {
    if (reuse_port_ && !core_.closed()) {
      for (std::size_t w = 1; w < workers_.size(); ++w) {
        if (!workers_[w]->listener) listen_on(w, address_);
      }
    }
    core_.serve();
  }

  bool handle_request() {
    one_shot_ = true;
    one_shot_target_ = started_ + 1;
    // Reactor models serve the connection to its end.
    return core_.handle_request([this] { return started_ >= one_shot_target_; },
                                [this] { return last_session_.expired(); },
                                [this] {
                                  one_shot_ = false;
                                  last_session_.reset();
                                  workers_[0]->admission.rebalance();
                                });
  }

  void close() noexcept {
    if (core_.closed()) return;
    core_.join_all();
    for (std::size_t w = 0; w < workers_.size(); ++w) {
      Worker& worker = *workers_[w];
      worker.admission.clear();
      // Event handlers still open get their on_close here, before server_close returns.
      auto sessions = std::move(worker.sessions);
      worker.sessions.clear();
      for (auto& [conn, session] : sessions) {
        // Kept until the server is destroyed: server_close() may run inside one of these
        // handlers, whose caller still holds the session.
        closed_sessions_.push_back(session);
        session->connection->on_close(nullptr);
        session->connection->abort();
        if (!session->failed) {
          try {
            session->handler->on_close(*session->connection, CloseReason::local, {});
          } catch (...) {
            core_.count(core_.fail(session->connection->peer_address(), std::current_exception()));
          }
        }
        core_.budget().release();
      }
      worker.listener.reset();
    }
    if (unix_path_) ::unlink(address_.to_string().substr(5).c_str());  // after "unix:"
    core_.mark_closed();
  }

  ServerCore core_;

 private:
  struct Session {
    std::shared_ptr<Connection> connection;
    std::unique_ptr<EventHandler> handler;
    bool failed = false;  // the peer's address is connection->peer_address(): not kept twice
  };
  struct Client {
    Socket socket;
    Address peer;
  };
  // One per loop.
  struct Worker {
    Worker(ServerCore& core, std::size_t loop, Admission<Client>::Hooks hooks)
        : admission(core, loop, std::move(hooks)) {}
    std::unique_ptr<Listener> listener;
    Admission<Client> admission;
    std::map<Connection*, std::shared_ptr<Session>> sessions;
  };

  Admission<Client>::Hooks admission_hooks(std::size_t w) {
    return {[this, w](bool on) {
              if (Listener* l = workers_[w]->listener.get()) on ? l->resume() : l->pause();
            },
            [this, w](Client& c) { return start(w, c); },
            [this] { return !(one_shot_ && started_ >= one_shot_target_); }};
  }

  void listen_on(std::size_t w, const Address& address) {
    Listener::Options o;
    o.backlog = core_.options().request_queue_size;
    o.reuse_address = core_.options().allow_reuse_address;
    o.reuse_port = reuse_port_;
    // One at a time for sync, so that a shutdown between requests stops at once.
    o.accepts_per_event = core_.options().model == Model::sync ? 1 : 64;
    workers_[w]->listener = std::make_unique<Listener>(
        core_.loop(w), address,
        [this, w](Socket s, const Address& peer) { on_accept(w, std::move(s), peer); }, o);
  }

  void on_accept(std::size_t w, Socket socket, const Address& peer) {
    if (!core_.admit(peer)) return;  // the socket closes here
    workers_[w]->admission.admit(Client{std::move(socket), peer});
  }

  // A slot is held; serves the connection with the model. False: no thread or process
  // could be made, try again later.
  bool start(std::size_t w, Client& client) {
    if (!workers_[w]->listener) return true;  // closed by a handler: the socket closes here
    if (one_shot_) workers_[w]->listener->pause();
    Socket& socket = client.socket;
    const Address& peer = client.peer;
    switch (core_.options().model) {
      case Model::sync: {
        ++started_;
        core_.count(run_blocking(std::move(socket), peer));
        release_slot();
        return true;
      }
      case Model::threading: {
        auto shared = std::make_shared<Socket>(std::move(socket));
        if (!core_.workers().spawn_thread(
                [this, shared, peer] { core_.count(run_blocking(std::move(*shared), peer)); },
                [this] { release_slot(); })) {
          socket = std::move(*shared);
          return false;
        }
        ++started_;
        return true;
      }
      case Model::forking: {
        bool ok = core_.workers().spawn_child(
            [this] {
              // The child holds only its own client.
              for (auto& worker : workers_) {
                if (worker->listener) ::close(worker->listener->fd());
                worker->admission.clear();
              }
            },
            [&] { return static_cast<int>(run_blocking(std::move(socket), peer)); },
            [this](int status) {
              core_.count(outcome_of_exit(status));
              release_slot();
            });
        if (!ok) return false;
        ++started_;
        socket.close();  // the parent's copy
        return true;
      }
      case Model::reactor:
        ++started_;
        start_session(w, std::move(socket), peer);
        return true;
      case Model::pool: {
        ++started_;
        if (reuse_port_ || one_shot_) {
          start_session(w, std::move(socket), peer);
          return true;
        }
        const std::size_t k = next_loop_++ % workers_.size();
        if (k == w) {
          start_session(k, std::move(socket), peer);
        } else {
          auto shared = std::make_shared<Socket>(std::move(socket));
          core_.loop(k).post(
              [this, k, shared, peer] { start_session(k, std::move(*shared), peer); });
        }
        return true;
      }
    }
    return true;
  }

  Outcome run_blocking(Socket socket, const Address& peer) noexcept {
    try {
      BlockingStream stream(std::move(socket), core_.cancel_fd());
      stream.set_timeout(core_.options().idle_timeout);
      stream.set_max_line(core_.options().max_line);
      auto handler = service_.blocking();
      StreamRequest::run(*handler, stream, peer);
      stream.flush();  // Python's StreamRequestHandler.finish flushes wfile
      close_gently(stream.socket());
      return Outcome::handled;
    } catch (...) {
      return core_.fail(peer, std::current_exception());
    }
  }

  void start_session(std::size_t w, Socket socket, const Address& peer) {
    if (core_.stopping()) {
      release_slot();
      return;
    }
    auto session = std::make_shared<Session>();
    try {
      const ServerOptions& o = core_.options();
      session->connection = Connection::make(core_.loop(w), std::move(socket),
                                             o.connection.with_idle_timeout(o.idle_timeout));
      session->handler = service_.events();
    } catch (...) {
      core_.count(core_.fail(peer, std::current_exception()));
      release_slot();
      return;
    }
    Connection& c = *session->connection;
    Session* s = session.get();
    c.on_data(
        [this, s](Connection& c, Buffer& in) { guard(*s, [&] { s->handler->on_data(c, in); }); });
    c.on_low_watermark(
        [this, s](Connection& c) { guard(*s, [&] { s->handler->on_writable(c); }); });
    c.on_close([this, w, s](Connection& c, CloseReason reason, std::error_code ec) {
      if (!s->failed) {
        guard(*s, [&] { s->handler->on_close(c, reason, ec); });
        core_.count(reason == CloseReason::timeout ? Outcome::timeout
                    : s->failed                    ? Outcome::error
                                                   : Outcome::handled);
      }
      workers_[w]->sessions.erase(&c);  // destroys *s
      release_slot();
    });
    workers_[w]->sessions.emplace(&c, session);
    if (one_shot_) last_session_ = session->connection;
    c.start();
    if (c.open()) guard(*s, [&] { s->handler->on_connect(c); });
  }

  // A throwing event handler: reported once, its connection closed, serving goes on.
  template <typename Fn>
  void guard(Session& s, Fn&& fn) noexcept {
    if (s.failed) return;
    try {
      fn();
    } catch (...) {
      s.failed = true;
      core_.count(core_.fail(s.connection->peer_address(), std::current_exception()));
      s.connection->close();
    }
  }

  // Any thread.
  void release_slot() {
    core_.release_slot([this](std::size_t w) { workers_[w]->admission.rebalance(); });
  }

  StreamService service_;
  std::vector<std::unique_ptr<Worker>> workers_;
  Address address_;
  bool reuse_port_ = false;
  bool unix_path_ = false;
  std::size_t next_loop_ = 0;
  std::atomic<std::uint64_t> started_{0};  // pool loops start connections concurrently
  bool one_shot_ = false;                  // inside handle_request(): stop accepting after one
  std::uint64_t one_shot_target_ = 0;
  std::weak_ptr<Connection> last_session_;
  std::vector<std::shared_ptr<Session>> closed_sessions_;
};

}  // namespace detail

StreamServer::StreamServer(const Address& address, StreamService service, ServerOptions options)
    : impl_(std::make_unique<detail::StreamServerImpl>(address, std::move(service),
                                                       std::move(options))) {}
StreamServer::~StreamServer() = default;
void StreamServer::serve_forever() { impl_->serve_forever(); }
bool StreamServer::handle_request() { return impl_->handle_request(); }
void StreamServer::shutdown() noexcept { impl_->core_.shutdown(); }
void StreamServer::server_close() noexcept { impl_->close(); }
const Address& StreamServer::address() const noexcept { return impl_->address(); }
int StreamServer::fileno() const noexcept { return impl_->fileno(); }
Reactor& StreamServer::loop() noexcept { return impl_->core_.loop(0); }
const ServerOptions& StreamServer::options() const noexcept { return impl_->core_.options(); }
ServerStats StreamServer::stats() const noexcept { return impl_->core_.stats(); }

}  // namespace reactor
