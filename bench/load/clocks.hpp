// SPDX-License-Identifier: MIT
#pragma once
/// \file
/// The clocks a run reads: wall time for the window and latencies, CPU time for costs.

#include <cstdint>
#include <optional>
#include <vector>

namespace reactor::bench::load {

/// CLOCK_MONOTONIC in nanoseconds.
std::uint64_t now_ns() noexcept;

/// Seconds (as given on the command line) in nanoseconds.
std::uint64_t seconds_to_ns(double seconds) noexcept;

/// One reading of a process's CPU time, taken twice to cost a window.
struct CpuSample {
  /// utime + stime + cutime + cstime from /proc/PID/stat, in microseconds: every thread,
  /// living or exited, and every child the process has reaped; clock-tick resolution
  /// (usually 10 ms).
  std::uint64_t ticks_us = 0;
  /// The sum of the first field of /proc/PID/task/*/schedstat (time on a CPU), in
  /// nanoseconds: exact, but only for the threads alive now.
  std::uint64_t threads_ns = 0;
  /// The thread ids summed in threads_ns, sorted; empty if schedstat was unreadable.
  std::vector<int> tids;
  /// cutime + cstime alone (microseconds): reaped children's share of ticks_us.
  std::uint64_t children_us = 0;
};

/// Reads process `pid`'s CPU time. nullopt if the process is gone or /proc unreadable.
std::optional<CpuSample> sample_process_cpu(int pid) noexcept;

/// The CPU time spent between two samples of one process, in microseconds. Exact (from
/// schedstat) when the same threads were alive at both ends and no child was reaped in
/// between; otherwise from clock ticks, which counts exited threads and reaped children
/// too (`*exact` tells which, when given).
std::uint64_t cpu_us_between(const CpuSample& from, const CpuSample& to,
                             bool* exact = nullptr) noexcept;

/// User + system CPU time of this process so far (getrusage), in microseconds.
std::uint64_t self_cpu_us() noexcept;

}  // namespace reactor::bench::load
