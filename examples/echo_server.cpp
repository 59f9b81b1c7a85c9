// SPDX-License-Identifier: MIT
// An echo server: every byte a client sends comes back, on any backend.
//   echo_server [ADDR] [BACKEND]      e.g. echo_server 127.0.0.1:7000 poll
#include <algorithm>
#include <csignal>
#include <cstdio>
#include <set>
#include <string>

#include "reactor/core/reactor.hpp"
#include "reactor/net/connection.hpp"
#include "reactor/net/listener.hpp"

// --help prints this; a bad argument is told on stderr, with exit status 2, never a crash.
static int usage(const std::string& mistake = {}) {
  if (!mistake.empty()) std::fprintf(stderr, "echo_server: %s\n", mistake.c_str());
  std::fprintf(mistake.empty() ? stdout : stderr,
               "usage: echo_server [ADDR] [BACKEND]   (default 127.0.0.1:0 auto)\n");
  return mistake.empty() ? 0 : 2;
}

int main(int argc, char** argv) try {
  using namespace reactor;
  const std::string arg = argc > 1 ? argv[1] : "127.0.0.1:0";
  const std::string backend = argc > 2 ? argv[2] : "auto";
  if (arg == "--help" || arg == "-h") return usage();
  std::error_code bad;
  const Address address = Address::parse(arg, bad);
  if (bad) return usage("invalid address '" + arg + "'");
  if (backend != "auto" && std::ranges::count(available_backends(), backend) == 0)
    return usage("unknown backend '" + backend + "'");
  if (argc > 3) return usage("too many arguments");

  Reactor loop(backend);
  std::set<std::shared_ptr<Connection>> clients;
  Listener listener(loop, address, [&](Socket socket, const Address&) {
    auto c = Connection::make(loop, std::move(socket));
    c->on_data([](Connection& c, Buffer& in) {
      c.send(in.view());
      in.clear();
    });
    c->on_close(
        [&](Connection& c, CloseReason, std::error_code) { clients.erase(c.shared_from_this()); });
    clients.insert(c);
    c->start();
  });
  SignalWatcher stop = loop.on_signal(SIGTERM, [&](int) { loop.stop(); });
  std::printf("listening on %s (%s)\n", listener.address().to_string().c_str(),
              std::string(loop.backend_name()).c_str());
  std::fflush(stdout);
  loop.run();
} catch (const std::exception& e) {  // the address is taken, no fds left, ...
  std::fprintf(stderr, "echo_server: %s\n", e.what());
  return 1;
}
