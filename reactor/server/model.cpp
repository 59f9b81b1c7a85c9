// SPDX-License-Identifier: MIT
#include "reactor/server/model.hpp"

#include <array>

namespace reactor {

namespace {
constexpr std::array<std::string_view, 5> kNames{"sync", "threading", "forking", "reactor", "pool"};
}

std::string_view to_string(Model model) noexcept { return kNames[static_cast<std::size_t>(model)]; }

std::optional<Model> parse_model(std::string_view name) noexcept {
  for (std::size_t i = 0; i < kNames.size(); ++i) {
    if (kNames[i] == name) return static_cast<Model>(i);
  }
  return std::nullopt;
}

}  // namespace reactor
