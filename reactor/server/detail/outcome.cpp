// SPDX-License-Identifier: MIT
#include "reactor/server/detail/outcome.hpp"

#include <sys/wait.h>

#include <string>
#include <system_error>

#include "reactor/core/log.hpp"

namespace reactor::detail {

Outcome classify_failure(const ServerOptions& options, const Address& client,
                         std::exception_ptr error) noexcept {
  try {
    std::rethrow_exception(error);
  } catch (const std::system_error& e) {
    if (e.code() == std::errc::timed_out) return Outcome::timeout;
    // Only shutdown() trips the cancel fd (in a child, whose copy of stopping_ is stale, too).
    if (e.code() == std::errc::operation_canceled) return Outcome::canceled;
  } catch (...) {
  }
  try {
    if (options.handle_error) {
      options.handle_error(client, error);
      return Outcome::error;
    }
  } catch (...) {
    // An error hook that throws: fall through to the default report.
  }
  std::string what = "unknown exception";
  try {
    std::rethrow_exception(error);
  } catch (const std::exception& e) {
    what = e.what();
  } catch (...) {
  }
  detail::log(LogLevel::error, "error while handling a request from %s: %s",
              client.empty() ? "(unnamed)" : client.to_string().c_str(), what.c_str());
  return Outcome::error;
}

Outcome outcome_of_exit(int status) noexcept {
  if (!WIFEXITED(status) || WEXITSTATUS(status) > static_cast<int>(Outcome::cut)) {
    return Outcome::error;
  }
  return static_cast<Outcome>(WEXITSTATUS(status));
}

void Counters::count(Outcome outcome) noexcept {
  switch (outcome) {
    case Outcome::handled:
      ++handled;
      break;
    case Outcome::error:
      ++errors;
      break;
    case Outcome::timeout:
      ++timeouts;
      break;
    case Outcome::cut:
      ++cut;
      break;
    case Outcome::canceled:
      break;
  }
}

}  // namespace reactor::detail
