#pragma once
/// \file
/// The clocks a run reads: wall time for the window and latencies, CPU time for costs.

#include <cstdint>
#include <optional>

namespace reactor::bench::load {

/// CLOCK_MONOTONIC in nanoseconds.
std::uint64_t now_ns() noexcept;

/// Seconds (as given on the command line) in nanoseconds.
std::uint64_t seconds_to_ns(double seconds) noexcept;

/// User + system CPU time of process `pid` (all its threads), from utime and stime in
/// /proc/PID/stat, converted from clock ticks (usually 10 ms) to microseconds. nullopt if the
/// process is gone or the file unreadable.
std::optional<std::uint64_t> process_cpu_us(int pid) noexcept;

/// User + system CPU time of this process so far (getrusage), in microseconds.
std::uint64_t self_cpu_us() noexcept;

}  // namespace reactor::bench::load
