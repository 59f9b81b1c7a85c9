// SPDX-License-Identifier: MIT
// Lesson 5, a client for udp_upper_server: each line of stdin goes out as one datagram and
// the reply is awaited by running the loop one iteration at a time, up to a deadline.
//   printf 'hello\nworld\n' | udp_upper_client [ADDR]  (default 127.0.0.1:21567)
#include <chrono>
#include <cstdio>
#include <iostream>
#include <optional>
#include <string>
#include <string_view>

#include "reactor/net/datagram.hpp"

// --help prints this; a bad argument is told on stderr, with exit status 2, never a crash.
static int usage(const std::string& mistake = {}) {
  if (!mistake.empty()) std::fprintf(stderr, "udp_upper_client: %s\n", mistake.c_str());
  std::fprintf(
      mistake.empty() ? stdout : stderr,
      "usage: udp_upper_client [ADDR]  (default 127.0.0.1:21567; sends each line of stdin)\n");
  return mistake.empty() ? 0 : 2;
}

int main(int argc, char** argv) try {
  using namespace reactor;
  using Clock = Reactor::Clock;
  const std::string_view arg = argc > 1 ? argv[1] : "127.0.0.1:21567";
  if (arg == "--help" || arg == "-h") return usage();
  std::error_code bad;
  const Address server = Address::parse(arg, bad);
  if (bad) return usage("invalid address '" + std::string(arg) + "'");
  if (argc > 2) return usage("too many arguments");

  Reactor loop;
  // Port 0: the kernel picks ours. Connected to the server, the socket hears only from it,
  // and an ICMP "port unreachable" comes back as ECONNREFUSED through on_error.
  const bool v6 = server.family() == Address::Family::ipv6;
  DatagramSocket socket(loop, v6 ? Address::parse("[::]:0") : Address::ipv4_any(0));
  std::optional<std::string> reply;
  std::error_code error;
  socket.on_datagram([&](std::string_view data, const Address&, bool) { reply = data; });
  socket.on_error([&](std::error_code ec) { error = ec; });
  error = socket.connect(server);
  if (!error) error = socket.start();

  for (std::string line; !error && std::getline(std::cin, line);) {
    reply.reset();
    error = socket.send(line);
    // UDP may lose either datagram: wait two seconds at most, then give up on this line.
    const Clock::time_point deadline = Clock::now() + std::chrono::seconds(2);
    while (!error && !reply && Clock::now() < deadline) loop.run_once(deadline - Clock::now());
    if (reply) std::printf("%s\n", reply->c_str());
    if (!reply && !error) std::fprintf(stderr, "no reply to '%s'\n", line.c_str());
    std::fflush(stdout);
  }
  if (error) std::fprintf(stderr, "%s: %s\n", server.to_string().c_str(), error.message().c_str());
  return error ? 1 : 0;
} catch (const std::exception& e) {  // no fds left, ...
  std::fprintf(stderr, "udp_upper_client: %s\n", e.what());
  return 1;
}
