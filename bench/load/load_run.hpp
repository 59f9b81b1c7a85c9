// SPDX-License-Identifier: MIT
#pragma once
/// \file
/// One run of the load generator, start to end, on its own small epoll loop:
///
///   setup    open the idle connections, then the active ones (batched; bounded by
///            --connect-timeout); idle ones are then left alone until the end
///   warm-up  traffic as in the window, not counted
///   window   --seconds of traffic; counters, latencies and CPU samples cover exactly this
///   drain    nothing new is sent; what is in flight must come back within --grace, or the
///            connection counts as stalled (this is how lost bytes show up)
///   check    idle connections must still be open and silent; everything is closed
///
/// A connection the server closes or resets counts as an error and is not replaced (connect
/// mode: the slot starts a new cycle after 1 ms). When no active connection is left the window
/// ends early. The whole run is bounded by connect-timeout + warmup + seconds + grace.

#include <cstdint>
#include <optional>
#include <vector>

#include "bench/load/clocks.hpp"
#include "bench/load/endpoint.hpp"
#include "bench/load/histogram.hpp"
#include "bench/load/options.hpp"
#include "bench/load/poller.hpp"
#include "bench/load/report.hpp"

namespace reactor::bench::load {

/// A configured run. Single-threaded; run() once.
class LoadRun {
 public:
  /// Throws std::runtime_error if RLIMIT_NOFILE cannot hold idle + conns connections or
  /// --server-pid names no readable process, std::system_error if epoll cannot be created.
  LoadRun(const Options& options, Endpoint endpoint);
  ~LoadRun();
  LoadRun(const LoadRun&) = delete;
  LoadRun& operator=(const LoadRun&) = delete;

  /// Runs every phase and returns what was measured. Throws PayloadMismatch when an echo
  /// differs from what was sent, std::system_error if epoll_wait fails.
  Report run();

 private:
  struct Slot;
  enum class Phase : std::uint8_t { kWarmup, kMeasure, kDrain };
  using ErrorKind = std::uint64_t ErrorCounts::*;

  void setup();
  void kick(std::uint32_t index, std::uint64_t now);
  void begin_measure(std::uint64_t now);
  void end_measure(std::uint64_t now);
  bool settled() const noexcept;
  Report finish();

  void dispatch(const PollEvent& event);
  void on_stream_event(std::uint32_t index, const PollEvent& event);
  void on_cycle_event(std::uint32_t index, const PollEvent& event);
  bool flush(std::uint32_t index);
  void start_cycle(std::uint32_t index, std::uint64_t now);
  void finish_cycle(std::uint32_t index, std::uint64_t now);
  void retry_later(std::uint32_t index, std::uint64_t at);
  void run_retries(std::uint64_t now);
  void drop(std::uint32_t index, ErrorKind kind, const std::string& why);
  void close_slot(std::uint32_t index) noexcept;
  void error(ErrorKind kind, const std::string& why);
  std::uint64_t token(std::uint32_t index) const noexcept;

  Options options_;
  Endpoint endpoint_;
  Poller poller_;
  std::vector<Slot> slots_;
  std::vector<int> idle_fds_;
  std::vector<std::uint8_t> scratch_;
  std::vector<std::uint32_t> retry_;  // connect mode: slots waiting to start a cycle
  std::vector<std::uint32_t> due_;
  LatencyHistogram histogram_;
  Report report_;

  Phase phase_ = Phase::kWarmup;
  bool measuring_ = false;
  bool sending_ = true;
  std::size_t live_ = 0;  // pingpong/stream: connections still open
  std::uint64_t next_serial_ = 0;
  std::uint64_t warmup_end_ = 0, window_start_ = 0, window_end_ = 0, window_stop_ = 0;
  std::uint64_t drain_deadline_ = 0;
  std::uint64_t client_cpu_start_ = 0;
  std::optional<CpuSample> server_cpu_start_;
};

}  // namespace reactor::bench::load
