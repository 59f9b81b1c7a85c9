// SPDX-License-Identifier: MIT
// reactor-client: sends each line of standard input to a server and prints each reply, as
// the tutorials' clients do, in a pipe or at a terminal.
//   echo hello | reactor-client 127.0.0.1:21567
//   reactor-client unix:@time --transport unix-dgram --timeout 0.5 < lines.txt
// Everything runs on one Reactor: standard input is watched like any other fd, the server
// is reached with a Connector and a Connection (streams) or a DatagramSocket (datagrams).
// Exit status: 0 when the talk ends normally (and for --help, --version), 1 when the server
// cannot be reached or the connection breaks, 2 for bad options (one line,
// "reactor-client: reason").
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <deque>
#include <functional>
#include <stdexcept>
#include <string>

#include "reactor/net/connection.hpp"
#include "reactor/net/connector.hpp"
#include "reactor/net/datagram.hpp"
#include "reactor/version.hpp"
#include "tools/cli_checks.hpp"

using namespace reactor;

namespace {

using Seconds = std::chrono::duration<double>;

// The longest --timeout: a day is more than any real wait; an infinite one is refused.
constexpr double kMaxTimeoutSeconds = 86'400;

struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

void print(std::string_view bytes) {
  std::fwrite(bytes.data(), 1, bytes.size(), stdout);
  std::fflush(stdout);
}

void complain(const std::string& what, std::error_code ec) {
  std::fprintf(stderr, "reactor-client: %s: %s\n", what.c_str(), ec.message().c_str());
}

// Standard input as lines (each with its '\n'; the last may lack it), read on the loop.
class LineInput {
 public:
  LineInput(Reactor& loop, std::function<void(std::string)> on_line, std::function<void()> on_eof)
      : loop_(loop), on_line_(std::move(on_line)), on_eof_(std::move(on_eof)) {}

  void start() {
    std::error_code ec;
    watcher_ = loop_.watch(
        STDIN_FILENO, Interest::read, [this](IoEvents) { read_once(); }, ec);
    // A regular file or /dev/null cannot be polled (EPERM) but never blocks either: read it
    // a piece per iteration instead.
    if (ec == std::errc::operation_not_permitted) {
      polled_ = false;
      loop_.post([this] { read_once(); });
    } else if (ec) {
      finish();  // no standard input at all
    }
  }

 private:
  void read_once() {
    char chunk[16 * 1024];
    const ssize_t n = ::read(STDIN_FILENO, chunk, sizeof chunk);
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) return;
    if (n <= 0) return finish();
    partial_.append(chunk, static_cast<std::size_t>(n));
    for (std::size_t end; (end = partial_.find('\n')) != std::string::npos;) {
      on_line_(partial_.substr(0, end + 1));
      partial_.erase(0, end + 1);
    }
    if (!polled_) loop_.post([this] { read_once(); });
  }

  void finish() {
    watcher_.stop();
    if (!partial_.empty()) on_line_(std::exchange(partial_, {}));
    on_eof_();
  }

  Reactor& loop_;
  std::function<void(std::string)> on_line_;
  std::function<void()> on_eof_;
  IoWatcher watcher_;
  std::string partial_;
  bool polled_ = true;
};

// TCP or Unix stream: lines go out as they are read and replies are printed as they come.
// After end of input the writing side is shut down; the talk ends when the server closes,
// or after `timeout` of silence.
int talk_stream(Reactor& loop, const Address& server, Seconds timeout) {
  const auto wait = std::chrono::duration_cast<std::chrono::nanoseconds>(timeout);
  int status = 0;
  std::shared_ptr<Connection> connection;
  bool input_done = false;
  Timer silence;
  auto stop_after_silence = [&] { silence = loop.after(wait, [&] { loop.stop(); }); };

  LineInput input(
      loop, [&](std::string line) { connection->send(line); },
      [&] {
        input_done = true;
        connection->shutdown();  // the server reads end of stream after the last line
        stop_after_silence();
      });
  auto on_connected = [&](std::error_code ec, Socket socket) {
    if (ec) {
      complain("cannot connect to " + server.to_string(), ec);
      status = 1;
      return loop.stop();
    }
    connection = Connection::make(loop, std::move(socket));
    connection->on_data([&](Connection&, Buffer& in) {
      print(in.view());
      in.consume(in.size());
      if (input_done) stop_after_silence();  // not silent yet
    });
    connection->on_close([&](Connection&, CloseReason reason, std::error_code ec) {
      if (reason == CloseReason::reset || reason == CloseReason::error) {
        complain(server.to_string(), ec);
        status = 1;
      }
      loop.stop();
    });
    connection->start();
    input.start();
  };
  Connector::connect(loop, server, on_connected, wait);
  loop.run();
  return status;
}

// Where a datagram client binds: any port of the server's IP family, or for Unix an
// unnamed address, which the kernel autobinds to an abstract name replies can reach.
Address local_address_for(const Address& server) {
  if (server.family() == Address::Family::ipv4) return Address::ipv4_any(0);
  if (server.family() == Address::Family::ipv6) return Address::parse("[::]:0");
  const sa_family_t unnamed = AF_UNIX;
  std::error_code ec;
  return Address::from_native(reinterpret_cast<const sockaddr*>(&unnamed), sizeof unnamed, ec);
}

// UDP or Unix datagram: each line is one datagram; each reply datagram is printed (as a
// line). The next line goes out when the reply came, or after `timeout` without one.
int talk_datagram(Reactor& loop, const Address& server, Seconds timeout) {
  const auto wait = std::chrono::duration_cast<std::chrono::nanoseconds>(timeout);
  DatagramSocket socket(loop, local_address_for(server));
  if (std::error_code ec = socket.connect(server)) {  // only the server's replies come in
    complain("cannot reach " + server.to_string(), ec);
    return 1;
  }
  int status = 0;
  std::deque<std::string> lines;
  bool waiting = false;
  bool input_done = false;
  Timer reply_timeout;
  std::function<void()> send_next = [&] {
    waiting = false;
    reply_timeout.cancel();
    if (lines.empty()) {
      if (input_done) loop.stop();
      return;
    }
    if (std::error_code ec = socket.send(lines.front())) {
      complain(server.to_string(), ec);
      status = 1;
      return loop.stop();
    }
    lines.pop_front();
    waiting = true;
    reply_timeout = loop.after(wait, send_next);
  };

  socket.on_datagram([&](std::string_view data, const Address&, bool) {
    print(data);
    if (!data.ends_with('\n')) print("\n");
    if (waiting) send_next();
  });
  socket.on_error([&](std::error_code ec) {  // ECONNREFUSED: nobody listens there
    complain(server.to_string(), ec);
    status = 1;
    loop.stop();
  });
  LineInput input(
      loop,
      [&](std::string line) {
        lines.push_back(std::move(line));
        if (!waiting) send_next();
      },
      [&] {
        input_done = true;
        if (!waiting) send_next();
      });
  if (std::error_code ec = socket.start()) {
    complain("datagram socket", ec);
    return 1;
  }
  input.start();
  loop.run();
  return status;
}

// The server's address, checked against the transport. With no --transport, a unix: address
// means unix-stream; an explicit one must suit the address. The loop's backend "auto" is
// $REACTOR_BACKEND's, so a bad value there is named as such.
Address server_address(const CLI::App& app, const std::string& text, std::string& transport) {
  std::error_code ec;
  const Address server = Address::parse(text, ec);
  if (ec) {
    throw UsageError("bad address '" + text + "': " + std::string(Address::parse_error(text)));
  }
  if (app.count("--transport") == 0 && server.is_unix()) transport = "unix-stream";
  const bool wants_unix = transport.starts_with("unix-");
  if (server.is_unix() != wants_unix) {
    throw UsageError("'" + text + "' does not suit --transport " + transport +
                     (wants_unix ? " (use unix:/PATH or unix:@NAME)" : " (use IP:PORT)"));
  }
  if (std::string why = tools::backend_env_error(available_backends()); !why.empty())
    throw UsageError(why);
  return server;
}

}  // namespace

int main(int argc, char** argv) {
  std::string server_text;
  std::string transport = "tcp";
  double timeout = 2;
  CLI::App app{"Sends each line of standard input to a server and prints each reply."};
  app.set_version_flag("--version", std::string("reactor-client ") + version_string(),
                       "print the version and exit");
  app.add_option("ADDR", server_text, "IP:PORT, [IPV6]:PORT, unix:/PATH or unix:@NAME")->required();
  app.add_option("--transport", transport,
                 "tcp, udp, unix-stream or unix-dgram (default: unix-stream for a unix: ADDR)")
      ->check(CLI::IsMember({"tcp", "udp", "unix-stream", "unix-dgram"}))
      ->capture_default_str();
  app.add_option("--timeout", timeout,
                 "seconds to wait, at most 86400: to connect, for a reply, for the end")
      ->check(tools::seconds_in(0, kMaxTimeoutSeconds, false))
      ->capture_default_str();
  Address server;
  try {
    app.parse(argc, argv);
    server = server_address(app, server_text, transport);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return app.exit(e);  // --help, --version
    std::fprintf(stderr, "reactor-client: %s\n", tools::one_line(e).c_str());
    return 2;
  } catch (const UsageError& e) {
    std::fprintf(stderr, "reactor-client: %s\n", e.what());
    return 2;
  }
  try {
    Reactor loop;
    const bool stream = transport == "tcp" || transport == "unix-stream";
    return stream ? talk_stream(loop, server, Seconds(timeout))
                  : talk_datagram(loop, server, Seconds(timeout));
  } catch (const std::exception& e) {  // no fds left, the socket cannot be made, ...
    std::fprintf(stderr, "reactor-client: %s\n", e.what());
    return 1;
  }
}
