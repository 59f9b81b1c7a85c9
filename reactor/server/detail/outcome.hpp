// SPDX-License-Identifier: MIT
#pragma once
/// \file
/// How a handler run ended, and the server's counters of those ends. Internal.

#include <atomic>
#include <cstdint>
#include <exception>

#include "reactor/net/address.hpp"
#include "reactor/server/options.hpp"

namespace reactor::detail {

/// How a handler run ended. The values are a forked child's exit status.
/// canceled: shutdown() stopped a handler that had nothing in progress (counted by the caller
/// as it sees fit); cut: shutdown's drain deadline stopped one in the middle of its work.
enum class Outcome : int { handled = 0, error = 1, timeout = 2, canceled = 3, cut = 4 };

/// Classifies a handler failure: an idle timeout or shutdown's cancellation is not the
/// handler's fault; anything else goes to options.handle_error (or one line on stderr).
/// Any thread (or child): handle_error's own thread rule applies.
Outcome classify_failure(const ServerOptions& options, const Address& client,
                         std::exception_ptr error) noexcept;

/// The outcome a forked child reported through its exit status (from waitpid).
Outcome outcome_of_exit(int status) noexcept;

/// Counters, any thread.
struct Counters {
  std::atomic<std::uint64_t> accepted{0}, rejected{0}, handled{0}, errors{0}, timeouts{0}, cut{0};

  /// Counts an outcome (a cancellation counts nowhere).
  void count(Outcome outcome) noexcept;
};

}  // namespace reactor::detail
