// SPDX-License-Identifier: MIT
#pragma once
/// The Reactor's private state. Internal: only reactor.cpp and handles.cpp include it.

#include <sys/types.h>

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "reactor/core/backend.hpp"
#include "reactor/core/detail/loop_ref.hpp"
#include "reactor/core/detail/signal_registry.hpp"
#include "reactor/core/detail/timer_heap.hpp"
#include "reactor/core/io_watcher.hpp"
#include "reactor/core/reactor.hpp"

namespace reactor::detail {

/// One fd's registration, indexed by fd. The generation changes on every watch and unwatch,
/// and travels to the kernel inside the token, so a stale event never matches.
struct IoSlot {
  IoHandler handler;  // empty while its own callback runs (the handler is on the stack)
  std::uint32_t generation = 0;
  Interest interest = Interest::none;
  bool active = false;
};

struct TimerSlot {
  TimerHandler handler;
  std::int64_t period = 0;  // 0: one-shot
};

struct SignalSlot {
  SignalHandler handler;
  int signo = 0;
  int notify_target = -1;  // the registry target writing to on_signal's notify_fd, if any
  std::uint32_t generation = 0;
  bool active = false;
};

constexpr std::uint64_t make_token(int fd, std::uint32_t generation) noexcept {
  return (std::uint64_t{generation} << 32) | static_cast<std::uint32_t>(fd);
}
constexpr int token_fd(std::uint64_t token) noexcept {
  return static_cast<int>(token & 0xffffffffu);
}
constexpr std::uint32_t token_generation(std::uint64_t token) noexcept {
  return static_cast<std::uint32_t>(token >> 32);
}

struct LoopState {
  std::unique_ptr<Backend> backend;
  LoopRef self;

  // I/O
  std::vector<IoSlot> io;        // by fd
  std::vector<Readiness> ready;  // the batch; capacity >= registered fds
  std::size_t registered = 0;    // active io slots, the wake-up fd included

  // Timers
  TimerHeap timers;
  std::vector<TimerSlot> timer_slots;  // by TimerId::index

  // Signals
  std::vector<SignalSlot> signal_slots;
  std::vector<std::uint32_t> free_signal_slots;
  std::array<int, signals::kMaxSignal + 1> signal_watchers{};  // per signal, in this loop
  int signal_target = -1;

  // Wake-up: an eventfd written by post(), stop() and the signal handler.
  int wake_fd = -1;
  IoWatcher wake_watcher;
  std::atomic<bool> wake_pending{false};

  // Posted tasks
  std::mutex post_mutex;
  std::vector<Task> posted;   // guarded by post_mutex
  std::vector<Task> running;  // loop thread only; swapped with `posted`
  std::atomic<bool> has_posted{false};

  // The process whose kernel state (backend, wake-up fd) this is: the creator, or the child
  // that called after_fork(). A forked child that never did shares the parent's.
  pid_t owner_pid = 0;

  std::atomic<bool> stop_requested{false};
  // The thread running this loop's callbacks (phases 2 to 6), or none. A thread id rather
  // than a flag so that after_fork() can tell a fork from inside one of the callbacks (this
  // thread keeps dispatching) from one made elsewhere (the dispatching thread is gone).
  std::thread::id dispatcher{};
  std::int64_t now_ns = 0;
  std::uint64_t iterations = 0;
};

}  // namespace reactor::detail
