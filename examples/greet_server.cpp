// SPDX-License-Identifier: MIT
// Lesson 6, the greeting server in the event style: with Model::reactor no handler ever
// blocks; the server calls an EventHandler's methods as things happen on the connection.
//   greet_server [ADDR]       (default 127.0.0.1:21567; try `nc 127.0.0.1 21567`)
#include <csignal>
#include <cstdio>
#include <memory>
#include <string>
#include <string_view>

#include "reactor/server/stream_server.hpp"

using namespace reactor;

// One Greeter per connection, made by the factory below and destroyed after on_close.
class Greeter final : public EventHandler {
 public:
  void on_connect(Connection& connection) override {
    std::printf("Got connection from %s\n", connection.peer_address().to_string().c_str());
    std::fflush(stdout);
    connection.send("Thank you for connecting\n");  // queued if the socket is full
    connection.close();  // graceful: the greeting goes out first, then the FIN
  }
  // Whatever the client says is ignored.
  void on_data(Connection&, Buffer& input) override { input.clear(); }
};

// --help prints this; a bad argument is told on stderr, with exit status 2, never a crash.
static int usage(const std::string& mistake = {}) {
  if (!mistake.empty()) std::fprintf(stderr, "greet_server: %s\n", mistake.c_str());
  std::fprintf(mistake.empty() ? stdout : stderr,
               "usage: greet_server [ADDR]      (default 127.0.0.1:21567)\n");
  return mistake.empty() ? 0 : 2;
}

int main(int argc, char** argv) try {
  const std::string_view arg = argc > 1 ? argv[1] : "127.0.0.1:21567";
  if (arg == "--help" || arg == "-h") return usage();
  std::error_code bad;
  const Address address = Address::parse(arg, bad);
  if (bad) return usage("invalid address '" + std::string(arg) + "'");
  if (argc > 2) return usage("too many arguments");
  EventHandlerFactory greeters = [] { return std::make_unique<Greeter>(); };
  StreamServer server(address, greeters, {.model = Model::reactor});
  Reactor& loop = server.loop();  // the loop the handlers run on; signals come through it too
  SignalWatcher on_term = loop.on_signal(SIGTERM, [&server](int) { server.shutdown(); });
  SignalWatcher on_int = loop.on_signal(SIGINT, [&server](int) { server.shutdown(); });
  std::printf("listening on %s\n", server.address().to_string().c_str());
  std::fflush(stdout);
  server.serve_forever();
} catch (const std::exception& e) {  // the address is taken, no fds left, ...
  std::fprintf(stderr, "greet_server: %s\n", e.what());
  return 1;
}
