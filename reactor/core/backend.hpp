// SPDX-License-Identifier: MIT
#pragma once
/// \file
/// The backend contract: the only question a backend answers is "which of these fds are
/// ready?". It knows nothing of callbacks, timers or sockets. Every backend (select, poll,
/// epoll, uv) keeps every clause below, and tests/core/backend_contract_test.cpp checks each
/// clause on each backend through make_backend().
///
/// - Level-triggered. An fd that stays ready is reported by every poll() until it is not.
/// - Tokens, not pointers. add() takes an opaque 64-bit token; poll() hands back exactly the
///   token given by the latest add()/modify() for that fd and nothing else about it. After
///   remove() the token never comes back.
/// - Only what the interest asks is reported: readable to a reader, writable to a writer.
///   Interest::none means "registered but silent": nothing at all is reported for the fd,
///   not even hang-up or error (otherwise a paused reader on a dead socket would spin).
/// - Error and hang-up conditions are reported as readable and/or writable, for whatever the
///   interest asks, plus the hangup_or_error hint; the caller's read/write then finds out.
///   The hint is best effort: epoll and poll set it for both, uv for an error only (libuv
///   would flag every half close too), select never. A hang-up with no send room is owed
///   only as readable to a watcher that reads (select and uv report no more); select does
///   not wake a write-only watcher for it until there is room.
/// - An fd closed behind the backend's back (closed before remove()) is reported at most
///   once, flagged invalid and nothing else, where the mechanism can see it (select: EBADF,
///   poll: POLLNVAL); it is then silent, as with Interest::none, until a modify() asks again.
///   epoll and libuv drop such an fd silently: the kernel forgets it with its file. Either
///   way the caller is expected to remove() it; nothing ever spins on it.
/// - Errors are std::error_code values taken from errno (EBADF, EEXIST, ENOENT, EPERM,
///   ENOBUFS, ...); nothing here logs, throws (outside the factory) or aborts.
/// - The batch: poll() appends to `out` and never allocates in it (its capacity is the
///   caller's), nor touches the entries already there. With room for k entries and more than
///   k fds ready it appends exactly k; the rest stay owed (level-triggered) to a later poll().
///   With no room at all (out.size() == out.capacity()) it returns no_buffer_space at once,
///   without waiting, whatever is registered: a wait that could report nothing is a caller's
///   bug, made loud. A caller that keeps the capacity above the number of registered fds
///   never leaves anything ready out of a batch. An fd appears at most once per batch.
///   Batches smaller than what is ready take turns: while fds stay ready, successive polls
///   hand over every one of them within a bounded number of polls (none starves).
/// - Timeouts are rounded up to the mechanism's resolution (poll: 1 ns, select: 1 us, epoll:
///   1 ms, uv: 1 ms plus 1 ms for libuv's cached clock), so a wait with nothing ready never
///   ends early: poll() returns no sooner than `timeout` after it was called, unless a signal
///   interrupts it. A zero timeout never blocks; no timeout waits until something is ready.
/// - A signal caught during a wait: poll() returns success with nothing appended; select,
///   poll and epoll return at once, uv waits out its timeout (libuv resumes the wait itself).
/// - A backend object is used by one thread at a time (not necessarily always the same one).

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "reactor/export.hpp"

namespace reactor {

/// What an fd is watched for.
enum class Interest : std::uint8_t { none = 0, read = 1, write = 2, read_write = 3 };

/// Both interests: Interest::read | Interest::write is Interest::read_write.
constexpr Interest operator|(Interest a, Interest b) noexcept {
  return static_cast<Interest>(static_cast<std::uint8_t>(a) | static_cast<std::uint8_t>(b));
}
/// The interests `a` and `b` have in common (Interest::none if none).
constexpr Interest operator&(Interest a, Interest b) noexcept {
  return static_cast<Interest>(static_cast<std::uint8_t>(a) & static_cast<std::uint8_t>(b));
}
/// True when `set` includes every bit of `bit`.
constexpr bool has(Interest set, Interest bit) noexcept { return (set & bit) == bit; }

/// What was found ready for one fd. A plain bit set; cheap to copy.
struct REACTOR_API IoEvents {
  /// Bit of `bits`: the fd was readable (data, end of file, or an error to read).
  static constexpr std::uint8_t kReadable = 1;
  /// Bit of `bits`: the fd was writable (room to send, or an error to find).
  static constexpr std::uint8_t kWritable = 2;
  static constexpr std::uint8_t kHangupOrError = 4;  ///< a hint; read/write tell the truth
  static constexpr std::uint8_t kInvalid = 8;        ///< the fd was closed behind our back

  /// The k* bits found ready; none set means nothing was.
  std::uint8_t bits = 0;

  /// Whether kReadable, kWritable, kHangupOrError or kInvalid is set in `bits`; any(): one
  /// of them is.
  ///@{
  constexpr bool readable() const noexcept { return (bits & kReadable) != 0; }
  constexpr bool writable() const noexcept { return (bits & kWritable) != 0; }
  constexpr bool hangup_or_error() const noexcept { return (bits & kHangupOrError) != 0; }
  constexpr bool invalid() const noexcept { return (bits & kInvalid) != 0; }
  constexpr bool any() const noexcept { return bits != 0; }
  ///@}
};

/// One entry of a poll() batch.
struct REACTOR_API Readiness {
  std::uint64_t token;  ///< as given to add()/modify()
  /// What was found ready on the fd registered under `token`.
  IoEvents events;
};

/// A readiness mechanism. See the file comment for the contract every backend keeps.
class REACTOR_API Backend {
 public:
  virtual ~Backend() = default;

  /// "select", "poll", "epoll" or "uv".
  virtual std::string_view name() const noexcept = 0;

  /// Starts watching `fd`. EEXIST if it is already registered (the registration is left
  /// alone), EBADF if it is not open (or negative), EPERM if the mechanism cannot watch that
  /// kind of file: a regular file, directory or block device on every backend (always
  /// "ready", never worth watching); a character device with no poll method, such as
  /// /dev/null, on epoll and uv only (select and poll report it always ready).
  virtual std::error_code add(int fd, Interest interest, std::uint64_t token) noexcept = 0;

  /// Changes interest and token of a registered fd; from now on poll() hands back only the
  /// new token. ENOENT if it is not registered (never added, or removed). EBADF if it was
  /// closed behind the backend's back, where detectable: epoll and uv find out here when the
  /// interest changes; select and poll at their next poll(), which reports it invalid.
  virtual std::error_code modify(int fd, Interest interest, std::uint64_t token) noexcept = 0;

  /// Forgets `fd`; it may be added again. Safe on an fd that was already closed or never
  /// added, or any number at all.
  virtual void remove(int fd) noexcept = 0;

  /// Waits up to `timeout` (nullopt: forever, zero: do not block) and appends what is ready
  /// to `out`. no_buffer_space, at once, when `out` has no room. Interruption by a signal
  /// returns success with nothing appended.
  virtual std::error_code poll(std::vector<Readiness>& out,
                               std::optional<std::chrono::nanoseconds> timeout) noexcept = 0;

  /// Rebuilds kernel state in a child after fork() without touching the parent's: whatever
  /// the child then adds, modifies or removes leaves the parent's registrations working. A
  /// child that keeps using the backend must call this first.
  virtual std::error_code after_fork() noexcept { return {}; }
};

/// Builds a backend by name: "select", "poll", "epoll", "uv" or "auto" (epoll).
/// Throws std::invalid_argument for a name that is unknown or not compiled in, and
/// std::system_error when the kernel refuses to build it (for example no fds left).
REACTOR_API std::unique_ptr<Backend> make_backend(std::string_view name = "auto");

/// Names of the backends compiled into this library, fastest first.
REACTOR_API std::vector<std::string> available_backends();

/// The name "auto" resolves to: $REACTOR_BACKEND when set and not empty, else "epoll".
REACTOR_API std::string default_backend_name();

}  // namespace reactor
