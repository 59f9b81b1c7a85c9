// SPDX-License-Identifier: MIT
// The smallest program that uses an installed reactor, through the umbrella header alone: a
// 1 ms timer stops the loop. Every public header is compiled with it.
#include <chrono>
#include <cstdio>
#include <string>

#include "reactor/reactor.hpp"

int main() {
  reactor::Reactor loop;
  bool fired = false;
  reactor::Timer timer = loop.after(std::chrono::milliseconds(1), [&] {
    fired = true;
    loop.stop();
  });
  loop.run();
  std::printf("backend: %s\n", std::string(loop.backend_name()).c_str());
  return fired ? 0 : 1;
}
