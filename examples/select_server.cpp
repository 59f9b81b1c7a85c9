// Lesson 7, the select() server written on the loop itself, no server class: a Reactor on
// the "select" backend, a Listener that accepts, and a Connection per client.
//   select_server [ADDR]      (default 127.0.0.1:21567; connect with `nc` and type)
#include <csignal>
#include <cstdio>
#include <map>
#include <memory>

#include "reactor/core/reactor.hpp"
#include "reactor/net/connection.hpp"
#include "reactor/net/listener.hpp"

int main(int argc, char** argv) {
  using namespace reactor;
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
  Listener listener(loop, Address::parse(argc > 1 ? argv[1] : "127.0.0.1:21567"), accept);

  std::printf("listening on %s\n", listener.address().to_string().c_str());
  SignalWatcher term = loop.on_signal(SIGTERM, [&loop](int) { loop.stop(); });
  SignalWatcher intr = loop.on_signal(SIGINT, [&loop](int) { loop.stop(); });
  loop.run();  // until stop(): wait for readiness, run the callbacks, again
}
