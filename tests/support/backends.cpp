// SPDX-License-Identifier: MIT
#include "tests/support/backends.hpp"

#include <chrono>
#include <mutex>
#include <set>

#include "reactor/core/reactor.hpp"

namespace reactor::test {

std::vector<std::string> all_backends() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> all = available_backends();
    for (const std::string& name : all) warm_up(name);
    return all;
  }();
  return names;
}

void warm_up(const std::string& backend) {
  static std::mutex mutex;
  static std::set<std::string> done;
  std::lock_guard lock(mutex);
  if (!done.insert(backend).second) return;
  Reactor loop(backend);
  loop.run_once(std::chrono::nanoseconds{0});
}

}  // namespace reactor::test
