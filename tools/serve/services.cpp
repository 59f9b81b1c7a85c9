// SPDX-License-Identifier: MIT
#include "services.hpp"

#include <unistd.h>

#include <cerrno>
#include <ctime>
#include <limits>
#include <memory>
#include <mutex>
#include <system_error>

namespace reactor::serve {
namespace {

// ---- The transforms, one per service -------------------------------------------------------

// Straight back: the input's own bytes, no copy here (the connection's send writes from them).
void echo(std::string_view bytes, const Address&, Reply& out) { out.send(bytes); }

void upper(std::string_view bytes, const Address&, Reply& out) {
  std::string& text = out.scratch();
  text.assign(bytes);
  for (char& c : text) {
    if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');  // not toupper: no locale
  }
  out.send(text);
}

void stamp(std::string_view line, const Address&, Reply& out) {
  const std::time_t now = std::time(nullptr);
  char when_text[64];  // ctime_r needs 26; the reentrant form is safe on any thread
  std::string_view when = ::ctime_r(&now, when_text);
  if (when.ends_with('\n')) when.remove_suffix(1);
  std::string& text = out.scratch();
  text.assign("[").append(when).append("] ").append(line);
  out.send(text);
}

void greet(std::string_view, const Address&, Reply& out) { out.send("Thank you for connecting\n"); }

// One write(2) per line under a lock: lines from many threads never mix, and a pipe keeps a
// write of up to PIPE_BUF bytes whole against the lines of forked children too.
void write_stdout(std::string_view text) {
  static std::mutex mutex;
  std::lock_guard lock(mutex);
  while (!text.empty()) {
    const ssize_t n = ::write(STDOUT_FILENO, text.data(), text.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw std::system_error(errno, std::generic_category(), "print: stdout");
    text.remove_prefix(static_cast<std::size_t>(n));
  }
}

void print(std::string_view line, const Address& client, Reply& out) {
  if (line.ends_with('\n')) line.remove_suffix(1);
  std::string& text = out.scratch();
  text.assign(client.to_string()).append(" wrote: ").append(line).append("\n");
  write_stdout(text);
}

constexpr Service kServices[] = {
    {"echo", Unit::bytes, echo},        {"upper", Unit::bytes, upper}, {"time", Unit::line, stamp},
    {"greet", Unit::connection, greet}, {"print", Unit::line, print},
};

// ---- The adapters ----------------------------------------------------------------------------

// sync, threading, forking: the handler owns the connection until it returns; the server
// then flushes and closes it. Every wait ends at shutdown() or the idle timeout.
class ToStream final : public Reply {
 public:
  explicit ToStream(BlockingStream& stream) : stream_(stream) {}
  void send(std::string_view bytes) override { stream_.write(bytes); }

 private:
  BlockingStream& stream_;
};

void serve_blocking(const Service& service, BlockingStream& stream, const Address& client) {
  ToStream out(stream);
  auto answer = [&](std::string_view unit) {
    service.reply(unit, client, out);
    stream.flush();
  };
  switch (service.unit) {
    case Unit::connection:
      answer({});
      return;
    case Unit::line:
      while (std::optional<std::string> line = stream.read_line()) answer(*line);  // to EOF
      return;
    case Unit::bytes:
      // read_some(), not read_line(): binary data and data without a newline pass at once.
      for (std::string data = stream.read_some(); !data.empty(); data = stream.read_some()) {
        answer(data);
      }
      return;
  }
}

// reactor, pool: callbacks on one of the server's loops, where nothing may block. Flow
// control is EventHandler's default: a client that sends without reading our replies is not
// read until it catches up. A handler is made per connection and most connections sit idle,
// so it keeps only what a unit needs between calls: the service, and a line reader for the
// line services (EventLines).
class EventSession : public EventHandler {
 public:
  explicit EventSession(const Service& service) : service_(service) {}

  void on_connect(Connection& c) override {
    if (service_.unit == Unit::connection) {
      answer(c, {});
      c.close();  // graceful: the greeting goes out first
    }
  }

  void on_data(Connection& c, Buffer& in) override {
    if (service_.unit == Unit::bytes) answer(c, in.view());  // sent from the input itself
    in.consume(in.size());
  }

  void on_eof(Connection& c, Buffer& in) override {
    in.consume(in.size());
    EventHandler::on_eof(c, in);  // flush, then close
  }

 protected:
  void answer(Connection& c, std::string_view unit) {
    ToConnection out(c);
    service_.reply(unit, c.peer_address(), out);
  }

 private:
  class ToConnection final : public Reply {
   public:
    explicit ToConnection(Connection& c) : connection_(c) {}
    void send(std::string_view bytes) override { connection_.send(bytes); }

   private:
    Connection& connection_;
  };

  const Service& service_;
};

class EventLines final : public EventSession {
 public:
  using EventSession::EventSession;

  // A partial line waits for its end, up to the limit a blocking handler has too.
  void on_data(Connection& c, Buffer& in) override { answer_lines(c, in, false); }

  void on_eof(Connection& c, Buffer& in) override {
    answer_lines(c, in, true);  // as with read_line(), a last line without '\n' still counts
    in.consume(in.size());
    EventHandler::on_eof(c, in);  // flush, then close
  }

 private:
  void answer_lines(Connection& c, Buffer& in, bool at_eof) {
    std::error_code ec;
    for (std::string_view line;
         !(line = at_eof ? lines_.peek_at_eof(in, ec) : lines_.peek(in, ec)).empty();) {
      answer(c, line);
      in.consume(line.size());
    }
    if (ec) throw std::system_error(ec, "line");
  }

  LineReader lines_{BlockingStream::kDefaultMaxLine};
};

}  // namespace

const Service* find_service(std::string_view name) noexcept {
  for (const Service& s : kServices) {
    if (s.name == name) return &s;
  }
  return nullptr;
}

std::vector<std::string> service_names() {
  std::vector<std::string> names;
  for (const Service& s : kServices) names.emplace_back(s.name);
  return names;
}

StreamService stream_service(const Service& service) {
  return {stream_handler([&service](BlockingStream& stream, const Address& client) {
            serve_blocking(service, stream, client);
          }),
          EventHandlerFactory([&service]() -> std::unique_ptr<EventHandler> {
            if (service.unit == Unit::line) return std::make_unique<EventLines>(service);
            return std::make_unique<EventSession>(service);
          })};
}

DatagramHandler datagram_service(const Service& service) {
  return [&service](DatagramRequest& request) {
    class ToDatagram final : public Reply {
     public:
      explicit ToDatagram(DatagramRequest& request) : request_(request) {}
      void send(std::string_view bytes) override { request_.reply(bytes); }

     private:
      DatagramRequest& request_;
    } out(request);
    std::string_view data = request.data();
    switch (service.unit) {
      case Unit::connection:
        service.reply({}, request.client_address(), out);
        return;
      case Unit::bytes:
        service.reply(data, request.client_address(), out);
        return;
      case Unit::line: {
        // Each line of the datagram, in one reply; an empty datagram is one empty line. A
        // datagram is bounded already: no line cap.
        LineReader lines(std::numeric_limits<std::size_t>::max());
        std::error_code ec;
        do {
          const std::string_view line = lines.peek_at_eof(data, ec);
          service.reply(line, request.client_address(), out);
          data.remove_prefix(line.size());
        } while (!data.empty());
        return;
      }
    }
  };
}

}  // namespace reactor::serve
