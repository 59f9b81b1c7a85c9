// SPDX-License-Identifier: MIT
#include "reactor/core/detail/timer_heap.hpp"

#include <algorithm>

namespace reactor::detail {

namespace {
constexpr std::uint32_t kArity = 4;
}

TimerId TimerHeap::add(std::int64_t deadline) {
  // Reserve first so that nothing below can throw half-way, and so that reschedule(), which
  // is noexcept, always finds room: the heap never holds more nodes than there are slots.
  if (free_.empty()) {
    if (slots_.size() == slots_.capacity()) {
      // Geometric growth (reserve alone grows to exactly what is asked: quadratic).
      const std::size_t grown = std::max<std::size_t>(16, slots_.capacity() * 2);
      slots_.reserve(grown);
      heap_.reserve(grown);
      free_.reserve(grown);
    }
    slots_.emplace_back();
    free_.push_back(static_cast<std::uint32_t>(slots_.size() - 1));
  }
  const std::uint32_t index = free_.back();
  free_.pop_back();
  Slot& slot = slots_[index];
  slot.alive = true;
  ++alive_;
  push(index, deadline);
  return TimerId{index, slot.generation};
}

bool TimerHeap::valid_id(TimerId id) const noexcept {
  return id.index < slots_.size() && slots_[id.index].alive &&
         slots_[id.index].generation == id.generation;
}

bool TimerHeap::alive(TimerId id) const noexcept { return valid_id(id); }

bool TimerHeap::scheduled(TimerId id) const noexcept {
  return valid_id(id) && slots_[id.index].heap_pos != kNotInHeap;
}

std::int64_t TimerHeap::deadline(TimerId id) const noexcept {
  return valid_id(id) ? slots_[id.index].deadline : 0;
}

bool TimerHeap::cancel(TimerId id) noexcept {
  if (!valid_id(id)) return false;
  if (slots_[id.index].heap_pos != kNotInHeap) erase_at(slots_[id.index].heap_pos);
  return release(id);
}

bool TimerHeap::release(TimerId id) noexcept {
  if (!valid_id(id) || slots_[id.index].heap_pos != kNotInHeap) return false;
  Slot& slot = slots_[id.index];
  slot.alive = false;
  ++slot.generation;
  --alive_;
  free_.push_back(id.index);  // capacity reserved in add()
  return true;
}

bool TimerHeap::reschedule(TimerId id, std::int64_t deadline) noexcept {
  if (!valid_id(id) || slots_[id.index].heap_pos != kNotInHeap) return false;
  push(id.index, deadline);
  return true;
}

std::optional<std::int64_t> TimerHeap::next_deadline() const noexcept {
  if (heap_.empty()) return std::nullopt;
  return heap_.front().deadline;
}

std::optional<TimerId> TimerHeap::pop_due(std::int64_t now, std::uint64_t sequence_limit) noexcept {
  if (heap_.empty()) return std::nullopt;
  const Node& top = heap_.front();
  if (top.deadline > now || top.sequence >= sequence_limit) return std::nullopt;
  const std::uint32_t index = top.index;
  erase_at(0);
  return TimerId{index, slots_[index].generation};
}

void TimerHeap::push(std::uint32_t index, std::int64_t deadline) noexcept {
  slots_[index].deadline = deadline;
  heap_.push_back(Node{deadline, next_sequence_++, index});
  const auto pos = static_cast<std::uint32_t>(heap_.size() - 1);
  slots_[index].heap_pos = pos;
  sift_up(pos);
}

void TimerHeap::erase_at(std::uint32_t pos) noexcept {
  slots_[heap_[pos].index].heap_pos = kNotInHeap;
  const Node last = heap_.back();
  heap_.pop_back();
  if (pos == heap_.size()) return;
  place(pos, last);
  // The moved node may belong above or below its new place.
  if (pos > 0 && before(last, heap_[(pos - 1) / kArity])) {
    sift_up(pos);
  } else {
    sift_down(pos);
  }
}

void TimerHeap::place(std::uint32_t pos, const Node& node) noexcept {
  heap_[pos] = node;
  slots_[node.index].heap_pos = pos;
}

void TimerHeap::sift_up(std::uint32_t pos) noexcept {
  const Node node = heap_[pos];
  while (pos > 0) {
    const std::uint32_t parent = (pos - 1) / kArity;
    if (!before(node, heap_[parent])) break;
    place(pos, heap_[parent]);
    pos = parent;
  }
  place(pos, node);
}

void TimerHeap::sift_down(std::uint32_t pos) noexcept {
  const Node node = heap_[pos];
  const auto size = static_cast<std::uint32_t>(heap_.size());
  for (;;) {
    const std::uint32_t first = pos * kArity + 1;
    if (first >= size) break;
    const std::uint32_t end = first + kArity < size ? first + kArity : size;
    std::uint32_t best = first;
    for (std::uint32_t c = first + 1; c < end; ++c) {
      if (before(heap_[c], heap_[best])) best = c;
    }
    if (!before(heap_[best], node)) break;
    place(pos, heap_[best]);
    pos = best;
  }
  place(pos, node);
}

bool TimerHeap::valid() const noexcept {
  std::size_t alive = 0;
  for (const Slot& s : slots_) alive += s.alive ? 1 : 0;
  if (alive != alive_) return false;
  for (std::uint32_t pos = 0; pos < heap_.size(); ++pos) {
    const Node& n = heap_[pos];
    if (n.index >= slots_.size()) return false;
    const Slot& s = slots_[n.index];
    if (!s.alive || s.heap_pos != pos || s.deadline != n.deadline) return false;
    if (pos > 0 && before(n, heap_[(pos - 1) / kArity])) return false;
  }
  return true;
}

}  // namespace reactor::detail
