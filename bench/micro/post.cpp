// SPDX-License-Identifier: MIT
// BM_Post: what Reactor::post() costs per task, all the way to the task running on the loop
// thread. cross_thread: a producer thread posts while the loop runs (the path every other
// thread uses to reach a loop: mutex, queue, eventfd wake-up). loop_thread: the loop posts
// to itself, then runs the batch.
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <optional>
#include <string>
#include <thread>

#include "bench/micro/bench.hpp"
#include "reactor/core/reactor.hpp"

namespace reactor::bench {

namespace {

// Tasks per benchmark iteration.
constexpr std::uint64_t kTasks = 10'000;

// A thread that posts kTasks tasks to `loop` each time go() is called. The tasks count into
// `ran`, which only the loop thread touches.
class Producer {
 public:
  Producer(Reactor& loop, std::uint64_t& ran)
      : thread_([this, &loop, &ran] {
          std::uint64_t seen = 0;
          for (;;) {
            round_.wait(seen);
            seen = round_.load();
            if (quit_.load()) return;
            for (std::uint64_t i = 0; i < kTasks; ++i) loop.post([&ran] { ++ran; });
          }
        }) {}
  ~Producer() {
    quit_.store(true);
    go();
    thread_.join();
  }
  Producer(const Producer&) = delete;
  Producer& operator=(const Producer&) = delete;

  void go() noexcept {
    round_.fetch_add(1);
    round_.notify_one();
  }

 private:
  std::atomic<std::uint64_t> round_{0};
  std::atomic<bool> quit_{false};
  std::thread thread_;  // last: starts after the atomics exist
};

void post_cross_thread(benchmark::State& state, const std::string& backend) {
  std::optional<Reactor> loop;
  try {
    loop.emplace(backend);
  } catch (const std::exception& e) {
    state.SkipWithError(e.what());
    return;
  }
  std::uint64_t ran = 0;
  Producer producer(*loop, ran);
  // The loop runs until a round's tasks have all run; only then does the next round start,
  // so the producer is idle between rounds and never outlives its tasks' target.
  const auto round = [&] {
    const std::uint64_t target = ran + kTasks;
    producer.go();
    while (ran < target) loop->run_once();
  };
  try {
    round();  // warm-up: grow the queues to their steady size
    const std::uint64_t first = ran;
    const std::int64_t start = now_ns();
    for (auto _ : state) round();
    report_per_unit(state, "ns_per_task", now_ns() - start, ran - first);
  } catch (const std::exception& e) {
    state.SkipWithError(e.what());
  }
}

void post_loop_thread(benchmark::State& state, const std::string& backend) {
  std::optional<Reactor> loop;
  try {
    loop.emplace(backend);
  } catch (const std::exception& e) {
    state.SkipWithError(e.what());
    return;
  }
  std::uint64_t ran = 0;
  const auto round = [&] {
    const std::uint64_t target = ran + kTasks;
    for (std::uint64_t i = 0; i < kTasks; ++i) loop->post([&ran] { ++ran; });
    while (ran < target) loop->run_once();
  };
  try {
    round();
    const std::uint64_t first = ran;
    const std::int64_t start = now_ns();
    for (auto _ : state) round();
    report_per_unit(state, "ns_per_task", now_ns() - start, ran - first);
  } catch (const std::exception& e) {
    state.SkipWithError(e.what());
  }
}

}  // namespace

void register_post() {
  for (const std::string& backend : available_backends()) {
    benchmark::RegisterBenchmark(
        ("BM_Post/cross_thread/" + backend).c_str(),
        [backend](benchmark::State& state) { post_cross_thread(state, backend); })
        ->UseRealTime()
        ->Unit(benchmark::kMicrosecond);
  }
  for (const std::string& backend : available_backends()) {
    benchmark::RegisterBenchmark(
        ("BM_Post/loop_thread/" + backend).c_str(),
        [backend](benchmark::State& state) { post_loop_thread(state, backend); })
        ->UseRealTime()
        ->Unit(benchmark::kMicrosecond);
  }
}

}  // namespace reactor::bench
