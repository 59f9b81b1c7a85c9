// SPDX-License-Identifier: MIT
#pragma once
/// \file
/// Opening many connections at once without overrunning the server's listen backlog: at most
/// a batch in flight, EAGAIN (a full Unix backlog) retried after a pause, everything bounded
/// by a deadline.

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "bench/load/endpoint.hpp"

namespace reactor::bench::load {

/// The connections establish() made, and what went wrong with the others.
struct Established {
  std::vector<int> fds;        ///< connected, non-blocking; owned by the caller
  std::uint64_t failures = 0;  ///< count - fds.size()
  std::uint64_t retries = 0;   ///< transient failures that were retried
  std::string first_error;     ///< why the first failure failed
};

/// Opens `count` connections to `endpoint`, at most `in_flight` connects pending at a time.
/// Those not connected when now_ns() passes `deadline_ns` are abandoned and counted as
/// failures. Uses its own epoll instance; the fds come back registered nowhere.
Established establish(const Endpoint& endpoint, std::size_t count, std::uint64_t deadline_ns,
                      std::size_t in_flight = 128);

}  // namespace reactor::bench::load
