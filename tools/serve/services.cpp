#include "services.hpp"

#include <unistd.h>

#include <cerrno>
#include <ctime>
#include <memory>
#include <mutex>
#include <system_error>

namespace reactor::serve {
namespace {

// ---- The transforms, one per service -------------------------------------------------------

std::optional<std::string> echo(std::string_view bytes, const Address&) {
  return std::string(bytes);
}

std::optional<std::string> upper(std::string_view bytes, const Address&) {
  std::string out(bytes);
  for (char& c : out) {
    if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');  // not toupper: no locale
  }
  return out;
}

std::optional<std::string> stamp(std::string_view line, const Address&) {
  const std::time_t now = std::time(nullptr);
  char text[64];  // ctime_r needs 26; the reentrant form is safe on any thread
  std::string_view when = ::ctime_r(&now, text);
  if (when.ends_with('\n')) when.remove_suffix(1);
  std::string out = "[";
  out.append(when).append("] ").append(line);
  return out;
}

std::optional<std::string> greet(std::string_view, const Address&) {
  return std::string("Thank you for connecting\n");
}

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

std::optional<std::string> print(std::string_view line, const Address& client) {
  if (line.ends_with('\n')) line.remove_suffix(1);
  std::string text = client.to_string();
  text.append(" wrote: ").append(line).append("\n");
  write_stdout(text);
  return std::nullopt;
}

constexpr Service kServices[] = {
    {"echo", Unit::bytes, echo},        {"upper", Unit::bytes, upper}, {"time", Unit::line, stamp},
    {"greet", Unit::connection, greet}, {"print", Unit::line, print},
};

// ---- The adapters ----------------------------------------------------------------------------

// sync, threading, forking: the handler owns the connection until it returns; the server
// then flushes and closes it. Every wait ends at shutdown() or the idle timeout.
void serve_blocking(const Service& service, BlockingStream& stream, const Address& client) {
  auto answer = [&](std::string_view unit) {
    if (std::optional<std::string> reply = service.reply(unit, client)) {
      stream.write(*reply);
      stream.flush();
    }
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

// reactor, pool: callbacks on one of the server's loops, where nothing may block.
class EventSession final : public EventHandler {
 public:
  explicit EventSession(const Service& service) : service_(service) {}

  void on_connect(Connection& c) override {
    if (service_.unit == Unit::connection) {
      answer(c, {});
      c.close();  // graceful: the greeting goes out first
    } else if (service_.unit == Unit::line) {
      // As with read_line(), a last line without '\n' still counts: answer it at EOF.
      c.on_eof([this](Connection& c) {
        if (!c.input().empty()) answer(c, c.input().view());
        c.input().clear();
        c.close();
      });
    }
  }

  void on_data(Connection& c, Buffer& in) override {
    switch (service_.unit) {
      case Unit::connection:
        break;
      case Unit::bytes:
        answer(c, in.view());
        break;
      case Unit::line:
        for (std::size_t end; (end = in.find("\n")) != Buffer::npos; in.consume(end + 1)) {
          answer(c, in.view().substr(0, end + 1));
        }
        // A partial line waits for its end, up to the limit a blocking handler has too.
        if (in.size() > BlockingStream::kDefaultMaxLine) {
          throw std::system_error(std::make_error_code(std::errc::message_size), "line");
        }
        return;
    }
    in.consume(in.size());
  }

  // The queue fell back to the low watermark: read again (see answer()).
  void on_low_watermark(Connection& c) override { c.resume_reading(); }

 private:
  void answer(Connection& c, std::string_view unit) {
    if (std::optional<std::string> reply = service_.reply(unit, c.peer_address())) {
      c.send(*reply);
      // Flow control: a client that sends without reading is not read until it catches up.
      if (c.queued() >= c.options().high_watermark) c.pause_reading();
    }
  }

  const Service& service_;
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
          EventHandlerFactory([&service] { return std::make_unique<EventSession>(service); })};
}

DatagramHandler datagram_service(const Service& service) {
  return [&service](DatagramRequest& request) {
    auto answer = [&](std::string_view unit) {
      if (std::optional<std::string> reply = service.reply(unit, request.client_address())) {
        request.reply(*reply);
      }
    };
    std::string_view data = request.data();
    switch (service.unit) {
      case Unit::connection:
        answer({});
        return;
      case Unit::bytes:
        answer(data);
        return;
      case Unit::line:
        // Each line of the datagram, in one reply; an empty datagram is one empty line.
        do {
          const std::size_t end = data.find('\n');
          const std::size_t n = end == std::string_view::npos ? data.size() : end + 1;
          answer(data.substr(0, n));
          data.remove_prefix(n);
        } while (!data.empty());
        return;
    }
  };
}

}  // namespace reactor::serve
