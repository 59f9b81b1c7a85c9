// SPDX-License-Identifier: MIT
// Lesson 2, a threaded upper-case server: Model::threading gives each client a thread of its
// own (Python's ThreadingTCPServer), so a slow client never holds up the others.
//   upper_server [ADDR]       (default 127.0.0.1:21567; talk to it with upper_client)
#include <algorithm>
#include <cctype>
#include <csignal>
#include <cstdio>
#include <string>
#include <string_view>

#include "reactor/server/stream_server.hpp"

using namespace reactor;

// Runs on the client's own thread: blocking calls here stall no one else.
static void shout_back(BlockingStream& stream, const Address& client) {
  std::printf("%s connected\n", client.to_string().c_str());
  std::fflush(stdout);
  // read_some() returns what has arrived (up to 1024 bytes), or "" when the client closed.
  for (std::string data = stream.read_some(1024); !data.empty(); data = stream.read_some(1024)) {
    std::ranges::transform(data, data.begin(), [](unsigned char c) { return std::toupper(c); });
    stream.write(data);
    stream.flush();
  }
}

// --help prints this; a bad argument is told on stderr, with exit status 2, never a crash.
static int usage(const std::string& mistake = {}) {
  if (!mistake.empty()) std::fprintf(stderr, "upper_server: %s\n", mistake.c_str());
  std::fprintf(mistake.empty() ? stdout : stderr,
               "usage: upper_server [ADDR]      (default 127.0.0.1:21567)\n");
  return mistake.empty() ? 0 : 2;
}

int main(int argc, char** argv) try {
  const std::string_view arg = argc > 1 ? argv[1] : "127.0.0.1:21567";
  if (arg == "--help" || arg == "-h") return usage();
  std::error_code bad;
  const Address address = Address::parse(arg, bad);
  if (bad) return usage("invalid address '" + std::string(arg) + "'");
  if (argc > 2) return usage("too many arguments");
  StreamServer server(address, stream_handler(shout_back),
                      {.model = Model::threading, .max_threads = 64});

  // shutdown() also cancels the blocked reads of every handler thread, so the server stops
  // at once even with clients connected; the destructor then joins the threads.
  SignalWatcher watchers[] = {
      server.loop().on_signal(SIGTERM, [&](int) { server.shutdown(); }),
      server.loop().on_signal(SIGINT, [&](int) { server.shutdown(); }),
  };
  std::printf("listening on %s\n", server.address().to_string().c_str());
  std::fflush(stdout);
  server.serve_forever();
} catch (const std::exception& e) {  // the address is taken, no fds left, ...
  std::fprintf(stderr, "upper_server: %s\n", e.what());
  return 1;
}
