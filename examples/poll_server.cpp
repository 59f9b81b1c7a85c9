// SPDX-License-Identifier: MIT
// Lesson 8, the poll() server one level lower: the loop (on the "poll" backend) reports only
// that an fd is readable, through an IoWatcher, and we ::recv() ourselves as Python does.
//   poll_server [ADDR]        (default 127.0.0.1:21567; connect with `nc` and type)
#include <sys/socket.h>

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <map>
#include <string>
#include <string_view>

#include "reactor/core/reactor.hpp"
#include "reactor/net/listener.hpp"

using namespace reactor;

// An entry of Python's fdmap. The watcher is declared last so it goes first: the fd is
// unwatched before the Socket closes it.
struct Client {
  Socket socket;
  Address peer;
  IoWatcher watcher;
};

// --help prints this; a bad argument is told on stderr, with exit status 2, never a crash.
static int usage(const std::string& mistake = {}) {
  if (!mistake.empty()) std::fprintf(stderr, "poll_server: %s\n", mistake.c_str());
  std::fprintf(mistake.empty() ? stdout : stderr,
               "usage: poll_server [ADDR]       (default 127.0.0.1:21567)\n");
  return mistake.empty() ? 0 : 2;
}

int main(int argc, char** argv) try {
  const std::string_view arg = argc > 1 ? argv[1] : "127.0.0.1:21567";
  if (arg == "--help" || arg == "-h") return usage();
  std::error_code bad;
  const Address address = Address::parse(arg, bad);
  if (bad) return usage("invalid address '" + std::string(arg) + "'");
  if (argc > 2) return usage("too many arguments");
  Reactor loop("poll");
  std::map<int, Client> fdmap;

  auto on_readable = [&fdmap](int fd) {
    char data[1024];
    const ssize_t n = ::recv(fd, data, sizeof data, 0);  // never blocks: accepted non-blocking
    if (n > 0) {
      std::printf("%.*s\n", static_cast<int>(n), data);
    } else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {  // end of stream, or broken
      std::printf("%s disconnected\n", fdmap.at(fd).peer.to_string().c_str());
      fdmap.erase(fd);  // a watcher may be destroyed inside its own callback
    }
    std::fflush(stdout);
  };
  Listener listener(loop, address, [&](Socket socket, const Address& peer) {
    const int fd = socket.fd();
    std::printf("Got connection from %s\n", peer.to_string().c_str());
    std::fflush(stdout);
    // Level-triggered: unread bytes make the loop call us again.
    IoWatcher watcher = loop.watch(fd, Interest::read, [=](IoEvents) { on_readable(fd); });
    fdmap.emplace(fd, Client{std::move(socket), peer, std::move(watcher)});
  });

  SignalWatcher stop_on[] = {loop.on_signal(SIGINT, [&](int) { loop.stop(); }),
                             loop.on_signal(SIGTERM, [&](int) { loop.stop(); })};
  std::printf("listening on %s\n", listener.address().to_string().c_str());
  std::fflush(stdout);
  loop.run();
} catch (const std::exception& e) {  // the address is taken, no fds left, ...
  std::fprintf(stderr, "poll_server: %s\n", e.what());
  return 1;
}
