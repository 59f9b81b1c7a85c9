// SPDX-License-Identifier: MIT
#pragma once
/// \file
/// What the benchmark files share: registration entry points (main.cpp calls them at run
/// time, because the backend list is only known then), the fd limit, and a stopwatch.
///
/// Every benchmark reports its own cost per unit of work as a plain counter (ns_per_event,
/// ns_per_task, ns_per_op), measured around the timed region only, so that the figure does
/// not depend on how Google Benchmark turns counters into rates.

#include <benchmark/benchmark.h>
#include <time.h>

#include <chrono>
#include <cstdint>
#include <string>

namespace reactor::bench {

/// Registers BM_Dispatch/<backend>/P:<pairs>/A:<active> for every backend and raw_epoll.
void register_dispatch();
/// Registers BM_Post/<from>/<backend>.
void register_post();
/// Registers BM_Timers/... (epoll loop and the bare TimerHeap).
void register_timers();

/// The soft RLIMIT_NOFILE in force (main() raises it as far as it can first).
std::uint64_t fd_limit() noexcept;

/// Monotonic nanoseconds.
inline std::int64_t now_ns() noexcept {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

/// CPU time of the calling thread, user and kernel, in nanoseconds. On a shared machine it
/// leaves out the time other processes take from us, which wall time does not.
inline std::int64_t thread_cpu_ns() noexcept {
  timespec ts{};
  ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return std::int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}

/// Accumulates the time of timed regions only (for benchmarks that pause the timer).
class Stopwatch {
 public:
  void start() noexcept { started_ = now_ns(); }
  void stop() noexcept { total_ += now_ns() - started_; }
  std::int64_t total_ns() const noexcept { return total_; }

 private:
  std::int64_t started_ = 0;
  std::int64_t total_ = 0;
};

/// Sets items_per_second and the plain counter `name` = elapsed / units (ns per unit).
inline void report_per_unit(benchmark::State& state, const char* name, std::int64_t elapsed_ns,
                            std::uint64_t units) {
  if (units == 0) return;
  state.SetItemsProcessed(static_cast<std::int64_t>(units));
  state.counters[name] = static_cast<double>(elapsed_ns) / static_cast<double>(units);
}

}  // namespace reactor::bench
