// SPDX-License-Identifier: MIT
// Lesson 7, the select() server written on the loop itself, no server class: a Reactor on
// the "select" backend, a Listener that accepts, and a Connection per client.
//   select_server [ADDR]      (default 127.0.0.1:21567; connect with `nc` and type)
#include <csignal>
#include <cstdio>
#include <map>
#include <memory>
#include <string>
#include <string_view>

#include "reactor/core/reactor.hpp"
#include "reactor/net/connection.hpp"
#include "reactor/net/listener.hpp"

using namespace reactor;

// --help prints this; a bad argument is told on stderr, with exit status 2, never a crash.
static int usage(const std::string& mistake = {}) {
  if (!mistake.empty()) std::fprintf(stderr, "select_server: %s\n", mistake.c_str());
  std::fprintf(mistake.empty() ? stdout : stderr,
               "usage: select_server [ADDR]     (default 127.0.0.1:21567)\n");
  return mistake.empty() ? 0 : 2;
}

int main(int argc, char** argv) try {
  const std::string_view arg = argc > 1 ? argv[1] : "127.0.0.1:21567";
  if (arg == "--help" || arg == "-h") return usage();
  std::error_code bad;
  const Address address = Address::parse(arg, bad);
  if (bad) return usage("invalid address '" + std::string(arg) + "'");
  if (argc > 2) return usage("too many arguments");
  std::setvbuf(stdout, nullptr, _IOLBF, 0);  // each line goes out at once, even into a pipe
  Reactor loop("select");  // select(2) underneath; the code would be the same on any backend

  // Python's `inputs` list. A Connection is held by shared_ptr; the loop keeps its own
  // reference while it is open, and this map keeps one so we can tell who is connected.
  std::map<Connection*, std::shared_ptr<Connection>> inputs;
  auto accept = [&](Socket socket, const Address& peer) {
    std::printf("Got connection from %s\n", peer.to_string().c_str());
    std::shared_ptr<Connection> client = Connection::make(loop, std::move(socket));
    client->on_data([](Connection&, Buffer& data) {
      std::printf("%.*s\n", static_cast<int>(data.size()), data.data());
      data.clear();  // consumed: the next call sees only new bytes
    });
    // Once, last, whatever the reason: end of stream, reset, error.
    client->on_close([&inputs](Connection& c, CloseReason, std::error_code) {
      std::printf("%s disconnected\n", c.peer_address().to_string().c_str());
      inputs.erase(&c);
    });
    inputs.emplace(client.get(), client);
    client->start();  // handlers first, then start: nothing is read before
  };
  Listener listener(loop, address, accept);

  std::printf("listening on %s\n", listener.address().to_string().c_str());
  SignalWatcher term = loop.on_signal(SIGTERM, [&loop](int) { loop.stop(); });
  SignalWatcher intr = loop.on_signal(SIGINT, [&loop](int) { loop.stop(); });
  loop.run();                        // until stop(): wait for readiness, run the callbacks, again
} catch (const std::exception& e) {  // the address is taken, no fds left, ...
  std::fprintf(stderr, "select_server: %s\n", e.what());
  return 1;
}
