// SPDX-License-Identifier: MIT
#pragma once
/// A backend whose waits can also be made by a loop the Reactor does not own: the uv backend
/// on a caller's uv_loop_t, which the caller drives with its own uv_run(). Internal: only
/// reactor.cpp and backends/ include it.
///
/// Driven by the Reactor (run(), run_once()), such a backend is an ordinary Backend. Driven
/// by its host, it asks its Reactor, through the hooks, how long the host may wait, fills
/// the Reactor's batch during the host's wait, and asks the Reactor to run the phases after
/// the wait; all of that on the thread running the host loop, never during a poll() of its
/// own.

#include <chrono>
#include <memory>
#include <optional>
#include <vector>

#include "reactor/core/backend.hpp"

struct uv_loop_s;

namespace reactor::detail {

/// The Reactor's side, as plain function pointers over an opaque `loop`.
struct HostHooks {
  void* loop = nullptr;
  /// How long the host's next wait may block: nullopt for no limit, zero for not at all
  /// (tasks posted, stop() requested), else until the nearest timer.
  std::optional<std::chrono::nanoseconds> (*next_wait)(void* loop) noexcept = nullptr;
  /// Runs the phases after the wait (I/O dispatch over the batch, signals, timers, posted
  /// tasks). True when stop() was requested: the host loop is to end its run.
  bool (*after_wait)(void* loop) noexcept = nullptr;
};

class HostedBackend : public Backend {
 public:
  /// Called once by the Reactor, before any wait: `batch` is the Reactor's (its capacity is
  /// kept above the number of registered fds). Each host iteration clears it, fills it
  /// during the wait, and hands it over through hooks.after_wait. A backend whose loop is
  /// its own may ignore the call.
  virtual void host(const HostHooks& hooks, std::vector<Readiness>& batch) noexcept = 0;
};

/// The uv backend over `loop`, owned by the caller and never closed by the backend.
/// std::invalid_argument for a null loop, or when the library was built without libuv.
std::unique_ptr<Backend> make_uv_backend_on(uv_loop_s* loop);

}  // namespace reactor::detail
