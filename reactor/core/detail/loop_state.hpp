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
#include "reactor/core/detail/io_callable.hpp"
#include "reactor/core/detail/loop_ref.hpp"
#include "reactor/core/detail/signal_registry.hpp"
#include "reactor/core/detail/timer_heap.hpp"
#include "reactor/core/io_watcher.hpp"
#include "reactor/core/reactor.hpp"

namespace reactor::detail {

/// The fd registrations, indexed by fd, in chunks that never move once made: a handler is
/// called where it lies, even while its call watches new fds and grows the table. Per fd:
/// the handler (24 bytes), a generation and one byte of state, in three arrays per chunk
/// (29 bytes, no padding). The generation changes on every watch and unwatch and travels to
/// the kernel inside the token, so a stale event never matches.
class IoTable {
 public:
  static constexpr std::size_t kChunk = 256;

  /// Fds below this have a slot.
  std::size_t size() const noexcept { return chunks_.size() * kChunk; }
  /// Makes a slot for `fd`. Throws std::bad_alloc.
  void grow_to(std::size_t fd) {
    while (fd >= size()) chunks_.push_back(std::make_unique<Chunk>());
  }

  IoCallable& handler(std::size_t fd) noexcept { return chunk(fd).handler[fd % kChunk]; }
  std::uint32_t generation(std::size_t fd) const noexcept {
    return chunk(fd).generation[fd % kChunk];
  }
  bool active(std::size_t fd) const noexcept {
    return (chunk(fd).state[fd % kChunk] & kActive) != 0;
  }
  Interest interest(std::size_t fd) const noexcept {
    return static_cast<Interest>(chunk(fd).state[fd % kChunk] & kInterestBits);
  }
  /// Whether `fd` has a live registration of `generation`.
  bool live(std::size_t fd, std::uint32_t generation) const noexcept {
    if (fd >= size()) return false;
    const Chunk& c = chunk(fd);
    return (c.state[fd % kChunk] & kActive) != 0 && c.generation[fd % kChunk] == generation;
  }

  /// A new registration (the next generation) with `interest`; the handler is set apart.
  void activate(std::size_t fd, std::uint32_t generation, Interest interest) noexcept {
    Chunk& c = chunk(fd);
    c.generation[fd % kChunk] = generation;
    c.state[fd % kChunk] = static_cast<std::uint8_t>((c.state[fd % kChunk] & kServed) | kActive |
                                                     static_cast<std::uint8_t>(interest));
  }
  void set_interest(std::size_t fd, Interest interest) noexcept {
    Chunk& c = chunk(fd);
    c.state[fd % kChunk] = static_cast<std::uint8_t>((c.state[fd % kChunk] & ~kInterestBits) |
                                                     static_cast<std::uint8_t>(interest));
  }
  /// Marks for a round of several batches in one iteration: served already in this round.
  bool served(std::size_t fd) const noexcept {
    return (chunk(fd).state[fd % kChunk] & kServed) != 0;
  }
  void set_served(std::size_t fd, bool on) noexcept {
    Chunk& c = chunk(fd);
    c.state[fd % kChunk] = static_cast<std::uint8_t>(on ? (c.state[fd % kChunk] | kServed)
                                                        : (c.state[fd % kChunk] & ~kServed));
  }
  /// Ends the registration: inactive, and a new generation so that its events go stale.
  void deactivate(std::size_t fd) noexcept {
    Chunk& c = chunk(fd);
    c.state[fd % kChunk] &= kServed;
    ++c.generation[fd % kChunk];
  }

 private:
  static constexpr std::uint8_t kInterestBits = 3;
  static constexpr std::uint8_t kActive = 4;
  static constexpr std::uint8_t kServed = 8;

  struct Chunk {
    IoCallable handler[kChunk];
    std::uint32_t generation[kChunk] = {};
    std::uint8_t state[kChunk] = {};  // interest bits | kActive
  };

  Chunk& chunk(std::size_t fd) noexcept { return *chunks_[fd / kChunk]; }
  const Chunk& chunk(std::size_t fd) const noexcept { return *chunks_[fd / kChunk]; }

  std::vector<std::unique_ptr<Chunk>> chunks_;
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

/// At most this many ready fds are taken per wait (as libuv does): the batch's memory does
/// not grow with the number of fds watched. The rest are still ready (level-triggered), and
/// every backend serves them in the next waits without starving any.
constexpr std::size_t kMaxBatch = 1024;

struct LoopState {
  std::unique_ptr<Backend> backend;
  LoopRef self;

  // I/O
  IoTable io;                    // by fd
  std::vector<Readiness> ready;  // the batch: capacity min(kMaxBatch, 2 x registered), >= 64
  std::size_t registered = 0;    // active io slots, the wake-up fd included
  // The fd whose handler is being called (-1: none) and the generation it was called for.
  // While it runs, its handler stays in its slot; a handler for a new watch of that same fd
  // made meanwhile waits in `parked` until the call returns.
  int running_fd = -1;
  std::uint32_t running_generation = 0;
  IoCallable parked;
  // The fds served in this iteration while it takes more than one batch (see dispatch_io).
  std::vector<int> served;

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
