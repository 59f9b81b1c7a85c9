// SPDX-License-Identifier: MIT
#include "reactor/core/reactor.hpp"

#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <memory>
#include <new>
#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>

#include "reactor/core/detail/hosted_backend.hpp"
#include "reactor/core/detail/loop_state.hpp"
#include "reactor/core/handler_call.hpp"

namespace reactor {

using detail::LoopState;
using detail::TimerId;
namespace signals = detail::signals;

namespace {

std::int64_t clock_ns() noexcept {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             Reactor::Clock::now().time_since_epoch())
      .count();
}

// now + delay, saturating instead of overflowing; a negative delay counts as zero.
std::int64_t deadline_after(std::int64_t now, std::chrono::nanoseconds delay) noexcept {
  const std::int64_t d = std::max<std::int64_t>(delay.count(), 0);
  constexpr std::int64_t kMax = std::numeric_limits<std::int64_t>::max();
  return d > kMax - now ? kMax : now + d;
}

std::error_code errno_code(int e = errno) noexcept { return {e, std::generic_category()}; }

std::string thread_text(std::thread::id id) {
  if (id == std::thread::id()) return "none";
  std::ostringstream out;
  out << id;
  return out.str();
}

// One write(2), so that the line is not interleaved with other threads' output.
[[noreturn]] void fail_with(const std::string& line) noexcept {
  [[maybe_unused]] ssize_t n = ::write(STDERR_FILENO, line.data(), line.size());
  std::abort();
}

}  // namespace

// ---------------------------------------------------------------------------------------
// Debug checks (reactor/core/debug.hpp). Only the failure paths live here.

void detail::check_failed(const char* file, int line, const char* api, const char* what) noexcept {
  try {
    fail_with("reactor: debug check failed at " + std::string(file) + ":" + std::to_string(line) +
              ": " + api + ": " + what + "\n");
  } catch (...) {
    std::abort();  // no memory for the message
  }
}

void detail::LoopCheck::wrong_thread(const Reactor& loop, const char* api, const char* file,
                                     int line) noexcept {
  try {
    const std::thread::id owner = loop.owner_.load();
    std::string what = "called on thread " + thread_text(std::this_thread::get_id()) +
                       " while thread " + thread_text(owner) + " runs the loop (" +
                       std::string(loop.backend_name()) + " loop at ";
    char address[32];
    std::snprintf(address, sizeof address, "%p", static_cast<const void*>(&loop));
    what += address;
    what += "); see the thread rule in reactor/core/reactor.hpp";
    check_failed(file, line, api, what.c_str());
  } catch (...) {
    std::abort();
  }
}

Reactor::Ownership::Ownership([[maybe_unused]] Reactor& loop,
                              [[maybe_unused]] const char* api) noexcept {
  if constexpr (kDebugChecks) {
    const std::thread::id self = std::this_thread::get_id();
    std::thread::id owner{};
    if (loop.owner_.compare_exchange_strong(owner, self, std::memory_order_acquire)) {
      claimed_ = &loop;
    } else if (owner != self) {  // self: run() calling run_once(), or re-entry (a logic_error)
      detail::LoopCheck::wrong_thread(loop, api, __FILE__, __LINE__);
    }
  }
}

Reactor::Ownership::~Ownership() {
  if constexpr (kDebugChecks) {
    if (claimed_ != nullptr) claimed_->owner_.store(std::thread::id(), std::memory_order_release);
  }
}

Reactor::Reactor() : Reactor(make_backend(default_backend_name())) {}

Reactor::Reactor(std::string_view backend_name) : Reactor(make_backend(backend_name)) {}

Reactor::Reactor(uv_loop_s* uv_loop) : Reactor(detail::make_uv_backend_on(uv_loop)) {}

Reactor::Reactor(std::unique_ptr<Backend> backend) : state_(std::make_unique<LoopState>()) {
  if (!backend) throw std::invalid_argument("reactor: null backend");
  state_->backend = std::move(backend);
  state_->self = std::make_shared<Reactor*>(this);
  init();
}

void Reactor::init() {
  LoopState& s = *state_;
  s.wake_fd = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (s.wake_fd < 0) throw std::system_error(errno_code(), "reactor: eventfd");
  std::error_code ec;
  s.wake_watcher = watch(
      s.wake_fd, Interest::read, [this](IoEvents) { on_wakeup(); }, ec);
  if (ec) {
    ::close(s.wake_fd);
    throw std::system_error(ec, "reactor: watching the wake-up fd");
  }
  s.owner_pid = ::getpid();
  update_time();
  if (auto* hosted = dynamic_cast<detail::HostedBackend*>(s.backend.get())) {
    detail::HostHooks hooks;
    hooks.loop = this;
    hooks.next_wait = [](void* loop) noexcept -> std::optional<std::chrono::nanoseconds> {
      const LoopState& s = *static_cast<Reactor*>(loop)->state_;
      if (s.has_posted.load() || s.stop_requested.load()) return std::chrono::nanoseconds{0};
      const auto next = s.timers.next_deadline();
      if (!next || *next == std::numeric_limits<std::int64_t>::max()) return std::nullopt;
      return std::chrono::nanoseconds{std::max<std::int64_t>(*next - clock_ns(), 0)};
    };
    // Phases 2 to 6 of run_once(), with the host's wait as phase 1. noexcept: an exception
    // from a callback cannot unwind through libuv's frames, and terminates.
    hooks.after_wait = [](void* loop) noexcept {
      Reactor& r = *static_cast<Reactor*>(loop);
      LoopState& s = *r.state_;
      const Ownership owner(r, "uv_run() hosting a Reactor");
      if (s.dispatcher != std::thread::id()) return false;  // a callback ran the host loop
      r.update_time();
      s.dispatcher = std::this_thread::get_id();
      r.dispatch_io();
      if (s.signal_target >= 0) r.deliver_signals();
      if (s.timers.size() != 0) r.fire_timers();
      if (s.has_posted.load()) r.run_posted();
      ++s.iterations;
      s.dispatcher = std::thread::id();
      return s.stop_requested.exchange(false);
    };
    hosted->host(hooks, s.ready);
  }
}

Reactor::~Reactor() {
  if constexpr (kDebugChecks) {
    if (owner_.load() == std::this_thread::get_id()) {
      detail::check_failed(__FILE__, __LINE__, "Reactor::~Reactor()",
                           "the loop is destroyed from inside one of its own callbacks");
    }
  }
  REACTOR_CHECK_LOOP_THREAD(*this, "Reactor::~Reactor()");
  LoopState& s = *state_;
  *s.self = nullptr;                                           // every handle is inert from here on
  if (s.signal_target >= 0) signals::detach(s.signal_target);  // restores dispositions
  for (detail::SignalSlot& slot : s.signal_slots) {
    if (slot.active && slot.notify_target >= 0) signals::detach(slot.notify_target);
  }
  // A forked child that never called after_fork() shares the parent's kernel state (an epoll
  // set, libuv's): removing its registrations there would remove the parent's. Give it state
  // of its own first; if even that fails, leave the registrations alone.
  bool ours = s.owner_pid == ::getpid();
  if (!ours) ours = !s.backend->after_fork();
  for (std::size_t fd = 0; ours && fd < s.io.size(); ++fd) {
    if (s.io.active(fd)) s.backend->remove(static_cast<int>(fd));
  }
  ::close(s.wake_fd);
  // Handlers are destroyed with the state; a handler's destructor that touches a handle of
  // this loop finds it inert.
}

std::string_view Reactor::backend_name() const noexcept { return state_->backend->name(); }

// ---------------------------------------------------------------------------------------
// Watching fds

IoWatcher Reactor::watch(int fd, Interest interest, IoHandler handler) {
  std::error_code ec;
  IoWatcher w = watch(fd, interest, std::move(handler), ec);
  if (ec) throw std::system_error(ec, "reactor: watch fd " + std::to_string(fd));
  return w;
}

IoWatcher Reactor::watch(int fd, Interest interest, IoHandler handler,
                         std::error_code& ec) noexcept {
  if (!handler) {
    ec = std::make_error_code(std::errc::invalid_argument);
    return {};
  }
  detail::IoCallable callable;
  try {
    callable = detail::IoCallable(std::move(handler));
  } catch (const std::bad_alloc&) {
    ec = std::make_error_code(std::errc::not_enough_memory);
    return {};
  }
  return watch_callable(fd, interest, std::move(callable), ec);
}

void Reactor::throw_watch_error(std::error_code ec, int fd) {
  throw std::system_error(ec, "reactor: watch fd " + std::to_string(fd));
}

IoWatcher Reactor::watch_callable(int fd, Interest interest, detail::IoCallable handler,
                                  std::error_code& ec) noexcept {
  REACTOR_CHECK_LOOP_THREAD(*this, "Reactor::watch()");
  LoopState& s = *state_;
  ec.clear();
  if (fd < 0 || !handler) {
    ec = std::make_error_code(std::errc::invalid_argument);
    return {};
  }
  // EBADF and EPERM (regular files, directories, block devices: always "ready") come from
  // the backend, whose kernel call checks anyway (epoll, libuv) or which checks itself
  // (select, poll): no extra system call here per watch.
  const auto index = static_cast<std::size_t>(fd);
  if (index < s.io.size() && s.io.active(index)) {
    ec = std::make_error_code(std::errc::file_exists);
    return {};
  }
  try {
    // Grow now, never in the hot path.
    s.io.grow_to(index);
    if (s.ready.capacity() < std::min(detail::kMaxBatch, s.registered + 1)) {
      s.ready.reserve(
          std::min(detail::kMaxBatch, std::max<std::size_t>(64, 2 * (s.registered + 1))));
    }
  } catch (const std::bad_alloc&) {
    ec = std::make_error_code(std::errc::not_enough_memory);
    return {};
  }
  const std::uint32_t generation = s.io.generation(index) + 1;
  ec = s.backend->add(fd, interest, detail::make_token(fd, generation));
  if (ec) return {};
  s.io.activate(index, generation, interest);
  // The slot's own handler may still be running (it stopped its own watch and watches the
  // same fd again): the new one waits until that call returns.
  (fd == s.running_fd ? s.parked : s.io.handler(index)) = std::move(handler);
  ++s.registered;
  return IoWatcher(s.self, fd, generation);
}

bool Reactor::watching(int fd, std::uint32_t generation) const noexcept {
  return fd >= 0 && state_->io.live(static_cast<std::size_t>(fd), generation);
}

Interest Reactor::interest_of(int fd, std::uint32_t generation) const noexcept {
  return watching(fd, generation) ? state_->io.interest(static_cast<std::size_t>(fd))
                                  : Interest::none;
}

std::error_code Reactor::set_interest(int fd, std::uint32_t generation,
                                      Interest interest) noexcept {
  if (!watching(fd, generation)) return std::make_error_code(std::errc::bad_file_descriptor);
  LoopState& s = *state_;
  const auto index = static_cast<std::size_t>(fd);
  if (s.io.interest(index) == interest) return {};
  if (auto ec = s.backend->modify(fd, interest, detail::make_token(fd, generation))) return ec;
  s.io.set_interest(index, interest);
  return {};
}

void Reactor::unwatch(int fd, std::uint32_t generation) noexcept {
  if (!watching(fd, generation)) return;
  LoopState& s = *state_;
  const auto index = static_cast<std::size_t>(fd);
  s.io.deactivate(index);  // any event of the old registration still in the batch is now stale
  --s.registered;
  s.backend->remove(fd);
  if (fd == s.running_fd) {
    // Its own call is under way: call_io() destroys the handler when the call returns.
    if (generation == s.running_generation) return;
    // A handler watched (and now unwatched) during that call, still set apart.
    detail::IoCallable doomed = std::move(s.parked);
    return;
  }
  // Destroyed last, off the table: its destructor may run user code that watches or
  // unwatches again, even this same fd.
  detail::IoCallable doomed = std::move(s.io.handler(index));
}

// ---------------------------------------------------------------------------------------
// Timers

Timer Reactor::after(std::chrono::nanoseconds delay, TimerHandler handler) {
  REACTOR_CHECK_LOOP_THREAD(*this, "Reactor::after()");
  return add_timer(delay, std::chrono::nanoseconds{0}, std::move(handler));
}

Timer Reactor::every(std::chrono::nanoseconds interval, TimerHandler handler) {
  REACTOR_CHECK_LOOP_THREAD(*this, "Reactor::every()");
  return add_timer(interval, std::max(interval, std::chrono::nanoseconds{1}), std::move(handler));
}

Timer Reactor::add_timer(std::chrono::nanoseconds delay, std::chrono::nanoseconds period,
                         TimerHandler handler) {
  if (!handler) throw std::invalid_argument("reactor: empty timer handler");
  LoopState& s = *state_;
  // The fresh clock, not the loop's cached time: a timer set late in a long callback must
  // not fire early.
  const TimerId id = s.timers.add(deadline_after(clock_ns(), delay));
  try {
    if (id.index >= s.timer_slots.size()) s.timer_slots.resize(id.index + 1);
  } catch (...) {
    s.timers.cancel(id);
    throw;
  }
  s.timer_slots[id.index] = detail::TimerSlot{std::move(handler), period.count()};
  return Timer(s.self, id.index, id.generation);
}

bool Reactor::timer_active(std::uint32_t index, std::uint32_t generation) const noexcept {
  return state_->timers.alive(TimerId{index, generation});
}

void Reactor::cancel_timer(std::uint32_t index, std::uint32_t generation) noexcept {
  LoopState& s = *state_;
  if (!s.timers.cancel(TimerId{index, generation})) return;
  TimerHandler doomed = std::move(s.timer_slots[index].handler);
}

// ---------------------------------------------------------------------------------------
// Signals

SignalWatcher Reactor::on_signal(int signo, SignalHandler handler) {
  return add_signal(signo, std::move(handler), -1);
}

SignalWatcher Reactor::on_signal(int signo, SignalHandler handler, int notify_fd) {
  if (notify_fd < 0) throw std::system_error(EBADF, std::generic_category(), "reactor: notify fd");
  return add_signal(signo, std::move(handler), notify_fd);
}

SignalWatcher Reactor::add_signal(int signo, SignalHandler handler, int notify_fd) {
  REACTOR_CHECK_LOOP_THREAD(*this, "Reactor::on_signal()");
  if (!signals::catchable(signo)) {
    throw std::invalid_argument("reactor: signal " + std::to_string(signo) + " cannot be watched");
  }
  if (!handler) throw std::invalid_argument("reactor: empty signal handler");
  LoopState& s = *state_;
  // A target of its own for the notify fd, so that the handler writes it however many loops
  // and watchers share the signal; taken first, so that a failure leaves nothing behind.
  int notify_target = -1;
  if (notify_fd >= 0) {
    notify_target = signals::attach(notify_fd);
    if (notify_target < 0) {
      throw std::system_error(std::make_error_code(std::errc::resource_unavailable_try_again),
                              "reactor: too many signal targets");
    }
    if (auto ec = signals::watch(notify_target, signo)) {
      signals::detach(notify_target);
      throw std::system_error(ec, "reactor: sigaction");
    }
  }
  struct Undo {
    int target;
    ~Undo() {
      if (target >= 0) signals::detach(target);
    }
  } undo{notify_target};
  if (s.signal_target < 0) {
    s.signal_target = signals::attach(s.wake_fd);
    if (s.signal_target < 0) {
      throw std::system_error(std::make_error_code(std::errc::resource_unavailable_try_again),
                              "reactor: too many loops watching signals");
    }
  }
  if (s.free_signal_slots.empty()) {
    s.signal_slots.emplace_back();
    s.free_signal_slots.push_back(static_cast<std::uint32_t>(s.signal_slots.size() - 1));
  }
  if (s.signal_watchers[signo] == 0) {
    if (auto ec = signals::watch(s.signal_target, signo)) {
      throw std::system_error(ec, "reactor: sigaction");
    }
  }
  ++s.signal_watchers[signo];
  const std::uint32_t index = s.free_signal_slots.back();
  s.free_signal_slots.pop_back();
  detail::SignalSlot& slot = s.signal_slots[index];
  slot.handler = std::move(handler);
  slot.signo = signo;
  slot.notify_target = notify_target;
  slot.active = true;
  undo.target = -1;
  return SignalWatcher(s.self, signo, index, ++slot.generation);
}

void Reactor::restore_signal_dispositions_in_child() noexcept {
  signals::restore_dispositions_in_child();
}

bool Reactor::signal_active(std::uint32_t index, std::uint32_t generation) const noexcept {
  const LoopState& s = *state_;
  return index < s.signal_slots.size() && s.signal_slots[index].active &&
         s.signal_slots[index].generation == generation;
}

void Reactor::stop_signal(std::uint32_t index, std::uint32_t generation) noexcept {
  if (!signal_active(index, generation)) return;
  LoopState& s = *state_;
  detail::SignalSlot& slot = s.signal_slots[index];
  slot.active = false;
  ++slot.generation;
  if (--s.signal_watchers[slot.signo] == 0) signals::unwatch(s.signal_target, slot.signo);
  if (slot.notify_target >= 0) signals::detach(slot.notify_target);
  slot.notify_target = -1;
  s.free_signal_slots.push_back(index);
  SignalHandler doomed = std::move(slot.handler);
}

// ---------------------------------------------------------------------------------------
// Cross-thread surface

void Reactor::post(Task task) {
  LoopState& s = *state_;
  {
    std::lock_guard lock(s.post_mutex);
    s.posted.push_back(std::move(task));
  }
  s.has_posted.store(true);
  wake();
}

void Reactor::stop() noexcept {
  state_->stop_requested.store(true);
  wake();
}

void Reactor::wake() noexcept {
  LoopState& s = *state_;
  // One write per sleep is enough; the loop clears the flag when it drains the eventfd.
  if (s.wake_pending.exchange(true)) return;
  const std::uint64_t one = 1;
  [[maybe_unused]] ssize_t n = ::write(s.wake_fd, &one, sizeof one);
}

void Reactor::on_wakeup() {
  LoopState& s = *state_;
  std::uint64_t count;
  [[maybe_unused]] ssize_t n = ::read(s.wake_fd, &count, sizeof count);
  s.wake_pending.store(false);
}

// ---------------------------------------------------------------------------------------
// The loop

void Reactor::run() {
  // Held across iterations: no other thread may slip in between two of them.
  const Ownership owner(*this, "Reactor::run()");
  while (!state_->stop_requested.exchange(false)) run_once();
}

std::size_t Reactor::run_once(std::optional<std::chrono::nanoseconds> timeout) {
  // Before anything reads the state: another thread's run would race with it.
  const Ownership owner(*this, "Reactor::run_once()");
  LoopState& s = *state_;
  if (s.dispatcher != std::thread::id()) {
    throw std::logic_error("reactor: run_once() called from inside a callback");
  }
  // The clock is read before the poll only when a wait must be measured from now; the
  // reading after the poll serves everything else (one clock read per busy iteration).
  if (timeout || s.timers.size() != 0) update_time();
  const std::optional<std::int64_t> deadline =
      timeout ? std::optional(deadline_after(s.now_ns, *timeout)) : std::nullopt;
  std::size_t calls = 0;
  for (;;) {
    // 1. poll, blocking no later than the caller's deadline and the nearest timer.
    std::optional<std::int64_t> until = deadline;
    if (const auto next = s.timers.next_deadline()) until = std::min(until.value_or(*next), *next);
    std::optional<std::chrono::nanoseconds> wait;
    if (s.has_posted.load()) {
      wait = std::chrono::nanoseconds{0};
    } else if (until && *until != std::numeric_limits<std::int64_t>::max()) {
      wait = std::chrono::nanoseconds{std::max<std::int64_t>(*until - s.now_ns, 0)};
    }
    s.ready.clear();
    if (auto ec = s.backend->poll(s.ready, wait)) {
      throw std::system_error(ec, "reactor: " + std::string(s.backend->name()) + " poll");
    }
    update_time();

    s.dispatcher = std::this_thread::get_id();
    struct Leave {
      std::thread::id& dispatcher;
      ~Leave() { dispatcher = std::thread::id(); }
    } leave{s.dispatcher};
    calls += dispatch_io();  // 2.
    if (s.ready.size() == s.ready.capacity()) calls += dispatch_more_io();
    if (s.signal_target >= 0) calls += deliver_signals();  // 3.
    if (s.timers.size() != 0) calls += fire_timers();      // 4.
    if (s.has_posted.load()) calls += run_posted();        // 5.
    ++s.iterations;                                        // 6.

    // Something happened, or time is up. An empty wake-up (a signal that is not ours, the
    // kernel waking early) waits again for the rest of the time.
    if (calls > 0 || !s.ready.empty() || s.stop_requested.load()) return calls;
    if (deadline && s.now_ns >= *deadline) return calls;
  }
}

std::size_t Reactor::dispatch_io(bool skip_served) {
  LoopState& s = *state_;
  std::size_t calls = 0;
  // By index, copying each entry: a callback may watch new fds, which may grow the batch's
  // capacity (reallocating it) but never its contents.
  for (std::size_t i = 0; i < s.ready.size(); ++i) {
    const Readiness r = s.ready[i];
    const int fd = detail::token_fd(r.token);
    const std::uint32_t generation = detail::token_generation(r.token);
    const auto index = static_cast<std::size_t>(fd);
    // Stopped or replaced earlier in this batch?
    if (!s.io.live(index, generation)) continue;
    if (skip_served) {
      if (s.io.served(index)) continue;
      s.io.set_served(index, true);
      s.served.push_back(fd);  // room reserved by dispatch_more_io()
    }
    IoEvents events;
    if (r.events.invalid()) {
      // Closed behind our back: the backend says so at most once (select, poll) or never
      // (epoll, uv), so forget the fd now, freeing its slot, and tell the handler once.
      s.io.deactivate(index);
      --s.registered;
      s.backend->remove(fd);
      events.bits = IoEvents::kInvalid | (r.events.bits & IoEvents::kHangupOrError);
    } else {
      // Interest may have changed earlier in this batch: deliver only what is still wanted.
      events.bits = r.events.bits & static_cast<std::uint8_t>(s.io.interest(index));
      if (events.bits == 0) continue;
      events.bits |= r.events.bits & IoEvents::kHangupOrError;
    }
    ++calls;
    call_io(fd, generation, events);
  }
  return calls;
}

// A full batch (bounded by kMaxBatch, not by the fds watched) may have left ready fds out.
// Level-triggered, they would come in the next iteration; but every fd ready at the wait is
// served in this one, as with a batch holding them all: poll again without waiting, and
// serve only the fds not served yet in this iteration, until a batch brings none.
std::size_t Reactor::dispatch_more_io() {
  LoopState& s = *state_;
  struct Unmark {
    LoopState& s;
    ~Unmark() {
      for (const int fd : s.served) {
        if (static_cast<std::size_t>(fd) < s.io.size())
          s.io.set_served(static_cast<std::size_t>(fd), false);
      }
      s.served.clear();
    }
  } unmark{s};
  try {
    s.served.reserve(s.registered + s.ready.capacity());
  } catch (const std::bad_alloc&) {
    return 0;  // they come in the next iteration
  }
  for (const Readiness& r : s.ready) {
    const auto fd = static_cast<std::size_t>(detail::token_fd(r.token));
    if (fd < s.io.size() && !s.io.served(fd)) {
      s.io.set_served(fd, true);
      s.served.push_back(static_cast<int>(fd));
    }
  }
  std::size_t calls = 0;
  for (;;) {
    const std::size_t before = s.served.size();
    s.ready.clear();
    if (auto ec = s.backend->poll(s.ready, std::chrono::nanoseconds{0})) {
      throw std::system_error(ec, "reactor: " + std::string(s.backend->name()) + " poll");
    }
    // A callback may have watched more fds than the room reserved above.
    if (s.served.capacity() < s.served.size() + s.ready.size()) return calls;
    calls += dispatch_io(true);
    if (s.served.size() == before || s.ready.size() < s.ready.capacity()) return calls;
  }
}

// The handler is called where it lies (the table's chunks never move). If the call ends
// its own registration (stop, destroy, or the fd found invalid before the call), the handler
// is destroyed when the call returns or throws, and a handler watched meanwhile for the same
// fd takes its place.
void Reactor::call_io(int fd, std::uint32_t generation, IoEvents events) {
  LoopState& s = *state_;
  const auto index = static_cast<std::size_t>(fd);
  s.running_fd = fd;
  s.running_generation = generation;
  struct Done {
    LoopState& s;
    std::size_t index;
    std::uint32_t generation;
    ~Done() {
      s.running_fd = -1;
      if (s.io.live(index, generation)) return;
      detail::IoCallable doomed = std::move(s.io.handler(index));
      if (s.parked) s.io.handler(index) = std::move(s.parked);
    }
  } done{s, index, generation};
  s.io.handler(index)(events);
}

std::size_t Reactor::deliver_signals() {
  LoopState& s = *state_;
  if (s.signal_target < 0) return 0;
  std::uint64_t pending = signals::take_pending(s.signal_target);
  std::size_t calls = 0;
  while (pending != 0) {
    const int signo = __builtin_ctzll(pending) + 1;
    pending &= pending - 1;
    // By index: a handler may add watchers, growing the table.
    for (std::uint32_t i = 0; i < s.signal_slots.size(); ++i) {
      if (!s.signal_slots[i].active || s.signal_slots[i].signo != signo) continue;
      const std::uint32_t generation = s.signal_slots[i].generation;
      SignalHandler handler = std::move(s.signal_slots[i].handler);
      ++calls;
      detail::call_from_stack(
          handler,
          [this, i, generation](SignalHandler& h) {
            if (signal_active(i, generation)) state_->signal_slots[i].handler = std::move(h);
          },
          signo);
    }
  }
  return calls;
}

std::size_t Reactor::fire_timers() {
  LoopState& s = *state_;
  std::size_t calls = 0;
  // The time read right after the poll: later than every deadline it finds due, so no timer
  // fires early; a timer set by an I/O callback since then waits for the next iteration.
  const std::int64_t now = s.now_ns;
  // Timers scheduled from here on (by the callbacks below) wait for the next iteration.
  const std::uint64_t limit = s.timers.sequence();
  while (const auto id = s.timers.pop_due(now, limit)) {
    const std::int64_t period = s.timer_slots[id->index].period;
    TimerHandler handler = std::move(s.timer_slots[id->index].handler);
    if (period == 0) {
      s.timers.release(*id);  // fired: cancel() inside the callback is a no-op
      ++calls;
      handler();
      continue;
    }
    const std::int64_t previous = s.timers.deadline(*id);
    ++calls;
    detail::call_from_stack(handler, [&s, id = *id, previous, period](TimerHandler& h) {
      if (!s.timers.alive(id) || s.timers.scheduled(id)) return;  // cancelled
      s.timer_slots[id.index].handler = std::move(h);
      // Drift-free while on time; never in the past when late (no bursts).
      const std::int64_t fresh = clock_ns();
      std::int64_t next = deadline_after(previous, std::chrono::nanoseconds{period});
      if (next <= fresh) next = deadline_after(fresh, std::chrono::nanoseconds{period});
      s.timers.reschedule(id, next);
    });
  }
  return calls;
}

std::size_t Reactor::run_posted() {
  LoopState& s = *state_;
  if (!s.has_posted.load()) return 0;
  {
    std::lock_guard lock(s.post_mutex);
    s.running.swap(s.posted);
    s.has_posted.store(false);
  }
  // Tasks posted by these tasks land in `posted` and run in the next iteration.
  std::size_t i = 0;
  struct Requeue {
    LoopState& s;
    std::size_t& i;
    ~Requeue() {
      if (i >= s.running.size()) {
        s.running.clear();
        return;
      }
      // A task threw: keep the ones after it, ahead of anything posted since.
      std::lock_guard lock(s.post_mutex);
      s.posted.insert(s.posted.begin(), std::make_move_iterator(s.running.begin() + i),
                      std::make_move_iterator(s.running.end()));
      s.running.clear();
      s.has_posted.store(true);
    }
  } requeue{s, i};
  while (i < s.running.size()) {
    Task task = std::move(s.running[i++]);
    task();
  }
  return i;
}

std::error_code Reactor::after_fork() noexcept {
  LoopState& s = *state_;
  const std::thread::id self = std::this_thread::get_id();
  if constexpr (kDebugChecks) {
    // A parent thread that was running the loop does not exist in the child. When the fork
    // came from one of this loop's callbacks, this thread owns it already and keeps it.
    if (owner_.load() != self) owner_.store(std::thread::id());
  }
  // Forked from inside a callback on this thread: the iteration goes on when it returns.
  // Otherwise a thread that was inside run_once() is gone, and with it the stack frames
  // holding its state: the handlers it had moved out to call, the batch it was walking.
  const bool lost_dispatcher = s.dispatcher != std::thread::id() && s.dispatcher != self;
  if (lost_dispatcher) s.dispatcher = std::thread::id();

  // The post queue. Another thread of the parent may have been inside post(), holding the
  // lock (copied held, with no owner to release it) and halfway through growing `posted`,
  // and the lost loop thread halfway through moving tasks out of `running`. Neither can be
  // trusted nor even destroyed: fresh ones are built over them, and what the old ones held
  // stays allocated until the child exits. The tasks were the parent's to run either way
  // (a send queued for one of its connections must not go out twice), so none runs here.
  std::construct_at(&s.post_mutex);
  std::construct_at(&s.posted);
  std::construct_at(&s.running);
  s.has_posted.store(false);

  if (auto ec = s.backend->after_fork()) return ec;
  // The eventfd is shared with the parent: a post there must not wake us, nor ours it.
  const int fresh = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (fresh < 0) return errno_code();
  s.wake_watcher.stop();
  ::close(s.wake_fd);
  s.wake_fd = fresh;
  std::error_code ec;
  s.wake_watcher = watch(
      fresh, Interest::read, [this](IoEvents) { on_wakeup(); }, ec);
  if (ec) return ec;
  if (s.signal_target >= 0) signals::retarget(s.signal_target, fresh);
  s.wake_pending.store(false);
  if (s.stop_requested.load()) wake();
  s.owner_pid = ::getpid();

  if (lost_dispatcher) {
    // A watcher, repeating timer or signal watcher whose callback the lost thread was
    // running has its handler on that thread's stack: it is stopped here (after the
    // backend has kernel state of its own, so that removing it leaves the parent's alone).
    if (s.running_fd >= 0) {
      const int fd = s.running_fd;
      const auto index = static_cast<std::size_t>(fd);
      s.running_fd = -1;
      // That call never returns: its handler is left as it is, neither run nor destroyed.
      s.io.handler(index).abandon();
      if (s.parked) s.io.handler(index) = std::move(s.parked);
      unwatch(fd, s.running_generation);  // unless the call had ended its watch already
    }
    s.timers.for_each_fired([this](TimerId id) { cancel_timer(id.index, id.generation); });
    for (std::uint32_t i = 0; i < s.signal_slots.size(); ++i) {
      if (s.signal_slots[i].active && !s.signal_slots[i].handler) {
        stop_signal(i, s.signal_slots[i].generation);
      }
    }
    s.ready.clear();
  }
  return {};
}

void Reactor::update_time() noexcept { state_->now_ns = clock_ns(); }

Reactor::Clock::time_point Reactor::now() const noexcept {
  REACTOR_CHECK_LOOP_THREAD(*this, "Reactor::now()");
  return Clock::time_point(std::chrono::nanoseconds(state_->now_ns));
}

std::uint64_t Reactor::iterations() const noexcept {
  REACTOR_CHECK_LOOP_THREAD(*this, "Reactor::iterations()");
  return state_->iterations;
}

std::size_t Reactor::watcher_count() const noexcept {
  REACTOR_CHECK_LOOP_THREAD(*this, "Reactor::watcher_count()");
  return state_->registered - 1;
}

std::size_t Reactor::timer_count() const noexcept {
  REACTOR_CHECK_LOOP_THREAD(*this, "Reactor::timer_count()");
  return state_->timers.alive_count();
}

const detail::LoopRef& Reactor::life() const noexcept { return state_->self; }

}  // namespace reactor
