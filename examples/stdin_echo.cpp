// SPDX-License-Identifier: MIT
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <cstdio>
#include <string>
#include <system_error>

#include "reactor/core/reactor.hpp"

int main() {
  using namespace std::chrono_literals;
  reactor::Reactor loop;  // the backend named by $REACTOR_BACKEND, else epoll
  reactor::Timer idle;
  auto rearm = [&] { idle = loop.after(10s, [&] { loop.stop(); }); };
  auto copy = [] {  // one chunk of stdin to stdout; false at end of input or on an error
    char buf[4096];
    ssize_t n = ::read(STDIN_FILENO, buf, sizeof buf);
    return n > 0 && ::write(STDOUT_FILENO, buf, n) == n;
  };

  std::error_code ec;
  reactor::IoWatcher in = loop.watch(
      STDIN_FILENO, reactor::Interest::read,
      [&](reactor::IoEvents) {
        if (!copy()) return loop.stop();
        rearm();
      },
      ec);
  // A regular file or /dev/null cannot be watched (EPERM) and never blocks: just copy it.
  if (ec == std::errc::operation_not_permitted) {
    while (copy()) continue;
    return 0;
  }
  if (ec) {
    std::fprintf(stderr, "stdin: %s\n", ec.message().c_str());
    return 1;
  }
  reactor::SignalWatcher sigint = loop.on_signal(SIGINT, [&](int) { loop.stop(); });
  rearm();

  loop.run();
  std::fprintf(stderr, "stopped (%s backend)\n", std::string(loop.backend_name()).c_str());
}
