// SPDX-License-Identifier: MIT
// Lesson 3, a client for upper_server: connect once, then send each line of stdin and print
// the reply. The connect runs on a Reactor (Connector); the talk is blocking (BlockingStream).
//   printf 'hello\nworld\n' | upper_client [ADDR]      (default 127.0.0.1:21567)
#include <chrono>
#include <cstdio>
#include <iostream>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>

#include "reactor/net/connector.hpp"
#include "reactor/server/blocking_stream.hpp"

// --help prints this; a bad argument is told on stderr, with exit status 2, never a crash.
static int usage(const std::string& mistake = {}) {
  if (!mistake.empty()) std::fprintf(stderr, "upper_client: %s\n", mistake.c_str());
  std::fprintf(mistake.empty() ? stdout : stderr,
               "usage: upper_client [ADDR]  (default 127.0.0.1:21567; sends each line of stdin)\n");
  return mistake.empty() ? 0 : 2;
}

int main(int argc, char** argv) try {
  using namespace reactor;
  using namespace std::chrono_literals;
  const std::string_view arg = argc > 1 ? argv[1] : "127.0.0.1:21567";
  if (arg == "--help" || arg == "-h") return usage();
  std::error_code bad;
  const Address server = Address::parse(arg, bad);
  if (bad) return usage("invalid address '" + std::string(arg) + "'");
  if (argc > 2) return usage("too many arguments");

  // The loop runs just until the connector's handler has the outcome.
  Reactor loop;
  std::error_code error;
  Socket socket;
  Connector::connect(
      loop, server,
      [&](std::error_code ec, Socket connected) {
        error = ec;
        socket = std::move(connected);
        loop.stop();
      },
      5s);
  loop.run();
  if (error) {
    std::fprintf(stderr, "cannot connect to %s: %s\n", server.to_string().c_str(),
                 error.message().c_str());
    return 1;
  }

  BlockingStream stream(std::move(socket));
  stream.set_timeout(5s);  // no wait may last longer: a silent server cannot hang us
  try {
    for (std::string line; std::getline(std::cin, line);) {
      stream.write(line + "\n");
      stream.flush();
      std::optional<std::string> reply = stream.read_line();
      if (!reply) break;  // the server closed
      std::fputs(reply->c_str(), stdout);
      std::fflush(stdout);
    }
  } catch (const std::system_error& e) {  // timed out, reset, ...
    std::fprintf(stderr, "%s\n", e.what());
    return 1;
  }
} catch (const std::exception& e) {  // no fds left, ...
  std::fprintf(stderr, "upper_client: %s\n", e.what());
  return 1;
}
