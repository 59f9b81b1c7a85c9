// Lesson 6, the greeting server in the event style: with Model::reactor no handler ever
// blocks; the server calls an EventHandler's methods as things happen on the connection.
//   greet_server [ADDR]       (default 127.0.0.1:21567; try `nc 127.0.0.1 21567`)
#include <csignal>
#include <cstdio>
#include <memory>

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

int main(int argc, char** argv) {
  EventHandlerFactory greeters = [] { return std::make_unique<Greeter>(); };
  StreamServer server(Address::parse(argc > 1 ? argv[1] : "127.0.0.1:21567"), greeters,
                      {.model = Model::reactor});
  Reactor& loop = server.loop();  // the loop the handlers run on; signals come through it too
  SignalWatcher on_term = loop.on_signal(SIGTERM, [&server](int) { server.shutdown(); });
  SignalWatcher on_int = loop.on_signal(SIGINT, [&server](int) { server.shutdown(); });
  std::printf("listening on %s\n", server.address().to_string().c_str());
  std::fflush(stdout);
  server.serve_forever();
}
