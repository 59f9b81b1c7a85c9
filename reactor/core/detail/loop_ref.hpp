// SPDX-License-Identifier: MIT
#pragma once
#include <memory>

namespace reactor {
class Reactor;
namespace detail {
/// What every handle holds: a cell that names its Reactor while the Reactor lives and holds
/// nullptr after it is destroyed, so a handle that outlives its loop is inert, not dangling.
using LoopRef = std::shared_ptr<Reactor*>;
struct WatchAccess;  // reactor/core/detail/watch_access.hpp
}  // namespace detail
}  // namespace reactor
