// SPDX-License-Identifier: MIT
#pragma once
/// \file
/// What a server runs for each request.
///
/// - StreamRequestHandler: blocking, setup() / handle() / finish(), for the sync, threading
///   and forking models. A new handler per connection. finish() runs even when handle()
///   throws; the server then flushes the stream and closes the connection.
/// - EventHandler: callbacks on one loop, for the reactor and pool models (connect, data,
///   high and low watermark, end of input, close). A new handler per connection, destroyed
///   after on_close.
/// - DatagramHandler: one call per datagram, the packet in, the reply out, for every model.
/// - StreamService bundles the two stream kinds, so one service (reactor-serve's) can run
///   on every model; a server needs only the kind its model uses.
///
/// A handler that throws: the server calls ServerOptions::handle_error once, closes that
/// connection and keeps serving.

#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <system_error>
#include <type_traits>

#include "reactor/export.hpp"
#include "reactor/net/address.hpp"
#include "reactor/net/buffer.hpp"
#include "reactor/net/connection.hpp"
#include "reactor/server/blocking_stream.hpp"

namespace reactor {

/// A blocking handler for one connection, Python's BaseRequestHandler: derive, override
/// handle() (and setup() or finish() if needed), and read and write through stream(). A new
/// one per connection, run on the thread (or in the child) that serves it.
class REACTOR_API StreamRequestHandler {
 public:
  virtual ~StreamRequestHandler() = default;
  /// Runs first; if it throws, neither handle() nor finish() runs. Default: nothing.
  virtual void setup() {}
  /// Serves the connection: returns when done with the client (or throws).
  virtual void handle() = 0;
  /// Runs after handle(), even when handle() threw. Default: nothing.
  virtual void finish() {}

 protected:
  /// The connection, buffered both ways (Python's rfile and wfile).
  BlockingStream& stream() noexcept { return *stream_; }
  /// The client's address (Python's client_address).
  const Address& client_address() const noexcept { return *client_; }

 private:
  friend struct StreamRequest;
  BlockingStream* stream_ = nullptr;
  const Address* client_ = nullptr;
};

/// Runs one handler over one connection: setup, handle, finish (even if handle threw).
/// Used by the servers; public so that a handler can be tested without a server.
struct REACTOR_API StreamRequest {
  /// Gives `handler` the stream and the client, then runs setup(), handle() and finish();
  /// an exception from any of them propagates, after finish() when handle() threw.
  static void run(StreamRequestHandler& handler, BlockingStream& stream, const Address& client);
};

/// Makes a new blocking handler for each connection (the sync, threading and forking
/// models); called where the connection is served: its thread, or the forked child.
using StreamHandlerFactory = std::function<std::unique_ptr<StreamRequestHandler>()>;

/// A StreamHandlerFactory from a function, for handlers that need no setup or finish:
///   stream_handler([](BlockingStream& s, const Address& client) { ... })
REACTOR_API StreamHandlerFactory
stream_handler(std::function<void(BlockingStream&, const Address&)> fn);

/// Callbacks on one loop for one connection (the reactor and pool models): the only API a
/// handler needs, so that it never sets the Connection's own callbacks (the server owns them).
/// Every call comes from the connection's loop thread, never from inside one of your calls
/// into the Connection. A throwing callback: see the file comment.
///
/// Flow control is on by default: when queued output reaches the high watermark
/// (Connection::Options::high_watermark) the default on_high_watermark stops reading from the
/// peer, and the default on_low_watermark resumes when the queue falls back to the low one.
/// A peer that sends without reading thus stops being read instead of growing our queue to
/// the output cap (which would close it with CloseReason::limit). A handler that produces on
/// its own (not in answer to input) overrides both to pause and resume itself; override both
/// or neither (or call the base class from yours).
class REACTOR_API EventHandler {
 public:
  virtual ~EventHandler() = default;
  /// The connection is open and reading; send a greeting here, or close.
  virtual void on_connect(Connection&) {}
  /// Bytes arrived in `input`; consume what you use. What you leave stays in `input` for the
  /// next call (and for on_eof).
  virtual void on_data(Connection& connection, Buffer& input) = 0;
  /// Queued output reached the high watermark: the peer reads slower than we send. Runs once
  /// per crossing, from the loop. Default: pause_reading().
  virtual void on_high_watermark(Connection& connection) { connection.pause_reading(); }
  /// Queued output fell back to the low watermark after on_high_watermark: produce again.
  /// Default: resume_reading().
  virtual void on_low_watermark(Connection& connection) { connection.resume_reading(); }
  /// The peer finished sending (it shut down its writing side); `input` holds what on_data
  /// left. The connection stays open for sending until you close() or shutdown() it.
  /// Default: shutdown(), so that queued output is flushed and then the connection closes
  /// with CloseReason::eof (as a Connection does without an on_eof callback).
  virtual void on_eof(Connection& connection, Buffer& /*input*/) { connection.shutdown(); }
  /// The server is shutting down (ServerOptions::shutdown_drain): true while this
  /// connection has a request in progress that is not visible to the server (say, an answer
  /// that a timer will send). Asked as the drain starts and then every few milliseconds; the
  /// server closes the connection gracefully (queued output flushed, then FIN) once this is
  /// false, nothing is queued and no input is left unconsumed, and aborts it at the drain
  /// deadline. Default: false.
  virtual bool busy(const Connection&) const { return false; }
  /// Last call, exactly once, whatever closed the connection (the peer, a limit, a timeout,
  /// you, or the server's close); the handler is destroyed after it.
  virtual void on_close(Connection&, CloseReason, std::error_code) {}
};

/// Makes a new EventHandler for each connection (the reactor and pool models); called on
/// the loop thread that will serve it.
using EventHandlerFactory = std::function<std::unique_ptr<EventHandler>()>;

/// Both kinds of stream handler; either may be empty. Converts from either factory, or from
/// any callable returning a unique_ptr to one kind of handler:
///   StreamServer server(address, [] { return std::make_unique<MyEventHandler>(); });
struct REACTOR_API StreamService {
  StreamService() = default;
  /// A service for the blocking models only, or for the event models only.
  ///@{
  StreamService(StreamHandlerFactory b) : blocking(std::move(b)) {}
  StreamService(EventHandlerFactory e) : events(std::move(e)) {}
  ///@}
  /// From a callable returning std::unique_ptr to a StreamRequestHandler (or a type derived
  /// from it): a blocking-only service.
  template <typename F>
  requires std::is_invocable_r_v<std::unique_ptr<StreamRequestHandler>, F&> &&
      (!std::is_invocable_r_v<std::unique_ptr<EventHandler>, F&>)StreamService(F factory)
      : blocking(std::move(factory)) {}
  /// From a callable returning std::unique_ptr to an EventHandler (or a type derived from
  /// it): an event-only service.
  template <typename F>
  requires std::is_invocable_r_v<std::unique_ptr<EventHandler>, F&> &&
      (!std::is_invocable_r_v<std::unique_ptr<StreamRequestHandler>, F&>)StreamService(F factory)
      : events(std::move(factory)) {}
  /// Both kinds: one service that runs on every model.
  StreamService(StreamHandlerFactory b, EventHandlerFactory e)
      : blocking(std::move(b)), events(std::move(e)) {}
  /// What the sync, threading and forking models run; may be empty.
  StreamHandlerFactory blocking;
  /// What the reactor and pool models run; may be empty.
  EventHandlerFactory events;
};

/// One datagram and its reply.
class REACTOR_API DatagramRequest {
 public:
  /// One received datagram; `data` and `client` must outlive the request (the servers make
  /// it on the stack around the handler call).
  DatagramRequest(std::string_view data, const Address& client, bool truncated) noexcept
      : data_(data), client_(client), truncated_(truncated) {}

  /// The datagram's bytes (cut to max_datagram when truncated()); valid during the handler
  /// call only.
  std::string_view data() const noexcept { return data_; }
  /// The sender, where the reply goes.
  const Address& client_address() const noexcept { return client_; }
  /// The datagram was longer than the server's max_datagram and was cut.
  bool truncated() const noexcept { return truncated_; }

  /// Appends to the reply, sent to the client as one datagram after the handler returns
  /// (a 0-byte datagram if reply("") was the only call). No call: no reply.
  void reply(std::string_view bytes) {
    reply_.append(bytes);
    replied_ = true;
  }
  /// True once reply() was called, even with no bytes: a reply will be sent.
  bool replied() const noexcept { return replied_; }
  /// The reply so far: everything reply() appended.
  const std::string& reply_bytes() const noexcept { return reply_; }

 private:
  std::string_view data_;
  const Address& client_;
  bool truncated_;
  bool replied_ = false;
  std::string reply_;
};

/// Serves one datagram: reads request.data(), answers with request.reply(). Runs once per
/// datagram, on the thread (or in the child) the model gives it.
using DatagramHandler = std::function<void(DatagramRequest&)>;

}  // namespace reactor
