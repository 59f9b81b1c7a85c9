// SPDX-License-Identifier: MIT
#pragma once
/// \file
/// Running a handler whose owner may be destroyed or changed by the call itself: how the
/// library's layers (core's loop, net's Connection, Listener, DatagramSocket) call a user's
/// handler. Shared by the layers above core; not part of the user API (namespace detail).
///
/// A callback may destroy the object that holds it, replace its own handler, or grow the
/// table its handler lives in. So the handler is moved onto the caller's stack for the call,
/// and handed back afterwards, however the call ends (return or exception), only if its
/// owner still wants it. Moving a std::function allocates nothing.

#include <utility>

namespace reactor::detail {

/// Calls `running` (already moved out of its owner) and then passes it to `put_back`, which
/// returns it to its owner or lets it die with the caller's frame.
template <class Handler, class PutBack, class... Args>
void call_from_stack(Handler& running, PutBack put_back, Args&&... args) {
  struct Guard {
    Handler& running;
    PutBack& put_back;
    ~Guard() { put_back(running); }
  } guard{running, put_back};
  running(std::forward<Args>(args)...);
}

/// The usual case: `member` is a handler field of an object that may die during the call
/// (`alive()` says whether it still lives). Restored unless the object died or the call set a
/// new handler. Does nothing for an empty handler.
template <class Handler, class Alive, class... Args>
void call_member(Handler& member, Alive alive, Args&&... args) {
  if (!member) return;
  Handler running = std::move(member);
  call_from_stack(
      running,
      [&member, &alive](Handler& h) {
        if (alive() && !member) member = std::move(h);
      },
      std::forward<Args>(args)...);
}

}  // namespace reactor::detail
