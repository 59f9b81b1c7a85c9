// SPDX-License-Identifier: MIT
#pragma once
/// \file
/// The event loop. One Reactor runs callbacks when fds become ready, timers fire, other
/// threads post work or signals arrive. How the kernel is asked is its Backend.
///
/// One iteration (run_once), top to bottom:
///   1. poll the backend, blocking until the nearest timer at most (not at all when tasks
///      are posted or stop() was called);
///   2. dispatch I/O readiness, one callback per ready fd;
///   3. deliver pending signals;
///   4. fire due timers, earliest deadline first, ties in the order they were set;
///   5. run posted tasks, in the order they were posted;
///   6. count the iteration.
/// Work created by a callback for its own phase (a 0 ms timer set by a timer, a task posted
/// by a task) waits for the next iteration, so every phase ends.
///
/// Contract (each clause has a test that runs on every backend):
/// - Callbacks run on the loop thread, never from inside a call into the library.
/// - Level-triggered: an fd that stays ready is reported every iteration.
/// - After a watcher is stopped no event for it is delivered, even later in the same batch
///   and even when the fd number is reused at once (a generation per fd slot).
/// - A callback may destroy anything, itself and its own handle included, except the
///   Reactor running it (undefined behaviour; the debug checks abort).
/// - Steady state allocates nothing per event.
/// - Thread rule: a loop belongs to the thread running it. While a thread is inside run() or
///   run_once() (its callbacks included), only that thread may use the loop, the handles it
///   made (IoWatcher, Timer, SignalWatcher) and the net objects on it (Connection, Listener,
///   Connector, DatagramSocket). While no thread runs it, any thread may use it, one at a
///   time: build it on one thread, run it on a second, destroy it on a third, handing it
///   over with a join, a mutex or the like. The exceptions, callable from any thread at any
///   time: post(), stop() and backend_name() here, and what the net headers name
///   (Connection::send_from_any_thread(), ...). A stopped, cancelled or empty handle
///   touches no loop state, so destroying it is safe on any thread. after_fork() is for the
///   child's one thread.
///   With the debug checks on (reactor/core/debug.hpp) a call that breaks the rule while
///   another thread runs the loop aborts, and so does run()/run_once() entered while another
///   thread is inside them. Two threads using an idle loop without handing it over cannot be
///   seen without a lock, and are not checked.
/// - Destroying a Reactor with live handles is allowed: their callbacks never run again and
///   the handles become inert (active() is false). Signal dispositions are restored.

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string_view>
#include <system_error>
#include <thread>
#include <type_traits>

#include "reactor/core/backend.hpp"
#include "reactor/core/debug.hpp"
#include "reactor/core/detail/io_callable.hpp"
#include "reactor/core/io_watcher.hpp"
#include "reactor/core/signal_watcher.hpp"
#include "reactor/core/timer.hpp"
#include "reactor/export.hpp"

/// libuv's loop type (`uv_loop_t` is `struct uv_loop_s`), named for Reactor(uv_loop_s*)
/// without including <uv.h>.
struct uv_loop_s;

namespace reactor {

namespace detail {
struct LoopState;
struct LoopCheck;
struct WatchAccess;
}  // namespace detail

/// Called with what was found ready; IoEvents::invalid() means the fd was closed behind the
/// loop's back and the watcher has already been stopped.
using IoHandler = std::function<void(IoEvents)>;
namespace detail {
/// What the template Reactor::watch() takes: a class object callable with IoEvents, other
/// than an IoHandler (which has overloads of its own).
template <class F>
concept IoHandlerObject =
    std::is_class_v<std::remove_cvref_t<F>> && !std::is_same_v<std::remove_cvref_t<F>, IoHandler> &&
    !std::is_same_v<std::remove_cvref_t<F>, IoCallable> &&
    std::is_invocable_v<std::remove_cvref_t<F>&, IoEvents>;
}  // namespace detail

/// Called on the loop thread when a timer fires.
using TimerHandler = std::function<void()>;
/// Called on the loop thread with the signal number, after the signal was delivered.
using SignalHandler = std::function<void(int signo)>;
/// Work queued by Reactor::post(), run once on the loop thread.
using Task = std::function<void()>;

/// The loop. Members not marked "any thread" follow the thread rule above, and each checks
/// it when the debug checks are on (constructors excepted: nothing runs a loop yet).
class REACTOR_API Reactor {
 public:
  /// The clock of timers and now(): monotonic, unaffected by changes to the wall clock.
  using Clock = std::chrono::steady_clock;

  /// A loop over the backend named by default_backend_name() ($REACTOR_BACKEND or epoll).
  /// Throws std::system_error when the kernel refuses (no fds left, ...).
  Reactor();
  /// A loop over the named backend ("select", "poll", "epoll", "uv", "auto").
  /// Throws std::invalid_argument for an unknown name, std::system_error as above.
  explicit Reactor(std::string_view backend_name);
  /// A loop over a backend built elsewhere (must not be null).
  explicit Reactor(std::unique_ptr<Backend> backend);
  /// A loop hosted by a libuv loop the caller owns (`uv_loop_t*`), over the uv backend; for
  /// a program that already runs libuv. The Reactor adds its own handles to that loop (a
  /// uv_poll_t per watched fd, its wake-up fd's among them, a timer, a prepare, a check and
  /// an idle handle) and never closes or frees the loop. Two ways to drive it, never both at
  /// once:
  /// - The caller's own uv_run(loop, any mode): the Reactor's watchers, timers, posted tasks
  ///   and signals are dispatched from inside it, on the thread calling uv_run (the loop
  ///   thread of the thread rule), once per libuv iteration, in its check phase right after
  ///   the wait. The Reactor's handles keep the libuv loop alive as long as it exists, so
  ///   uv_run(loop, UV_RUN_DEFAULT) returns after stop() (which calls uv_stop() at the end of
  ///   that iteration; a stop requested while uv_run is not running ends the next uv_run
  ///   after one iteration) or the caller's uv_stop(). An exception escaping a callback calls
  ///   std::terminate (it cannot unwind through libuv). iterations() counts libuv iterations.
  /// - run() and run_once(), as for any Reactor: each wait is a uv_run(loop, UV_RUN_ONCE), so
  ///   the caller's own handles' callbacks run too, on the calling thread. A uv_stop() from
  ///   one of them ends only that wait; the Reactor stops on stop(). Not from inside the
  ///   caller's uv_run (libuv is not re-entrant).
  /// Destroying the Reactor uv_close()s its own handles and nothing else; as with any libuv
  /// handle, their close callbacks (which free them) run in the caller's next uv_run, after
  /// which uv_loop_close(loop) succeeds once the caller's own handles are closed too.
  /// after_fork() in a child calls uv_loop_fork(loop), which libuv requires there anyway.
  /// Declared whether or not the library was built with libuv (REACTOR_WITH_LIBUV): throws
  /// std::invalid_argument for a null loop and, without libuv, always.
  explicit Reactor(uv_loop_s* uv_loop);
  Reactor(const Reactor&) = delete;
  Reactor& operator=(const Reactor&) = delete;
  /// Not while a thread runs the loop, nor from one of its callbacks (debug checks: aborts).
  ~Reactor();

  /// The backend's name. Thread rule: any thread (fixed at construction).
  std::string_view backend_name() const noexcept;

  /// Watches `fd` for `interest`, calling `handler` on the loop thread while it is ready.
  /// Errors (the registry is unchanged on each):
  ///   EINVAL  fd is negative, or handler is empty;
  ///   EBADF   fd is not open;
  ///   EPERM   fd is a regular file, directory or block device (always "ready": never
  ///           useful to poll), or the backend cannot watch its kind;
  ///   EEXIST  fd is already watched by this loop;
  ///   ENOMEM  no memory; other values as the kernel reports them.
  /// The throwing form throws std::system_error with the same code.
  IoWatcher watch(int fd, Interest interest, IoHandler handler);
  /// As above, with the error in `ec` instead of thrown (and an empty watcher returned).
  IoWatcher watch(int fd, Interest interest, IoHandler handler, std::error_code& ec) noexcept;
  /// As the two above, for a handler given as a callable object other than an IoHandler (a
  /// lambda): kept without a std::function around it, in the loop's own slot when it is at
  /// most 16 bytes (a lambda holding a std::shared_ptr, or two pointers) and moves without
  /// throwing, so such a watch allocates nothing beyond the loop's table. Building the handler
  /// may throw std::bad_alloc (a bigger one goes to the heap), as a std::function would.
  template <class F>
  requires detail::IoHandlerObject<F> IoWatcher watch(int fd, Interest interest, F&& handler) {
    std::error_code ec;
    IoWatcher w = watch_callable(fd, interest, detail::IoCallable(std::forward<F>(handler)), ec);
    if (ec) throw_watch_error(ec, fd);
    return w;
  }
  /// As above, with the error in `ec` instead of thrown (and an empty watcher returned);
  /// building the handler may still throw std::bad_alloc.
  template <class F>
  requires detail::IoHandlerObject<F> IoWatcher watch(int fd, Interest interest, F&& handler,
                                                      std::error_code& ec) {
    return watch_callable(fd, interest, detail::IoCallable(std::forward<F>(handler)), ec);
  }

  /// A one-shot timer firing once `delay` has passed (never earlier; negative counts as 0;
  /// a 0 delay fires on the next iteration). Enormous delays saturate and never fire.
  Timer after(std::chrono::nanoseconds delay, TimerHandler handler);
  /// A repeating timer firing every `interval` (at least 1 ns), first after one interval.
  /// A late loop does not fire it in a burst: the next deadline is never in the past.
  Timer every(std::chrono::nanoseconds interval, TimerHandler handler);

  /// Calls `handler` on the loop thread after `signo` is delivered to the process.
  /// Throws std::invalid_argument for a signal that cannot be caught (SIGKILL, SIGSTOP,
  /// out of range) and std::system_error if sigaction fails.
  SignalWatcher on_signal(int signo, SignalHandler handler);
  /// As above, and the process's signal handler itself also adds 1 to the eventfd
  /// `notify_fd` at each delivery, at once, while the loop may be busy elsewhere: what waits
  /// on that fd outside this loop (a thread blocked in poll()) wakes even while the loop
  /// thread is the one blocked. The fd must stay open while the watcher is active (a full
  /// eventfd is left as it is). Each such watcher holds one of the process's 64 signal
  /// targets (also one per loop that watches signals): std::system_error(EAGAIN) when none
  /// is left; EBADF for a negative fd.
  SignalWatcher on_signal(int signo, SignalHandler handler, int notify_fd);

  /// In a child after fork() that leaves the parent's loops alone (it will not run them):
  /// puts back every signal disposition that watchers of any loop replaced, so the child
  /// reacts to signals as the program did before (SIGINT ends it, say). Takes no lock (a
  /// thread of the parent that held one does not exist in the child). Thread rule: the
  /// child's one thread.
  static void restore_signal_dispositions_in_child() noexcept;

  /// Queues `task` to run on the loop thread in a later iteration, in posting order, exactly
  /// once (or never, if the Reactor is destroyed first). Wakes a blocked loop at once.
  /// Thread rule: any thread.
  void post(Task task);

  /// Makes run() return after the current iteration; wakes a blocked loop at once. A stop
  /// requested while run() is not running makes the next run() return at once.
  /// Thread rule: any thread.
  void stop() noexcept;

  /// Runs iterations until stop(). The loop thread is the thread that calls run(), until it
  /// returns. Throws as run_once() does; an exception from a callback propagates out of
  /// run(), and the loop stays usable (the handler that threw is kept). Debug checks: aborts
  /// when another thread is inside run() or run_once() of this loop.
  void run();

  /// Runs one iteration, blocking up to `timeout` (nullopt: until something happens; zero:
  /// not at all) for something to do. A signal that interrupts the wait does not shorten it:
  /// the remaining time is waited again. Returns the number of callbacks run. Throws
  /// std::logic_error when called from inside a callback (the loop is not re-entrant; with
  /// or without the debug checks) and std::system_error when the backend fails. Debug
  /// checks: aborts when another thread is inside run() or run_once() of this loop.
  std::size_t run_once(std::optional<std::chrono::nanoseconds> timeout = std::nullopt);

  /// In a child process after fork(): gives this loop kernel state of its own (backend,
  /// wake-up fd) so that using it never disturbs the parent's loop. Watches and timers stay.
  /// A child that only destroys the loop need not call it: the destructor does.
  /// The calling thread takes the loop over even if another thread of the parent was running
  /// it (that thread does not exist in the child), whether that thread was blocked in the
  /// wait or inside a callback: run() and run_once() work here afterwards. A watcher,
  /// repeating timer or signal watcher whose callback that thread was running is stopped
  /// (its handler was on that thread's stack). Called from inside one of this loop's own
  /// callbacks (a forking server's accept handler), the iteration goes on when the callback
  /// returns, and run_once() stays refused until then.
  /// Posted tasks not yet run at the fork are the parent's: the child drops them, neither
  /// running nor destroying them (another thread may have been halfway through post(); what
  /// they hold stays allocated until the child exits). post() works again at once, even if
  /// a thread of the parent was inside post() at the fork. A stop() requested before the
  /// fork still applies.
  /// Safe as long as, at the fork, the loop thread was not itself inside a call into the
  /// library (watch(), after(), a handle's stop(), ...): those update state a fork cannot
  /// repair. Not thread-checked.
  std::error_code after_fork() noexcept;

  /// The loop's cached time, updated before and after each poll.
  Clock::time_point now() const noexcept;
  /// Kernel waits completed so far: one per run_once(), plus one for each wait that a
  /// signal not watched by this loop interrupted. Count these instead of trusting wall time;
  /// a loop that spins shows here.
  std::uint64_t iterations() const noexcept;
  /// Number of live watchers, timers and signal watchers (internal ones excluded).
  std::size_t watcher_count() const noexcept;
  /// Number of live timers: one-shot timers not yet fired and repeating ones not cancelled.
  std::size_t timer_count() const noexcept;

 private:
  friend class IoWatcher;
  friend class Timer;
  friend class SignalWatcher;
  friend struct detail::LoopCheck;
  friend struct detail::WatchAccess;

  const detail::LoopRef& life() const noexcept;

  /// Debug checks: makes the calling thread the owner for a run()/run_once(), or aborts if
  /// another thread owns the loop. Does nothing when the checks are off.
  class Ownership {
   public:
    Ownership(Reactor& loop, const char* api) noexcept;
    ~Ownership();
    Ownership(const Ownership&) = delete;
    Ownership& operator=(const Ownership&) = delete;

   private:
    Reactor* claimed_ = nullptr;  // set when this scope took the loop (and gives it back)
  };

  void init();
  IoWatcher watch_callable(int fd, Interest interest, detail::IoCallable handler,
                           std::error_code& ec) noexcept;
  [[noreturn]] static void throw_watch_error(std::error_code ec, int fd);
  void call_io(int fd, std::uint32_t generation, IoEvents events);
  std::error_code set_interest(int fd, std::uint32_t generation, Interest interest) noexcept;
  Interest interest_of(int fd, std::uint32_t generation) const noexcept;
  bool watching(int fd, std::uint32_t generation) const noexcept;
  void unwatch(int fd, std::uint32_t generation) noexcept;
  bool timer_active(std::uint32_t index, std::uint32_t generation) const noexcept;
  void cancel_timer(std::uint32_t index, std::uint32_t generation) noexcept;
  bool signal_active(std::uint32_t index, std::uint32_t generation) const noexcept;
  void stop_signal(std::uint32_t index, std::uint32_t generation) noexcept;
  Timer add_timer(std::chrono::nanoseconds delay, std::chrono::nanoseconds period,
                  TimerHandler handler);
  SignalWatcher add_signal(int signo, SignalHandler handler, int notify_fd);  // -1: none

  std::size_t dispatch_io(bool skip_served = false);
  std::size_t dispatch_more_io();
  std::size_t deliver_signals();
  std::size_t fire_timers();
  std::size_t run_posted();
  void on_wakeup();
  void wake() noexcept;
  void update_time() noexcept;

  std::unique_ptr<detail::LoopState> state_;
  /// The thread inside run()/run_once(), or none. Kept only with the debug checks on; a
  /// member here (not in the state) so that a check is one load, and present either way so
  /// that the layout does not depend on the checks.
  std::atomic<std::thread::id> owner_{};
};

namespace detail {
/// The debug checks' view of a loop's owner (see reactor/core/debug.hpp). Internal.
struct REACTOR_DEBUG_API LoopCheck {
  /// True when the calling thread runs `loop`, or no thread does.
  static bool caller_may_use(const Reactor& loop) noexcept {
    const std::thread::id owner = loop.owner_.load(std::memory_order_relaxed);
    return owner == std::thread::id() || owner == std::this_thread::get_id();
  }
  /// Reports `api` called on the wrong thread and aborts.
  [[noreturn]] static void wrong_thread(const Reactor& loop, const char* api, const char* file,
                                        int line) noexcept;
};
}  // namespace detail

}  // namespace reactor
