// An echo server: every byte a client sends comes back, on any backend.
//   echo_server [ADDR] [BACKEND]      e.g. echo_server 127.0.0.1:7000 poll
#include <csignal>
#include <cstdio>
#include <set>

#include "reactor/core/reactor.hpp"
#include "reactor/net/connection.hpp"
#include "reactor/net/listener.hpp"

int main(int argc, char** argv) {
  using namespace reactor;
  Reactor loop(argc > 2 ? argv[2] : "auto");
  std::set<std::shared_ptr<Connection>> clients;
  Listener listener(loop, Address::parse(argc > 1 ? argv[1] : "127.0.0.1:0"),
                    [&](Socket socket, const Address&) {
                      auto c = Connection::make(loop, std::move(socket));
                      c->on_data([](Connection& c, Buffer& in) {
                        c.send(in.view());
                        in.clear();
                      });
                      c->on_close([&](Connection& c, CloseReason, std::error_code) {
                        clients.erase(c.shared_from_this());
                      });
                      clients.insert(c);
                      c->start();
                    });
  SignalWatcher stop = loop.on_signal(SIGTERM, [&](int) { loop.stop(); });
  std::printf("listening on %s (%s)\n", listener.address().to_string().c_str(),
              std::string(loop.backend_name()).c_str());
  std::fflush(stdout);
  loop.run();
}
