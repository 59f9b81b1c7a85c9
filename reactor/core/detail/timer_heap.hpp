// SPDX-License-Identifier: MIT
#pragma once
/// The loop's timer queue: a 4-ary min-heap of deadlines with stable ids, so that a timer can
/// be cancelled in O(log n) and a stale id (cancelled, fired and reused) is recognised by its
/// generation. It knows nothing of callbacks: the Reactor keeps those beside it, by index.
///
/// Order: earliest deadline first; equal deadlines in the order they were scheduled
/// (a sequence number, also used to keep timers scheduled during a firing pass out of it).
/// Deadlines are int64 nanoseconds on the caller's clock.
///
/// Lifecycle of an id: add() -> [in heap] -> pop_due() -> [fired: out of heap, id still
/// alive] -> reschedule() back into the heap, or release(). cancel() = remove from the heap
/// if there, then release. A released id's generation changes, so alive() on it is false.

#include <cstdint>
#include <optional>
#include <vector>

namespace reactor::detail {

struct TimerId {
  std::uint32_t index = 0;
  std::uint32_t generation = 0;
  friend bool operator==(TimerId, TimerId) = default;
};

class TimerHeap {
 public:
  /// Schedules a new timer. May throw std::bad_alloc (the heap is unchanged then).
  TimerId add(std::int64_t deadline);
  /// Removes the timer wherever it is and frees its id. False (a no-op) for a stale id.
  bool cancel(TimerId id) noexcept;
  /// Puts a fired, still alive timer back with a new deadline. False for a stale id or one
  /// that is still in the heap.
  bool reschedule(TimerId id, std::int64_t deadline) noexcept;
  /// Frees a fired timer's id. False for a stale id.
  bool release(TimerId id) noexcept;

  /// The earliest deadline, if any timer is scheduled.
  std::optional<std::int64_t> next_deadline() const noexcept;
  /// Takes the earliest timer out of the heap if its deadline is <= now and it was scheduled
  /// before `sequence_limit` (see sequence()). The id stays alive until released.
  std::optional<TimerId> pop_due(std::int64_t now, std::uint64_t sequence_limit) noexcept;
  /// The sequence number the next add()/reschedule() will get.
  std::uint64_t sequence() const noexcept { return next_sequence_; }

  bool alive(TimerId id) const noexcept;
  bool scheduled(TimerId id) const noexcept;
  /// The deadline of an alive timer (its last one, if it has fired).
  std::int64_t deadline(TimerId id) const noexcept;
  /// Timers scheduled (in the heap).
  std::size_t size() const noexcept { return heap_.size(); }
  /// Ids alive (scheduled or fired and not released).
  std::size_t alive_count() const noexcept { return alive_; }
  /// Calls `f(id)` for every timer alive but not in the heap: fired, its callback running.
  template <class F>
  void for_each_fired(F f) const {
    for (std::uint32_t i = 0; i < slots_.size(); ++i) {
      if (slots_[i].alive && slots_[i].heap_pos == kNotInHeap) f(TimerId{i, slots_[i].generation});
    }
  }
  /// Checks the heap property and the index links; for tests.
  bool valid() const noexcept;

 private:
  static constexpr std::uint32_t kNotInHeap = UINT32_MAX;
  struct Node {
    std::int64_t deadline;
    std::uint64_t sequence;
    std::uint32_t index;
  };
  struct Slot {
    std::int64_t deadline = 0;
    std::uint32_t heap_pos = kNotInHeap;
    std::uint32_t generation = 1;
    bool alive = false;
  };

  static bool before(const Node& a, const Node& b) noexcept {
    return a.deadline < b.deadline || (a.deadline == b.deadline && a.sequence < b.sequence);
  }
  bool valid_id(TimerId id) const noexcept;
  void push(std::uint32_t index, std::int64_t deadline) noexcept;
  void erase_at(std::uint32_t pos) noexcept;
  void sift_up(std::uint32_t pos) noexcept;
  void sift_down(std::uint32_t pos) noexcept;
  void place(std::uint32_t pos, const Node& node) noexcept;

  std::vector<Node> heap_;
  std::vector<Slot> slots_;
  std::vector<std::uint32_t> free_;
  std::uint64_t next_sequence_ = 0;
  std::size_t alive_ = 0;
};

}  // namespace reactor::detail
