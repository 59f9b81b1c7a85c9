// SPDX-License-Identifier: MIT
// The one place that names every backend. Which ones exist is decided by CMake, which
// writes backend_list.inc: one REACTOR_BACKEND(name) line for each backend it compiled.
#include <cstdlib>
#include <stdexcept>
#include <string>

#include "reactor/core/backend.hpp"

namespace reactor {

namespace backends {
#define REACTOR_BACKEND(name) std::unique_ptr<Backend> make_##name();
#include "backend_list.inc"
#undef REACTOR_BACKEND
}  // namespace backends

namespace {

struct Entry {
  std::string_view name;
  std::unique_ptr<Backend> (*make)();
};

constexpr Entry kBackends[] = {
#define REACTOR_BACKEND(name) {#name, &backends::make_##name},
#include "backend_list.inc"
#undef REACTOR_BACKEND
};

}  // namespace

std::unique_ptr<Backend> make_backend(std::string_view name) {
  const std::string resolved = name == "auto" ? default_backend_name() : std::string(name);
  for (const Entry& e : kBackends) {
    if (e.name == resolved) return e.make();
  }
  std::string known;
  for (const Entry& e : kBackends) known += (known.empty() ? "" : ", ") + std::string(e.name);
  throw std::invalid_argument("reactor: unknown backend '" + resolved + "' (compiled in: " + known +
                              ")");
}

std::vector<std::string> available_backends() {
  std::vector<std::string> names;
  for (const Entry& e : kBackends) names.emplace_back(e.name);
  return names;
}

std::string default_backend_name() {
  const char* env = std::getenv("REACTOR_BACKEND");
  if (env != nullptr && *env != '\0' && std::string_view(env) != "auto") return env;
  return "epoll";
}

}  // namespace reactor
