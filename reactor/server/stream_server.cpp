// SPDX-License-Identifier: MIT
#include "reactor/server/stream_server.hpp"

#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <optional>
#include <stdexcept>
#include <string>

#include "reactor/net/listener.hpp"
#include "reactor/server/detail/server_base.hpp"

namespace reactor {
namespace detail {

namespace {

struct Client {
  Socket socket;
  Address peer;
};

}  // namespace

class StreamServerImpl : public ServerBase<StreamServerImpl, Client, Listener> {
 public:
  StreamServerImpl(const Address& address, StreamService service, ServerOptions options)
      : ServerBase(std::move(options)), service_(std::move(service)) {
    for (std::size_t w = 0; w < loops_.size(); ++w) sessions_.push_back(Sessions{this, w, {}});
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
    listen_on(0, address);
    set_address(loops_[0]->source->address());
    if (!is_blocking(model)) {
      drains_.resize(loops_.size());
      core_.set_drain([this](std::size_t w) { begin_drain(w); });
    }
  }

  ~StreamServerImpl() {
    close();
    // Their handlers, kept alive by close_loop(), end with the server.
    for (auto& s : closed_sessions_) s->handler.reset();
  }

  void serve_forever() {
    if (reuse_port_ && !core_.closed()) {
      for (std::size_t w = 1; w < loops_.size(); ++w) {
        if (!loops_[w]->source) listen_on(w, address());
      }
    }
    core_.serve();
  }

 private:
  friend class ServerBase<StreamServerImpl, Client, Listener>;

  // ServerBase's hooks (and start() below).
  static void switch_source(Listener& l, bool on) { on ? l.resume() : l.pause(); }
  // handle_request(): reactor models serve the connection to its end.
  bool request_finished() const noexcept { return last_session_.expired(); }
  void request_ended() noexcept { last_session_.reset(); }

  // Event handlers still open get their on_close here, before server_close returns.
  void close_loop(std::size_t w) noexcept {
    std::vector<Session*> sessions = std::move(sessions_[w].open);
    sessions_[w].open.clear();
    for (Session* s : sessions) {
      // Kept until the server is destroyed: server_close() may run inside one of these
      // handlers, whose caller still holds the session.
      closed_sessions_.push_back(s->self());
      s->detached = true;  // its close_event, if the loop runs it, does nothing
      s->abort();
      if (!s->failed) {
        try {
          s->handler->on_close(*s, CloseReason::local, {});
          core_.count(Outcome::cut);
        } catch (...) {
          core_.count(core_.fail(s->peer_address(), std::current_exception()));
        }
      }
      core_.budget().release();
    }
  }

  struct Sessions;

  // One connection of the reactor and pool models, its event handler and the server's state
  // for it, in one allocation: the hooks call the handler.
  class Session final : public Connection {
   public:
    Session(Reactor& loop, Socket socket, const Connection::Options& options, Sessions& home)
        : Connection(loop, std::move(socket), options), home(&home) {}

    std::shared_ptr<Session> self() {
      return std::static_pointer_cast<Session>(shared_from_this());
    }

    Sessions* home;
    std::unique_ptr<EventHandler> handler;
    std::uint32_t index = 0;  // in home->open
    bool failed = false;      // the peer's address is peer_address(): not kept twice
    bool cut = false;         // aborted at the drain deadline
    bool closing = false;     // closed gracefully by the drain
    bool detached = false;    // server_close() has given the handler its on_close

   protected:
    void data_event(Buffer& input) override {
      home->server->guard(*this, [&] { handler->on_data(*this, input); });
    }
    bool eof_event() override {
      home->server->guard(*this, [&] { handler->on_eof(*this, input()); });
      return true;
    }
    void high_watermark_event() override {
      home->server->guard(*this, [&] { handler->on_high_watermark(*this); });
    }
    void low_watermark_event() override {
      home->server->guard(*this, [&] { handler->on_low_watermark(*this); });
    }
    void close_event(CloseReason reason, std::error_code ec) override {
      if (detached) return;
      home->server->session_closed(*this, reason, ec);
    }
  };

  // The sessions of one loop, unordered; a session knows its index.
  struct Sessions {
    StreamServerImpl* server;
    std::size_t w;
    std::vector<Session*> open;

    void make_room() {
      if (open.size() == open.capacity()) open.reserve(std::max<std::size_t>(16, 2 * open.size()));
    }
    void add(Session& s) noexcept {
      s.index = static_cast<std::uint32_t>(open.size());
      open.push_back(&s);
    }
    void remove(Session& s) noexcept {
      if (s.index >= open.size() || open[s.index] != &s) return;  // close_loop took it
      open[s.index] = open.back();
      open[s.index]->index = s.index;
      open.pop_back();
    }
    std::vector<std::shared_ptr<Session>> copy() const {
      std::vector<std::shared_ptr<Session>> all;
      all.reserve(open.size());
      for (Session* s : open) all.push_back(s->self());
      return all;
    }
  };

  void session_closed(Session& s, CloseReason reason, std::error_code ec) {
    if (!s.failed) {
      guard(s, [&] { s.handler->on_close(s, reason, ec); });
      core_.count(reason == CloseReason::timeout ? Outcome::timeout
                  : s.failed                     ? Outcome::error
                  : s.cut                        ? Outcome::cut
                                                 : Outcome::handled);
    }
    const std::size_t w = s.home->w;
    sessions_[w].remove(s);
    if (!s.detached) s.handler.reset();  // as its end: nothing calls it any more
    release_slot();
    if (!drains_.empty() && drains_[w].on && sessions_[w].open.empty()) end_drain(w);
  }

  // Per loop, while shutdown() drains it.
  struct Drain {
    bool on = false;
    Timer sweep;     // closes connections that became idle
    Timer deadline;  // cuts what is left
  };

  // Loop w's thread. Stops accepting, closes the idle connections gracefully and gives the
  // others until the drain deadline.
  void begin_drain(std::size_t w) {
    Drain& d = drains_[w];
    if (d.on) return;
    d.on = true;
    if (loops_[w]->source) switch_source(*loops_[w]->source, false);
    loops_[w]->admission.clear();
    sweep(w);
    if (sessions_[w].open.empty()) {
      end_drain(w);
      return;
    }
    using namespace std::chrono_literals;
    d.sweep = core_.loop(w).every(10ms, [this, w] { sweep(w); });
    d.deadline = core_.loop(w).after(core_.options().shutdown_drain, [this, w] { cut(w); });
  }

  // A connection with no request in progress (nothing unread, the handler not busy) closes
  // gracefully: Connection::close() flushes what is queued and then sends FIN.
  void sweep(std::size_t w) {
    for (auto& s : sessions_[w].copy()) {
      if (s->closing || s->failed) continue;
      Connection& c = *s;
      bool busy = !c.input().empty();
      if (!busy) guard(*s, [&] { busy = s->handler->busy(c); });
      if (busy || s->failed) continue;
      s->closing = true;
      c.close();
    }
  }

  void cut(std::size_t w) {
    for (auto& s : sessions_[w].copy()) {
      s->cut = true;
      s->abort();
    }
  }

  void end_drain(std::size_t w) {
    Drain& d = drains_[w];
    d.sweep.cancel();
    d.deadline.cancel();
    core_.loop_drained();
  }

  void listen_on(std::size_t w, const Address& address) {
    Listener::Options o;
    o.backlog = core_.options().request_queue_size;
    o.reuse_address = core_.options().allow_reuse_address;
    o.reuse_port = reuse_port_;
    // One at a time for sync, so that a shutdown between requests stops at once.
    o.accepts_per_event = core_.options().model == Model::sync ? 1 : 64;
    loops_[w]->source = std::make_unique<Listener>(
        core_.loop(w), address,
        [this, w](Socket s, const Address& peer) { on_accept(w, std::move(s), peer); }, o);
  }

  void on_accept(std::size_t w, Socket socket, const Address& peer) {
    if (!core_.admit(peer)) return;  // the socket closes here
    loops_[w]->admission.admit(Client{std::move(socket), peer});
  }

  // A slot is held; serves the connection with the model. False: no thread or process
  // could be made, try again later.
  bool start(std::size_t w, Client& client) {
    if (!loops_[w]->source) return true;  // closed by a handler: the socket closes here
    Socket& socket = client.socket;
    const Address& peer = client.peer;
    switch (core_.options().model) {
      case Model::sync: {
        started(w);
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
        started(w);
        return true;
      }
      case Model::forking: {
        bool ok = core_.workers().spawn_child(
            [this] {
              // The child holds only its own client.
              for (auto& loop : loops_) {
                if (loop->source) ::close(loop->source->fd());
                loop->admission.clear();
              }
              // A Ctrl-C at a terminal reaches the whole process group: the parent alone
              // acts on it, and drives the child's end through the cancel fd.
              for (int signo : core_.options().shutdown_signals) ::signal(signo, SIG_IGN);
            },
            [&] { return static_cast<int>(run_blocking(std::move(socket), peer)); },
            [this](int status) {
              core_.count(outcome_of_exit(status));
              release_slot();
            });
        if (!ok) return false;
        started(w);
        socket.close();  // the parent's copy
        return true;
      }
      case Model::reactor:
        started(w);
        start_session(w, std::move(socket), peer);
        return true;
      case Model::pool: {
        started(w);
        if (reuse_port_ || one_shot_) {
          start_session(w, std::move(socket), peer);
          return true;
        }
        const std::size_t k = next_loop_++ % loops_.size();
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

  // Unread input would turn the close into a reset that can destroy the answer.
  static void linger(Socket& socket) noexcept {
    linger_close(socket, Connection::Options{}.linger_bytes, Connection::Options{}.linger_timeout);
  }

  Outcome run_blocking(Socket socket, const Address& peer) noexcept {
    const ServerOptions& o = core_.options();
    std::optional<BlockingStream> stream;
    try {
      stream.emplace(std::move(socket), core_.cancel_fd());
      stream->set_timeout(o.idle_timeout);
      stream->set_max_line(o.max_line);
      stream->set_drain(o.shutdown_drain);
      if (o.connection.deadline.count() > 0) {
        stream->set_deadline(
            std::chrono::steady_clock::now() +
            std::chrono::duration_cast<std::chrono::steady_clock::duration>(o.connection.deadline));
      }
      auto handler = service_.blocking();
      StreamRequest::run(*handler, *stream, peer);
      stream->flush();  // Python's StreamRequestHandler.finish flushes wfile
      linger(stream->socket());
      return Outcome::handled;
    } catch (...) {
      const Outcome outcome = core_.fail(peer, std::current_exception());
      if (outcome != Outcome::canceled || !stream) return outcome;
    }
    // shutdown() cancelled a wait. A handler cancelled waiting for a request has given its
    // client every answer: that client was served and gets a graceful close. One cut while
    // writing (the drain time passed) or with a request half read was cut.
    std::error_code ec;
    stream->flush(ec);
    if (ec || stream->output_lost() || stream->buffered_input() != 0) return Outcome::cut;
    // Shutting down: discard what has arrived (so no reset), but do not wait for more.
    linger_close(stream->socket(), Connection::Options{}.linger_bytes, std::chrono::nanoseconds{0});
    return Outcome::handled;
  }

  void start_session(std::size_t w, Socket socket, const Address& peer) {
    if (core_.stopping()) {
      release_slot();
      return;
    }
    std::shared_ptr<Session> session;
    try {
      const ServerOptions& o = core_.options();
      session =
          std::make_shared<Session>(core_.loop(w), std::move(socket),
                                    o.connection.with_idle_timeout(o.idle_timeout), sessions_[w]);
      session->handler = service_.events();
      sessions_[w].make_room();  // add() below cannot throw
    } catch (...) {
      core_.count(core_.fail(peer, std::current_exception()));
      release_slot();
      return;
    }
    Session& s = *session;
    sessions_[w].add(s);
    if (one_shot_) last_session_ = session;
    s.start();
    if (s.open()) guard(s, [&] { s.handler->on_connect(s); });
  }

  // A throwing event handler: reported once, its connection closed, serving goes on.
  template <typename Fn>
  void guard(Session& s, Fn&& fn) noexcept {
    if (s.failed) return;
    try {
      fn();
    } catch (...) {
      s.failed = true;
      core_.count(core_.fail(s.peer_address(), std::current_exception()));
      s.close();
    }
  }

  StreamService service_;
  std::vector<Sessions> sessions_;  // per loop; never resized (sessions point to theirs)
  std::vector<Drain> drains_;       // per loop; reactor and pool models only
  bool reuse_port_ = false;
  std::size_t next_loop_ = 0;
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
