// SPDX-License-Identifier: MIT
#pragma once
/// \file
/// The library's own diagnostics: one process-wide hook instead of writes to stderr.
///
/// The library reports what a program cannot see through return values: a listener backing
/// off because descriptors ran out (and accepting again), a request handler that threw
/// with no ServerOptions::handle_error set, datagrams a server dropped. Each report is one
/// line of text with a level. By default reports at LogLevel::warning and above go to
/// stderr as `reactor: <level>: <message>`; set_log_handler() sends them elsewhere (a
/// logging framework, a test), set_log_level() changes the threshold.
///
/// Reports come from whatever thread saw the event: a loop's thread, a threading-model
/// worker, a forked child. A handler must therefore be thread-safe; it runs with no lock of
/// the library held, so it may call back into the library, and an exception it throws is
/// swallowed (the report is lost, nothing else is).

#include <functional>
#include <string_view>

#include "reactor/export.hpp"

namespace reactor {

/// How much a report matters.
enum class LogLevel {
  debug,    ///< detail for whoever debugs the library (every retry of a back-off)
  info,     ///< normal but notable (a listener accepts again after a back-off)
  warning,  ///< something went wrong and was handled (descriptors ran out; datagram dropped)
  error,    ///< something failed and was lost (a handler threw and nobody handled it)
};

/// "debug", "info", "warning" or "error".
REACTOR_API const char* to_string(LogLevel level) noexcept;

/// Receives one report: its level and its text (one line, no newline, valid for the call).
using LogHandler = std::function<void(LogLevel level, std::string_view message)>;

/// Installs `handler` for the whole process and returns the previous one (empty if it was
/// the default). An empty handler restores the default, which writes to stderr. Any thread;
/// a report already being delivered may still reach the previous handler.
REACTOR_API LogHandler set_log_handler(LogHandler handler);

/// Reports below `level` are dropped before their text is formatted. Default: warning.
/// Any thread.
REACTOR_API void set_log_level(LogLevel level) noexcept;

/// The current threshold.
REACTOR_API LogLevel log_level() noexcept;

namespace detail {

/// True if a report at `level` would be delivered.
bool log_enabled(LogLevel level) noexcept;

/// Formats (printf-style) and delivers one report, if its level is enabled.
void log(LogLevel level, const char* format, ...) noexcept __attribute__((format(printf, 2, 3)));

}  // namespace detail
}  // namespace reactor
