// SPDX-License-Identifier: MIT
#pragma once
/// \file
/// The concurrency models a server can use, chosen by a value (not by inheritance, as
/// Python's ThreadingMixIn and ForkingMixIn are).

#include <cstdint>
#include <optional>
#include <string_view>

#include "reactor/export.hpp"

namespace reactor {

/// How a server serves each connection (each datagram): on the serving thread, on threads,
/// in child processes, or with event handlers on one or N loops.
enum class Model : std::uint8_t {
  sync,       ///< one request at a time on the serving thread (Python's plain TCPServer)
  threading,  ///< a thread per connection (per datagram), bounded, all joined by server_close
  forking,    ///< a process per connection (per datagram), at most max_children, all reaped
  reactor,    ///< event handlers on one loop
  pool,       ///< event handlers on N loops on N threads
};

/// "sync", "threading", "forking", "reactor", "pool".
REACTOR_API std::string_view to_string(Model model) noexcept;
/// The inverse of to_string; nullopt for anything else.
REACTOR_API std::optional<Model> parse_model(std::string_view name) noexcept;
/// True for the models that run blocking StreamRequestHandlers (sync, threading, forking).
constexpr bool is_blocking(Model model) noexcept {
  return model == Model::sync || model == Model::threading || model == Model::forking;
}

}  // namespace reactor
