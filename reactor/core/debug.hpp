// SPDX-License-Identifier: MIT
#pragma once
/// \file
/// Debug checks: API misuse stops the program at the mistake instead of surfacing later as
/// a data race, a lost event or a silent error code.
///
/// Configure with -DREACTOR_DEBUG_CHECKS=ON (the debug, asan and tsan presets do). The
/// library and everything that links it (CMake's reactor::reactor, pkg-config's Cflags) are
/// then compiled with REACTOR_DEBUG_CHECKS=1, and reactor::kDebugChecks is true.
///
/// What is checked (each public header names its checked calls):
/// - Wrong thread: a loop-thread-only call made while another thread runs the loop, and
///   run()/run_once() entered while another thread is inside them. The thread rule itself
///   is in reactor/core/reactor.hpp. The thread-safe surface (Reactor::post, Reactor::stop,
///   Connection::send_from_any_thread, Connection::close_from_any_thread, ...) is never
///   checked.
/// - Use of a stopped or moved-from handle where that is a programming error rather than a
///   runtime condition (IoWatcher::set_interest after stop(), Connection::start() twice).
///   Such calls keep returning their documented error when the checks are off.
///
/// A failed check writes one line to stderr (where, which call, which loop, the calling and
/// the owning thread or the handle's state) and calls std::abort().
///
/// Off (the default, and the release preset): every check compiles to nothing and its
/// condition is not evaluated; the loop does not even record its thread. On: a thread check
/// is one relaxed atomic load of a std::thread::id and a comparison; no lock is taken.
///
/// The object layout is the same either way, so code built with the checks on can link a
/// library built with them off and the other way round; only the side that was built with
/// them checks anything.

#include "reactor/export.hpp"

#ifndef REACTOR_DEBUG_CHECKS
/// 1 when the debug checks are compiled in, else 0 (the default). The build sets it for
/// the library and everything that links it; do not define it differently per file.
#define REACTOR_DEBUG_CHECKS 0
#endif

namespace reactor {

/// True when this code was compiled with the debug checks (REACTOR_DEBUG_CHECKS=1).
inline constexpr bool kDebugChecks = REACTOR_DEBUG_CHECKS != 0;

namespace detail {
/// Writes "reactor: debug check failed at FILE:LINE: API: WHAT" to stderr and aborts.
[[noreturn]] REACTOR_DEBUG_API void check_failed(const char* file, int line, const char* api,
                                                 const char* what) noexcept;
}  // namespace detail

}  // namespace reactor

#if REACTOR_DEBUG_CHECKS
/// Aborts with a message naming `api` ("Connection::start()") and `what` unless `cond`.
#define REACTOR_CHECK(cond, api, what)                                    \
  do {                                                                    \
    if (!(cond)) [[unlikely]]                                             \
      ::reactor::detail::check_failed(__FILE__, __LINE__, (api), (what)); \
  } while (false)
/// Aborts unless the calling thread may use `loop` (a Reactor&) now: it runs the loop, or
/// no thread does. Defined with the Reactor (reactor/core/reactor.hpp).
#define REACTOR_CHECK_LOOP_THREAD(loop, api)                                         \
  do {                                                                               \
    if (!::reactor::detail::LoopCheck::caller_may_use(loop)) [[unlikely]]            \
      ::reactor::detail::LoopCheck::wrong_thread((loop), (api), __FILE__, __LINE__); \
  } while (false)
#else
/// Checks off: does nothing, and `cond` is not evaluated.
#define REACTOR_CHECK(cond, api, what) \
  do {                                 \
  } while (false)
/// Checks off: does nothing, and `loop` is not evaluated.
#define REACTOR_CHECK_LOOP_THREAD(loop, api) \
  do {                                       \
  } while (false)
#endif
