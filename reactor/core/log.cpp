// SPDX-License-Identifier: MIT
#include "reactor/core/log.hpp"

#include <atomic>
#include <cstdarg>
#include <cstdio>
#include <memory>
#include <mutex>
#include <utility>

namespace reactor {
namespace {

std::atomic<int> g_level{static_cast<int>(LogLevel::warning)};

// The handler is swapped under the lock and called outside it, through its own reference,
// so a handler may replace itself (or log) without deadlock. The lock is held only to copy
// a pointer, so a fork that copies it held (another thread was inside) is vanishingly rare.
std::mutex g_mutex;
std::shared_ptr<const LogHandler> g_handler;

std::shared_ptr<const LogHandler> current() {
  std::lock_guard lock(g_mutex);
  return g_handler;
}

}  // namespace

const char* to_string(LogLevel level) noexcept {
  switch (level) {
    case LogLevel::debug:
      return "debug";
    case LogLevel::info:
      return "info";
    case LogLevel::warning:
      return "warning";
    case LogLevel::error:
      return "error";
  }
  return "unknown";
}

LogHandler set_log_handler(LogHandler handler) {
  auto next = handler ? std::make_shared<const LogHandler>(std::move(handler)) : nullptr;
  std::shared_ptr<const LogHandler> previous;
  {
    std::lock_guard lock(g_mutex);
    previous = std::exchange(g_handler, std::move(next));
  }
  return previous ? *previous : LogHandler{};
}

void set_log_level(LogLevel level) noexcept {
  g_level.store(static_cast<int>(level), std::memory_order_relaxed);
}

LogLevel log_level() noexcept {
  return static_cast<LogLevel>(g_level.load(std::memory_order_relaxed));
}

namespace detail {

bool log_enabled(LogLevel level) noexcept {
  return static_cast<int>(level) >= g_level.load(std::memory_order_relaxed);
}

void log(LogLevel level, const char* format, ...) noexcept {
  if (!log_enabled(level)) return;
  char text[512];
  va_list args;
  va_start(args, format);
  const int n = std::vsnprintf(text, sizeof text, format, args);
  va_end(args);
  if (n < 0) return;
  // A longer report is cut, and says so.
  if (static_cast<std::size_t>(n) >= sizeof text) {
    std::snprintf(text + sizeof text - 4, 4, "...");
  }
  try {
    if (auto handler = current()) {
      (*handler)(level, text);
      return;
    }
  } catch (...) {
    return;  // documented: the report is lost, nothing else
  }
  std::fprintf(stderr, "reactor: %s: %s\n", to_string(level), text);
}

}  // namespace detail
}  // namespace reactor
