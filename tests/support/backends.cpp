#include "tests/support/backends.hpp"

#include "reactor/core/reactor.hpp"

namespace reactor::test {

std::vector<std::string> all_backends() {
  // Build and destroy one loop of each kind first: libuv opens a few process-wide fds on its
  // first use and keeps them, which would otherwise look like a leak to the first test.
  static const std::vector<std::string> names = [] {
    std::vector<std::string> all = available_backends();
    for (const std::string& name : all) Reactor warm_up(name);
    return all;
  }();
  return names;
}

}  // namespace reactor::test
