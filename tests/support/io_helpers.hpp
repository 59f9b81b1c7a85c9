#pragma once
/// Header-only helpers for the I/O watcher tests: byte-level socket helpers, bounded loop
/// runners that count iterations, error-code assertions and fd-limit handling.
/// Everything here is for the test's own (loop) thread.
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <set>
#include <string>
#include <system_error>

#include "reactor/core/reactor.hpp"

namespace reactor::test {

/// Counts callbacks and the bits they carried.
struct Tally {
  int calls = 0;
  int readable = 0;
  int writable = 0;
  int invalid = 0;
  void add(reactor::IoEvents ev) {
    ++calls;
    readable += ev.readable() ? 1 : 0;
    writable += ev.writable() ? 1 : 0;
    invalid += ev.invalid() ? 1 : 0;
  }
  reactor::IoHandler handler() {
    return [this](reactor::IoEvents ev) { add(ev); };
  }
};

/// Builds and destroys one Reactor over `backend` once per process. libuv opens a pair of
/// process-wide fds the first time a loop is made and never closes them; doing that before a
/// FdLeakCheck starts keeps the check about the test, not about libuv's one-off set-up.
inline void warm_up_backend(const std::string& backend) {
  static std::mutex mutex;
  static std::set<std::string> done;
  std::lock_guard lock(mutex);
  if (!done.insert(backend).second) return;
  Reactor loop(backend);
  loop.run_once(std::chrono::nanoseconds{0});
}

/// Success when `ec` names the same errno as `expected` (whatever its category).
inline ::testing::AssertionResult IsErrc(const std::error_code& ec, std::errc expected) {
  if (ec == expected) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure()
         << "got " << (ec ? ec.message() : std::string("no error")) << " (" << ec.value()
         << "), expected " << std::make_error_code(expected).message() << " ("
         << static_cast<int>(expected) << ")";
}

/// Success when calling `fn` throws std::system_error whose code names `expected`.
template <typename Fn>
::testing::AssertionResult ThrowsErrc(Fn&& fn, std::errc expected) {
  try {
    fn();
  } catch (const std::system_error& e) {
    return IsErrc(e.code(), expected) << " (thrown: " << e.what() << ")";
  } catch (const std::exception& e) {
    return ::testing::AssertionFailure() << "threw something else: " << e.what();
  } catch (...) {
    return ::testing::AssertionFailure() << "threw a non-exception";
  }
  return ::testing::AssertionFailure() << "did not throw";
}

/// Writes one byte; true on success.
inline bool write_byte(int fd, char c = 'x') { return ::write(fd, &c, 1) == 1; }

/// Writes `data` fully (the socket must have room); true on success.
inline bool write_all(int fd, const std::string& data) {
  std::size_t off = 0;
  while (off < data.size()) {
    const ssize_t n = ::write(fd, data.data() + off, data.size() - off);
    if (n <= 0) return false;
    off += static_cast<std::size_t>(n);
  }
  return true;
}

/// Reads everything available from a non-blocking fd; returns the bytes read, stops at
/// EAGAIN or EOF. At most `limit` bytes.
inline std::string drain(int fd, std::size_t limit = std::size_t{64} << 20) {
  std::string out;
  char buf[16384];
  while (out.size() < limit) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n <= 0) break;
    out.append(buf, static_cast<std::size_t>(n));
  }
  return out;
}

/// Writes to a non-blocking fd until the kernel says EAGAIN; returns the bytes written
/// (bounded at 64 MiB so that a broken socket cannot make this loop forever).
inline std::size_t fill(int fd) {
  static const std::string chunk(4096, 'f');
  std::size_t total = 0;
  while (total < (std::size_t{64} << 20)) {
    const ssize_t n = ::write(fd, chunk.data(), chunk.size());
    if (n <= 0) break;
    total += static_cast<std::size_t>(n);
  }
  // Top up with single bytes: the last chunk may have left room for less than a chunk.
  for (int i = 0; i < 65536 && write_byte(fd); ++i) ++total;
  return total;
}

/// Raises the soft RLIMIT_NOFILE towards the hard limit so that at least `want` fds can be
/// open (never lowers it). True when the soft limit now allows `want`.
inline bool ensure_fd_limit(rlim_t want) {
  rlimit lim{};
  if (::getrlimit(RLIMIT_NOFILE, &lim) != 0) return false;
  if (lim.rlim_cur != RLIM_INFINITY && lim.rlim_cur < want) {
    lim.rlim_cur = lim.rlim_max;
    if (::setrlimit(RLIMIT_NOFILE, &lim) != 0) return false;
    if (::getrlimit(RLIMIT_NOFILE, &lim) != 0) return false;
  }
  return lim.rlim_cur == RLIM_INFINITY || lim.rlim_cur >= want;
}

/// What run_for() saw.
struct RunStats {
  std::uint64_t iterations = 0;  ///< Reactor::iterations() delta
  std::size_t calls = 0;         ///< run_once() calls made
  std::size_t callbacks = 0;     ///< sum of run_once() results
};

/// Calls loop.run_once(step) until `budget` of wall time has passed or `max_calls` calls were
/// made, whichever comes first. Used to check that an idle loop blocks instead of spinning:
/// a spinning loop hits `max_calls`, a blocking one makes about budget / step calls.
inline RunStats run_for(Reactor& loop, std::chrono::milliseconds budget,
                        std::chrono::milliseconds step, std::size_t max_calls = 1000) {
  RunStats s;
  const std::uint64_t start_iterations = loop.iterations();
  const auto deadline = std::chrono::steady_clock::now() + budget;
  while (s.calls < max_calls && std::chrono::steady_clock::now() < deadline) {
    s.callbacks += loop.run_once(step);
    ++s.calls;
  }
  s.iterations = loop.iterations() - start_iterations;
  return s;
}

/// Calls loop.run_once(step) until `done()` or `max_calls` calls; returns done().
template <typename Pred>
bool run_until(Reactor& loop, Pred done, std::size_t max_calls = 50,
               std::chrono::milliseconds step = std::chrono::milliseconds{100}) {
  for (std::size_t i = 0; i < max_calls && !done(); ++i) loop.run_once(step);
  return done();
}

}  // namespace reactor::test
