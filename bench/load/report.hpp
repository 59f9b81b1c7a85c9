// SPDX-License-Identifier: MIT
#pragma once
/// \file
/// What a run measured, and its one-line JSON form (the tool's only stdout output).

#include <cstdint>
#include <optional>
#include <string>

namespace reactor::bench::load {

/// Failures seen during a run, by kind. Any of them makes the run exit 1.
struct ErrorCounts {
  std::uint64_t connect = 0;      ///< connects that failed or did not finish in time
  std::uint64_t reset = 0;        ///< ECONNRESET / EPIPE on an active connection
  std::uint64_t closed = 0;       ///< the server closed an active connection (EOF)
  std::uint64_t stalled = 0;      ///< connections whose echoes did not return within the grace
  std::uint64_t idle_closed = 0;  ///< idle connections found closed (or not silent) at the end
  std::uint64_t other = 0;        ///< anything else (socket(), epoll_ctl, odd errno)
  std::string first;              ///< a description of the first error, for stderr

  std::uint64_t total() const noexcept {
    return connect + reset + closed + stalled + idle_closed + other;
  }
};

/// The results of one run. Times are those of the measured window only.
struct Report {
  std::string mode;
  std::string address;
  std::uint64_t conns = 0;
  std::uint64_t idle = 0;
  std::uint64_t size = 0;
  std::uint64_t pipeline = 0;
  double warmup = 0;           ///< seconds, as asked
  double seconds = 0;          ///< the measured window, as it really lasted
  std::uint64_t messages = 0;  ///< round trips completed in the window
  std::uint64_t bytes = 0;     ///< echoed bytes received in the window
  std::uint64_t connects = 0;  ///< connect mode: connect-echo-close cycles in the window
  std::uint64_t latency_samples = 0;
  double p50_us = 0, p90_us = 0, p99_us = 0, p999_us = 0, max_us = 0;
  ErrorCounts errors;
  std::uint64_t connect_retries = 0;           ///< EAGAIN / EADDRNOTAVAIL retries (not errors)
  std::uint64_t idle_open = 0;                 ///< idle connections verified open at the end
  bool server_cpu_asked = false;               ///< --server-pid given: the fields appear
  std::optional<std::uint64_t> server_cpu_us;  ///< null if /proc/PID/stat became unreadable
  bool server_cpu_exact = false;  ///< from schedstat (ns), not clock ticks: see cpu_us_between
  std::uint64_t client_cpu_us = 0;
};

/// The report as one JSON object, without a newline. Rates are per measured second; MB are
/// 10^6 bytes of echo received; *_cpu_util is CPU time over the window's length (1.0 = one
/// core busy all the time: a client near 1.0 may be the bottleneck).
std::string to_json(const Report& report);

}  // namespace reactor::bench::load
