// SPDX-License-Identifier: MIT
// Pure unit tests of reactor::detail::TimerHeap (no loop, no backend).
#include "reactor/core/detail/timer_heap.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <limits>
#include <map>
#include <numeric>
#include <optional>
#include <random>
#include <set>
#include <utility>
#include <vector>

namespace {

using reactor::detail::TimerHeap;
using reactor::detail::TimerId;

constexpr std::int64_t kForever = std::numeric_limits<std::int64_t>::max();
constexpr std::uint64_t kAnySequence = std::numeric_limits<std::uint64_t>::max();

/// Pops everything due at `now` (no sequence limit), in order.
std::vector<TimerId> pop_all(TimerHeap& heap, std::int64_t now = kForever) {
  std::vector<TimerId> out;
  while (auto id = heap.pop_due(now, kAnySequence)) {
    out.push_back(*id);
    EXPECT_TRUE(heap.valid());
  }
  return out;
}

TEST(TimerHeapTest, EmptyHeap) {
  TimerHeap heap;
  EXPECT_TRUE(heap.valid());
  EXPECT_EQ(heap.size(), 0u);
  EXPECT_EQ(heap.alive_count(), 0u);
  EXPECT_FALSE(heap.next_deadline().has_value());
  EXPECT_FALSE(heap.pop_due(kForever, kAnySequence).has_value());
  EXPECT_FALSE(heap.cancel(TimerId{}));
  EXPECT_FALSE(heap.release(TimerId{}));
  EXPECT_FALSE(heap.reschedule(TimerId{}, 1));
  EXPECT_FALSE(heap.alive(TimerId{0, 1}));
  EXPECT_FALSE(heap.scheduled(TimerId{5, 1}));
}

TEST(TimerHeapTest, PopsInDeadlineOrder) {
  TimerHeap heap;
  std::vector<std::int64_t> deadlines(1000);
  std::iota(deadlines.begin(), deadlines.end(), -500);
  std::mt19937 rng(1);
  std::shuffle(deadlines.begin(), deadlines.end(), rng);
  std::map<std::uint32_t, std::int64_t> by_index;
  for (std::int64_t d : deadlines) {
    TimerId id = heap.add(d);
    by_index[id.index] = d;
    ASSERT_TRUE(heap.valid());
  }
  EXPECT_EQ(heap.size(), 1000u);
  EXPECT_EQ(heap.alive_count(), 1000u);
  ASSERT_TRUE(heap.next_deadline().has_value());
  EXPECT_EQ(*heap.next_deadline(), -500);

  std::vector<TimerId> popped = pop_all(heap);
  ASSERT_EQ(popped.size(), 1000u);
  for (std::size_t i = 0; i < popped.size(); ++i) {
    EXPECT_EQ(by_index[popped[i].index], static_cast<std::int64_t>(i) - 500);
    EXPECT_EQ(heap.deadline(popped[i]), static_cast<std::int64_t>(i) - 500);
  }
  // Popped ids stay alive until released.
  EXPECT_EQ(heap.size(), 0u);
  EXPECT_EQ(heap.alive_count(), 1000u);
  for (TimerId id : popped) {
    EXPECT_TRUE(heap.alive(id));
    EXPECT_FALSE(heap.scheduled(id));
    EXPECT_TRUE(heap.release(id));
  }
  EXPECT_EQ(heap.alive_count(), 0u);
  EXPECT_TRUE(heap.valid());
}

TEST(TimerHeapTest, PopDueRespectsNow) {
  TimerHeap heap;
  TimerId a = heap.add(10);
  TimerId b = heap.add(20);
  TimerId c = heap.add(30);
  EXPECT_FALSE(heap.pop_due(9, kAnySequence).has_value());
  EXPECT_EQ(heap.pop_due(10, kAnySequence), std::optional<TimerId>(a));
  EXPECT_FALSE(heap.pop_due(19, kAnySequence).has_value());
  EXPECT_EQ(heap.pop_due(25, kAnySequence), std::optional<TimerId>(b));
  EXPECT_FALSE(heap.pop_due(25, kAnySequence).has_value());
  EXPECT_EQ(heap.size(), 1u);
  EXPECT_EQ(*heap.next_deadline(), 30);
  EXPECT_EQ(heap.pop_due(kForever, kAnySequence), std::optional<TimerId>(c));
  EXPECT_TRUE(heap.valid());
}

TEST(TimerHeapTest, ExtremeDeadlines) {
  TimerHeap heap;
  constexpr std::int64_t kMin = std::numeric_limits<std::int64_t>::min();
  TimerId late = heap.add(kForever);
  TimerId early = heap.add(kMin);
  TimerId zero = heap.add(0);
  EXPECT_EQ(*heap.next_deadline(), kMin);
  EXPECT_EQ(heap.pop_due(kMin, kAnySequence), std::optional<TimerId>(early));
  EXPECT_FALSE(heap.pop_due(-1, kAnySequence).has_value());
  EXPECT_EQ(heap.pop_due(0, kAnySequence), std::optional<TimerId>(zero));
  EXPECT_FALSE(heap.pop_due(kForever - 1, kAnySequence).has_value());
  EXPECT_EQ(heap.pop_due(kForever, kAnySequence), std::optional<TimerId>(late));
  EXPECT_TRUE(heap.valid());
}

TEST(TimerHeapTest, TiesPopInInsertionOrder) {
  TimerHeap heap;
  std::vector<TimerId> added;
  for (int i = 0; i < 500; ++i) added.push_back(heap.add(42));
  std::vector<TimerId> popped = pop_all(heap);
  EXPECT_EQ(popped, added);
}

TEST(TimerHeapTest, TiesAmongDistinctDeadlinesKeepInsertionOrder) {
  TimerHeap heap;
  std::mt19937 rng(7);
  std::uniform_int_distribution<int> pick(0, 9);
  std::vector<std::vector<TimerId>> by_deadline(10);
  for (int i = 0; i < 2000; ++i) {
    int d = pick(rng);
    by_deadline[d].push_back(heap.add(d));
  }
  std::vector<TimerId> expected;
  for (auto& group : by_deadline) expected.insert(expected.end(), group.begin(), group.end());
  EXPECT_EQ(pop_all(heap), expected);
}

TEST(TimerHeapTest, CancelFromTheMiddle) {
  TimerHeap heap;
  std::vector<TimerId> ids;
  for (int i = 0; i < 100; ++i) ids.push_back(heap.add(i));
  // Every third timer, starting inside the heap (not the root, not the last leaf).
  std::set<int> cancelled;
  for (int i = 1; i < 99; i += 3) {
    EXPECT_TRUE(heap.cancel(ids[i]));
    cancelled.insert(i);
    EXPECT_FALSE(heap.alive(ids[i]));
    EXPECT_FALSE(heap.scheduled(ids[i]));
    ASSERT_TRUE(heap.valid());
  }
  EXPECT_EQ(heap.size(), 100u - cancelled.size());
  EXPECT_EQ(heap.alive_count(), 100u - cancelled.size());
  std::vector<TimerId> popped = pop_all(heap);
  std::vector<TimerId> expected;
  for (int i = 0; i < 100; ++i) {
    if (!cancelled.count(i)) expected.push_back(ids[i]);
  }
  EXPECT_EQ(popped, expected);
}

TEST(TimerHeapTest, CancelRootAndLastLeaf) {
  TimerHeap heap;
  std::vector<TimerId> ids;
  for (int i = 0; i < 20; ++i) ids.push_back(heap.add(i));
  EXPECT_TRUE(heap.cancel(ids[0]));  // the root
  EXPECT_EQ(*heap.next_deadline(), 1);
  EXPECT_TRUE(heap.cancel(ids[19]));  // the largest
  EXPECT_TRUE(heap.valid());
  std::vector<TimerId> popped = pop_all(heap);
  EXPECT_EQ(popped, std::vector<TimerId>(ids.begin() + 1, ids.end() - 1));
}

TEST(TimerHeapTest, CancelTwiceIsANoOp) {
  TimerHeap heap;
  TimerId a = heap.add(1);
  TimerId b = heap.add(2);
  EXPECT_TRUE(heap.cancel(a));
  EXPECT_FALSE(heap.cancel(a));
  EXPECT_FALSE(heap.release(a));
  EXPECT_FALSE(heap.reschedule(a, 5));
  EXPECT_TRUE(heap.valid());
  EXPECT_TRUE(heap.scheduled(b));
  EXPECT_EQ(heap.size(), 1u);
  EXPECT_EQ(heap.alive_count(), 1u);
  EXPECT_EQ(pop_all(heap), std::vector<TimerId>{b});
}

TEST(TimerHeapTest, CancelOfAFiredTimerFreesIt) {
  TimerHeap heap;
  TimerId a = heap.add(1);
  ASSERT_EQ(heap.pop_due(1, kAnySequence), std::optional<TimerId>(a));
  EXPECT_TRUE(heap.alive(a));
  EXPECT_EQ(heap.alive_count(), 1u);
  EXPECT_TRUE(heap.cancel(a));  // fired but alive: cancel releases it
  EXPECT_FALSE(heap.alive(a));
  EXPECT_EQ(heap.alive_count(), 0u);
  EXPECT_FALSE(heap.cancel(a));
  EXPECT_TRUE(heap.valid());
}

TEST(TimerHeapTest, StaleIdsAfterRelease) {
  TimerHeap heap;
  TimerId a = heap.add(1);
  TimerId other = heap.add(3);
  ASSERT_EQ(heap.pop_due(1, kAnySequence), std::optional<TimerId>(a));
  EXPECT_TRUE(heap.release(a));
  EXPECT_FALSE(heap.alive(a));
  EXPECT_FALSE(heap.release(a));
  EXPECT_FALSE(heap.cancel(a));
  EXPECT_FALSE(heap.reschedule(a, 2));
  EXPECT_TRUE(heap.scheduled(other));
  EXPECT_EQ(heap.size(), 1u);
  EXPECT_EQ(heap.alive_count(), 1u);
  EXPECT_TRUE(heap.valid());
}

TEST(TimerHeapTest, ReleaseOfAScheduledTimerIsRefused) {
  TimerHeap heap;
  TimerId a = heap.add(1);
  EXPECT_FALSE(heap.release(a));
  EXPECT_TRUE(heap.scheduled(a));
  EXPECT_EQ(heap.size(), 1u);
  EXPECT_TRUE(heap.valid());
}

TEST(TimerHeapTest, ReusedIndexGetsANewGeneration) {
  TimerHeap heap;
  TimerId keep = heap.add(kForever);
  std::map<std::uint32_t, std::set<std::uint32_t>> generations;
  std::vector<TimerId> stale;
  for (int i = 0; i < 1000; ++i) {
    TimerId id = heap.add(i);
    // A reused index never repeats a generation.
    EXPECT_TRUE(generations[id.index].insert(id.generation).second)
        << "index " << id.index << " generation " << id.generation << " handed out twice";
    for (TimerId old : stale) EXPECT_NE(old, id);
    if (i % 2 == 0) {
      ASSERT_TRUE(heap.cancel(id));
    } else {
      ASSERT_EQ(heap.pop_due(kForever - 1, heap.sequence()), std::optional<TimerId>(id));
      ASSERT_TRUE(heap.release(id));
    }
    if (stale.size() < 8) stale.push_back(id);
    // No stale id reaches the timer that now holds its index.
    for (TimerId old : stale) {
      EXPECT_FALSE(heap.alive(old));
      EXPECT_FALSE(heap.cancel(old));
    }
    ASSERT_TRUE(heap.valid());
  }
  // One timer alive at a time besides `keep`: the slot table is reused, not grown.
  EXPECT_LE(generations.size(), 2u);
  EXPECT_TRUE(heap.scheduled(keep));
  EXPECT_EQ(heap.alive_count(), 1u);

  // The reused index's new holder is untouched by the old id.
  TimerId a = heap.add(5);
  ASSERT_TRUE(heap.cancel(a));
  TimerId b = heap.add(6);
  if (b.index == a.index) {
    EXPECT_NE(b.generation, a.generation);
  }
  EXPECT_FALSE(heap.cancel(a));
  EXPECT_FALSE(heap.reschedule(a, 1));
  EXPECT_TRUE(heap.scheduled(b));
  EXPECT_EQ(heap.deadline(b), 6);
}

TEST(TimerHeapTest, PopDueRespectsSequenceLimit) {
  TimerHeap heap;
  TimerId a = heap.add(10);
  TimerId b = heap.add(10);
  const std::uint64_t limit = heap.sequence();
  TimerId c = heap.add(10);  // scheduled "during the pass": must wait
  TimerId d = heap.add(5);   // earlier deadline, but also after the limit
  EXPECT_EQ(heap.sequence(), limit + 2);

  // d is the earliest and excluded, so nothing comes out in this pass.
  EXPECT_FALSE(heap.pop_due(100, limit).has_value());
  EXPECT_EQ(heap.size(), 4u);
  EXPECT_TRUE(heap.valid());

  EXPECT_EQ(heap.pop_due(100, kAnySequence), std::optional<TimerId>(d));
  EXPECT_EQ(heap.pop_due(100, limit), std::optional<TimerId>(a));
  EXPECT_EQ(heap.pop_due(100, limit), std::optional<TimerId>(b));
  EXPECT_FALSE(heap.pop_due(100, limit).has_value());
  EXPECT_TRUE(heap.scheduled(c));
  EXPECT_EQ(heap.pop_due(100, heap.sequence()), std::optional<TimerId>(c));
  EXPECT_TRUE(heap.valid());
}

TEST(TimerHeapTest, RescheduledTimerWaitsForTheNextPass) {
  TimerHeap heap;
  TimerId a = heap.add(0);
  TimerId b = heap.add(0);
  const std::uint64_t limit = heap.sequence();
  ASSERT_EQ(heap.pop_due(0, limit), std::optional<TimerId>(a));
  // A repeating timer rescheduled with a deadline already due stays out of this pass.
  ASSERT_TRUE(heap.reschedule(a, 0));
  EXPECT_TRUE(heap.scheduled(a));
  EXPECT_EQ(heap.pop_due(0, limit), std::optional<TimerId>(b));
  EXPECT_FALSE(heap.pop_due(0, limit).has_value());
  EXPECT_EQ(heap.pop_due(0, heap.sequence()), std::optional<TimerId>(a));
}

TEST(TimerHeapTest, Reschedule) {
  TimerHeap heap;
  TimerId a = heap.add(10);
  TimerId b = heap.add(20);
  EXPECT_FALSE(heap.reschedule(a, 30)) << "still in the heap";
  EXPECT_EQ(heap.deadline(a), 10);

  ASSERT_EQ(heap.pop_due(10, kAnySequence), std::optional<TimerId>(a));
  EXPECT_EQ(heap.deadline(a), 10) << "a fired timer keeps its last deadline";
  ASSERT_TRUE(heap.reschedule(a, 30));
  EXPECT_TRUE(heap.scheduled(a));
  EXPECT_EQ(heap.deadline(a), 30);
  EXPECT_FALSE(heap.reschedule(a, 40)) << "already back in the heap";
  EXPECT_EQ(heap.size(), 2u);
  EXPECT_EQ(heap.alive_count(), 2u);
  EXPECT_TRUE(heap.valid());

  EXPECT_EQ(pop_all(heap), (std::vector<TimerId>{b, a}));

  // Rescheduled earlier than the rest: comes out first.
  TimerId c = heap.add(50);
  ASSERT_TRUE(heap.reschedule(b, 1));
  EXPECT_EQ(*heap.next_deadline(), 1);
  EXPECT_EQ(pop_all(heap), (std::vector<TimerId>{b, c}));

  // Rescheduled to the same deadline as a waiting timer: goes after it.
  TimerId d = heap.add(7);
  ASSERT_TRUE(heap.reschedule(a, 7));
  EXPECT_EQ(pop_all(heap), (std::vector<TimerId>{d, a}));
  EXPECT_TRUE(heap.valid());
}

// A reference model: scheduled timers ordered by (deadline, sequence), fired ids, stale ids.
struct Model {
  std::multimap<std::pair<std::int64_t, std::uint64_t>, TimerId> scheduled;
  std::vector<TimerId> fired;
  std::vector<TimerId> stale;
  std::uint64_t sequence = 0;
};

TEST(TimerHeapTest, RandomOperationsMatchAReferenceModel) {
  TimerHeap heap;
  Model model;
  std::mt19937_64 rng(12345);
  auto uniform = [&](std::int64_t lo, std::int64_t hi) {
    return std::uniform_int_distribution<std::int64_t>(lo, hi)(rng);
  };
  auto random_deadline = [&]() -> std::int64_t {
    switch (uniform(0, 50)) {
      case 0:
        return std::numeric_limits<std::int64_t>::max();
      case 1:
        return std::numeric_limits<std::int64_t>::min();
      default:
        return uniform(0, 200);  // a narrow range: plenty of ties
    }
  };

  constexpr int kOps = 100000;
  for (int op = 0; op < kOps; ++op) {
    const std::int64_t what = uniform(0, 99);
    // Grow while small, shrink while large, so the heap breathes between ~0 and ~400.
    const bool grow = model.scheduled.size() < 50 || (model.scheduled.size() < 400 && what < 45);
    if (grow && what < 60) {
      const std::int64_t d = random_deadline();
      TimerId id = heap.add(d);
      model.scheduled.emplace(std::make_pair(d, model.sequence++), id);
    } else if (what < 70) {
      // Cancel a scheduled, a fired or a stale id.
      const std::int64_t kind = uniform(0, 2);
      if (kind == 0 && !model.scheduled.empty()) {
        auto it = model.scheduled.begin();
        std::advance(it, uniform(0, static_cast<std::int64_t>(model.scheduled.size()) - 1));
        TimerId id = it->second;
        model.scheduled.erase(it);
        ASSERT_TRUE(heap.cancel(id)) << "op " << op;
        model.stale.push_back(id);
      } else if (kind == 1 && !model.fired.empty()) {
        const auto i =
            static_cast<std::size_t>(uniform(0, static_cast<std::int64_t>(model.fired.size()) - 1));
        TimerId id = model.fired[i];
        model.fired.erase(model.fired.begin() + static_cast<std::ptrdiff_t>(i));
        ASSERT_TRUE(heap.cancel(id)) << "op " << op;
        model.stale.push_back(id);
      } else if (!model.stale.empty()) {
        TimerId id = model.stale[static_cast<std::size_t>(
            uniform(0, static_cast<std::int64_t>(model.stale.size()) - 1))];
        ASSERT_FALSE(heap.cancel(id)) << "op " << op;
        ASSERT_FALSE(heap.release(id)) << "op " << op;
        ASSERT_FALSE(heap.reschedule(id, 0)) << "op " << op;
      }
    } else if (what < 85 && model.fired.size() < 200) {
      // pop_due with a random "now" and either no limit or an older sequence limit.
      const std::int64_t now = uniform(0, 3) == 0 ? random_deadline() : uniform(-10, 210);
      const std::uint64_t limit =
          uniform(0, 1) == 0
              ? model.sequence
              : model.sequence - std::min<std::uint64_t>(
                                     model.sequence, static_cast<std::uint64_t>(uniform(0, 300)));
      std::optional<TimerId> expected;
      if (!model.scheduled.empty()) {
        auto it = model.scheduled.begin();
        if (it->first.first <= now && it->first.second < limit) {
          expected = it->second;
          model.scheduled.erase(it);
          model.fired.push_back(*expected);
        }
      }
      ASSERT_EQ(heap.pop_due(now, limit), expected) << "op " << op;
    } else if (what < 93 && what >= 85) {
      // Reschedule a fired timer (or try a scheduled one, which must be refused).
      if (!model.fired.empty() && uniform(0, 4) != 0) {
        const auto i =
            static_cast<std::size_t>(uniform(0, static_cast<std::int64_t>(model.fired.size()) - 1));
        TimerId id = model.fired[i];
        model.fired.erase(model.fired.begin() + static_cast<std::ptrdiff_t>(i));
        const std::int64_t d = random_deadline();
        ASSERT_TRUE(heap.reschedule(id, d)) << "op " << op;
        model.scheduled.emplace(std::make_pair(d, model.sequence++), id);
      } else if (!model.scheduled.empty()) {
        TimerId id = model.scheduled.begin()->second;
        ASSERT_FALSE(heap.reschedule(id, 0)) << "op " << op;
        ASSERT_FALSE(heap.release(id)) << "op " << op;
      }
    } else {
      // Release a fired timer.
      if (!model.fired.empty()) {
        TimerId id = model.fired.back();
        model.fired.pop_back();
        ASSERT_TRUE(heap.release(id)) << "op " << op;
        model.stale.push_back(id);
      }
    }
    if (model.stale.size() > 64) model.stale.erase(model.stale.begin(), model.stale.begin() + 32);

    ASSERT_TRUE(heap.valid()) << "op " << op;
    ASSERT_EQ(heap.size(), model.scheduled.size()) << "op " << op;
    ASSERT_EQ(heap.alive_count(), model.scheduled.size() + model.fired.size()) << "op " << op;
    ASSERT_EQ(heap.sequence(), model.sequence) << "op " << op;
    if (model.scheduled.empty()) {
      ASSERT_FALSE(heap.next_deadline().has_value()) << "op " << op;
    } else {
      ASSERT_EQ(heap.next_deadline(), model.scheduled.begin()->first.first) << "op " << op;
    }
  }

  // Every id the model holds agrees with the heap.
  for (auto& [key, id] : model.scheduled) {
    EXPECT_TRUE(heap.scheduled(id));
    EXPECT_EQ(heap.deadline(id), key.first);
  }
  for (TimerId id : model.fired) {
    EXPECT_TRUE(heap.alive(id));
    EXPECT_FALSE(heap.scheduled(id));
  }
  for (TimerId id : model.stale) EXPECT_FALSE(heap.alive(id));

  // Drain: the rest comes out in model order.
  std::vector<TimerId> expected;
  for (auto& [key, id] : model.scheduled) expected.push_back(id);
  EXPECT_EQ(pop_all(heap), expected);
}

TEST(TimerHeapTest, MillionTimersInsertAndPop) {
  constexpr std::size_t kCount = 1000000;
  TimerHeap heap;
  std::mt19937_64 rng(99);
  std::uniform_int_distribution<std::int64_t> dist(0, 1000000);  // many ties
  std::vector<std::int64_t> deadline_of;                         // by index
  std::vector<std::uint32_t> rank_of;                            // insertion rank by index
  deadline_of.reserve(kCount);
  for (std::size_t i = 0; i < kCount; ++i) {
    const std::int64_t d = dist(rng);
    TimerId id = heap.add(d);
    if (id.index >= deadline_of.size()) {
      deadline_of.resize(id.index + 1);
      rank_of.resize(id.index + 1);
    }
    deadline_of[id.index] = d;
    rank_of[id.index] = static_cast<std::uint32_t>(i);
  }
  ASSERT_EQ(heap.size(), kCount);
  ASSERT_TRUE(heap.valid());

  std::size_t popped = 0;
  std::int64_t last_deadline = std::numeric_limits<std::int64_t>::min();
  std::uint32_t last_rank = 0;
  while (auto id = heap.pop_due(kForever, kAnySequence)) {
    const std::int64_t d = deadline_of[id->index];
    ASSERT_GE(d, last_deadline) << "out of order at " << popped;
    if (popped > 0 && d == last_deadline) {
      ASSERT_GT(rank_of[id->index], last_rank) << "tie out of insertion order at " << popped;
    }
    last_deadline = d;
    last_rank = rank_of[id->index];
    ASSERT_TRUE(heap.release(*id));
    ++popped;
  }
  EXPECT_EQ(popped, kCount);
  EXPECT_EQ(heap.size(), 0u);
  EXPECT_EQ(heap.alive_count(), 0u);
  EXPECT_TRUE(heap.valid());
}

}  // namespace
