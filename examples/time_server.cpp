// SPDX-License-Identifier: MIT
// Lesson 1, a time-stamp server: a StreamServer with the sync model serves one client at a
// time, as Python's plain TCPServer does, and answers each line with "[ctime()] line".
//   time_server [ADDR]        (default 127.0.0.1:21567; try `nc 127.0.0.1 21567`)
#include <csignal>
#include <cstdio>
#include <ctime>
#include <optional>
#include <string>
#include <string_view>

#include "reactor/server/stream_server.hpp"

// ctime() without its trailing '\n', e.g. "Sun Nov 23 12:20:07 2025".
static std::string ctime_now() {
  std::time_t now = std::time(nullptr);
  char text[26];  // ctime_r's documented size
  return std::string(::ctime_r(&now, text), 24);
}

// --help prints this; a bad argument is told on stderr, with exit status 2, never a crash.
static int usage(const std::string& mistake = {}) {
  if (!mistake.empty()) std::fprintf(stderr, "time_server: %s\n", mistake.c_str());
  std::fprintf(mistake.empty() ? stdout : stderr,
               "usage: time_server [ADDR]      (default 127.0.0.1:21567)\n");
  return mistake.empty() ? 0 : 2;
}

int main(int argc, char** argv) try {
  using namespace reactor;
  const std::string_view arg = argc > 1 ? argv[1] : "127.0.0.1:21567";
  if (arg == "--help" || arg == "-h") return usage();
  std::error_code bad;
  const Address address = Address::parse(arg, bad);
  if (bad) return usage("invalid address '" + std::string(arg) + "'");
  if (argc > 2) return usage("too many arguments");
  // The handler owns the connection until it returns; the server then flushes and closes.
  auto handler = [](BlockingStream& stream, const Address& client) {
    std::printf("...connected from: %s\n", client.to_string().c_str());
    std::fflush(stdout);
    while (std::optional<std::string> line = stream.read_line()) {  // nullopt: client left
      stream.write("[" + ctime_now() + "] " + *line);
      stream.flush();
    }
  };
  // shutdown_signals: SIGINT or SIGTERM shuts the server down at once, even while the sync
  // model's one handler is blocked reading from a client (its wait is cancelled).
  StreamServer server(address, stream_handler(handler),
                      {.model = Model::sync, .shutdown_signals = {SIGINT, SIGTERM}});

  std::printf("listening on %s\n", server.address().to_string().c_str());
  std::fflush(stdout);
  server.serve_forever();            // returns after shutdown(); the destructor closes the server
} catch (const std::exception& e) {  // the address is taken, no fds left, ...
  std::fprintf(stderr, "time_server: %s\n", e.what());
  return 1;
}
