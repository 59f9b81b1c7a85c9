// SPDX-License-Identifier: MIT
// Lesson 4, an upper-case server over UDP: a DatagramServer calls the handler once per
// datagram and sends what it replies back to the sender (Python's UDPServer).
//   udp_upper_server [ADDR]   (default 127.0.0.1:21567; talk to it with udp_upper_client)
#include <cctype>
#include <csignal>
#include <cstdio>
#include <string>
#include <string_view>

#include "reactor/server/datagram_server.hpp"

// --help prints this; a bad argument is told on stderr, with exit status 2, never a crash.
static int usage(const std::string& mistake = {}) {
  if (!mistake.empty()) std::fprintf(stderr, "udp_upper_server: %s\n", mistake.c_str());
  std::fprintf(mistake.empty() ? stdout : stderr,
               "usage: udp_upper_server [ADDR]  (default 127.0.0.1:21567)\n");
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
  // No connection, no stream: the request is the packet and the sender's address.
  DatagramServer server(address, [](DatagramRequest& request) {
    std::string upper;
    for (unsigned char c : request.data()) upper += std::toupper(c);
    request.reply(upper);  // one datagram back, to the sender
  });

  std::printf("listening on %s\n", server.address().to_string().c_str());
  std::fflush(stdout);
  SignalWatcher term = server.loop().on_signal(SIGTERM, [&](int) { server.shutdown(); });
  SignalWatcher interrupt = server.loop().on_signal(SIGINT, [&](int) { server.shutdown(); });
  server.serve_forever();
  std::printf("served %llu datagrams\n", static_cast<unsigned long long>(server.stats().handled));
} catch (const std::exception& e) {  // the address is taken, no fds left, ...
  std::fprintf(stderr, "udp_upper_server: %s\n", e.what());
  return 1;
}
