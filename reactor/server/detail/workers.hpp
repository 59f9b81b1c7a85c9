// SPDX-License-Identifier: MIT
#pragma once
/// \file
/// The handler threads of the threading model and the children of the forking model, owned
/// by a server's loop 0: started, reaped and joined there. Internal.

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <thread>

#include "reactor/core/reactor.hpp"

namespace reactor::detail {

class Workers {
 public:
  /// Thread rule: `loop`'s (loop 0's) for every member; the thread bodies run elsewhere.
  explicit Workers(Reactor& loop) noexcept : loop_(loop) {}
  /// Joins and waits for everything still running (join_all()). Before the loop goes.
  ~Workers();
  Workers(const Workers&) = delete;
  Workers& operator=(const Workers&) = delete;

  /// Runs `body` on a new thread; `done` runs on the loop after it ends (the thread is
  /// joined there). False when no thread can be made (EAGAIN): retry later.
  bool spawn_thread(std::function<void()> body, std::function<void()> done);
  /// Runs `body` in a child, which then exits with its result. `done(status)` runs on the
  /// loop once the child is reaped. False when fork fails (EAGAIN, ENOMEM): retry later.
  /// `in_child` runs first in the child (close what the child must not hold). The child
  /// gets back the signal dispositions the program had before any watcher.
  bool spawn_child(const std::function<void()>& in_child, const std::function<int()>& body,
                   std::function<void(int status)> done);
  /// Joins every thread and waits for every child, running their `done`s. A thread calling
  /// this from a handler thread is left for the loop to join later.
  void join_all() noexcept;

  std::size_t live_threads() const noexcept { return threads_.size(); }
  std::size_t live_children() const noexcept { return children_.size(); }

 private:
  struct HandlerThread {
    std::thread thread;
    std::function<void()> done;
  };
  void finish_thread(std::uint64_t id);
  void reap_children();

  Reactor& loop_;
  std::uint64_t next_thread_ = 0;
  std::map<std::uint64_t, HandlerThread> threads_;
  std::map<pid_t, std::function<void(int)>> children_;
  std::optional<SignalWatcher> sigchld_;
};

}  // namespace reactor::detail
