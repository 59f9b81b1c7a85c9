// Lesson 4, an upper-case server over UDP: a DatagramServer calls the handler once per
// datagram and sends what it replies back to the sender (Python's UDPServer).
//   udp_upper_server [ADDR]   (default 127.0.0.1:21567; talk to it with udp_upper_client)
#include <cctype>
#include <csignal>
#include <cstdio>
#include <string>

#include "reactor/server/datagram_server.hpp"

int main(int argc, char** argv) {
  using namespace reactor;
  // No connection, no stream: the request is the packet and the sender's address.
  DatagramServer server(Address::parse(argc > 1 ? argv[1] : "127.0.0.1:21567"),
                        [](DatagramRequest& request) {
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
}
