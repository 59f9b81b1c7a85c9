// Lesson 1, a time-stamp server: a StreamServer with the sync model serves one client at a
// time, as Python's plain TCPServer does, and answers each line with "[ctime()] line".
//   time_server [ADDR]        (default 127.0.0.1:21567; try `nc 127.0.0.1 21567`)
#include <csignal>
#include <cstdio>
#include <ctime>
#include <optional>
#include <string>

#include "reactor/server/stream_server.hpp"

// ctime() without its trailing '\n', e.g. "Sun Nov 23 12:20:07 2025".
static std::string ctime_now() {
  std::time_t now = std::time(nullptr);
  char text[26];  // ctime_r's documented size
  return std::string(::ctime_r(&now, text), 24);
}

int main(int argc, char** argv) {
  using namespace reactor;
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
  StreamServer server(Address::parse(argc > 1 ? argv[1] : "127.0.0.1:21567"),
                      stream_handler(handler),
                      {.model = Model::sync, .shutdown_signals = {SIGINT, SIGTERM}});

  std::printf("listening on %s\n", server.address().to_string().c_str());
  std::fflush(stdout);
  server.serve_forever();  // returns after shutdown(); the destructor closes the server
}
