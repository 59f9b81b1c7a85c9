// SPDX-License-Identifier: MIT
// The handles forward to their Reactor while it lives; each is inert after it is gone.
//
// stop() and cancel() detach the handle from its loop before anything else: the call may
// destroy the handle (its handler owned it), a stopped handle touches no loop state again
// (so it may be destroyed anywhere), and the debug checks can tell a stopped handle (no
// loop, an fd) from an empty one (no loop, no fd).
#include <utility>

#include "reactor/core/debug.hpp"
#include "reactor/core/io_watcher.hpp"
#include "reactor/core/reactor.hpp"
#include "reactor/core/signal_watcher.hpp"
#include "reactor/core/timer.hpp"

namespace reactor {

// IoWatcher

IoWatcher::IoWatcher(IoWatcher&& other) noexcept
    : loop_(std::move(other.loop_)),
      fd_(std::exchange(other.fd_, -1)),
      generation_(std::exchange(other.generation_, 0)) {}

IoWatcher& IoWatcher::operator=(IoWatcher&& other) noexcept {
  if (this != &other) {
    stop();
    loop_ = std::move(other.loop_);
    fd_ = std::exchange(other.fd_, -1);
    generation_ = std::exchange(other.generation_, 0);
  }
  return *this;
}

IoWatcher::~IoWatcher() { stop(); }

bool IoWatcher::active() const noexcept {
  Reactor* r = loop();
  if (r == nullptr) return false;
  REACTOR_CHECK_LOOP_THREAD(*r, "IoWatcher::active()");
  return r->watching(fd_, generation_);
}

Interest IoWatcher::interest() const noexcept {
  Reactor* r = loop();
  if (r == nullptr) return Interest::none;
  REACTOR_CHECK_LOOP_THREAD(*r, "IoWatcher::interest()");
  return r->interest_of(fd_, generation_);
}

std::error_code IoWatcher::set_interest(Interest interest) noexcept {
  // A watcher whose Reactor is gone is inert, not misused: EBADF either way.
  REACTOR_CHECK(loop_ || fd_ >= 0, "IoWatcher::set_interest()",
                "the watcher is empty (default-constructed or moved from)");
  REACTOR_CHECK(loop_, "IoWatcher::set_interest()", "the watcher was stopped");
  Reactor* r = loop();
  if (r == nullptr) return std::make_error_code(std::errc::bad_file_descriptor);
  REACTOR_CHECK_LOOP_THREAD(*r, "IoWatcher::set_interest()");
  return r->set_interest(fd_, generation_, interest);
}

void IoWatcher::stop() noexcept {
  const detail::LoopRef loop = std::move(loop_);
  if (!loop || *loop == nullptr) return;
  REACTOR_CHECK_LOOP_THREAD(**loop, "IoWatcher::stop()");
  // unwatch() destroys the handler last, after the slot is updated; if that handler owned
  // this watcher, nothing here is touched after the call.
  (*loop)->unwatch(fd_, generation_);
}

// Timer

Timer::Timer(Timer&& other) noexcept
    : loop_(std::move(other.loop_)),
      index_(std::exchange(other.index_, 0)),
      generation_(std::exchange(other.generation_, 0)) {}

Timer& Timer::operator=(Timer&& other) noexcept {
  if (this != &other) {
    cancel();
    loop_ = std::move(other.loop_);
    index_ = std::exchange(other.index_, 0);
    generation_ = std::exchange(other.generation_, 0);
  }
  return *this;
}

Timer::~Timer() { cancel(); }

bool Timer::active() const noexcept {
  Reactor* r = loop();
  if (r == nullptr) return false;
  REACTOR_CHECK_LOOP_THREAD(*r, "Timer::active()");
  return r->timer_active(index_, generation_);
}

void Timer::cancel() noexcept {
  const detail::LoopRef loop = std::move(loop_);
  if (!loop || *loop == nullptr) return;
  REACTOR_CHECK_LOOP_THREAD(**loop, "Timer::cancel()");
  (*loop)->cancel_timer(index_, generation_);  // may destroy this timer (its handler owned it)
}

// SignalWatcher

SignalWatcher::SignalWatcher(SignalWatcher&& other) noexcept
    : loop_(std::move(other.loop_)),
      signo_(std::exchange(other.signo_, 0)),
      index_(std::exchange(other.index_, 0)),
      generation_(std::exchange(other.generation_, 0)) {}

SignalWatcher& SignalWatcher::operator=(SignalWatcher&& other) noexcept {
  if (this != &other) {
    stop();
    loop_ = std::move(other.loop_);
    signo_ = std::exchange(other.signo_, 0);
    index_ = std::exchange(other.index_, 0);
    generation_ = std::exchange(other.generation_, 0);
  }
  return *this;
}

SignalWatcher::~SignalWatcher() { stop(); }

bool SignalWatcher::active() const noexcept {
  Reactor* r = loop();
  if (r == nullptr) return false;
  REACTOR_CHECK_LOOP_THREAD(*r, "SignalWatcher::active()");
  return r->signal_active(index_, generation_);
}

void SignalWatcher::stop() noexcept {
  const detail::LoopRef loop = std::move(loop_);
  if (!loop || *loop == nullptr) return;
  REACTOR_CHECK_LOOP_THREAD(**loop, "SignalWatcher::stop()");
  (*loop)->stop_signal(index_, generation_);  // may destroy this watcher, as above
}

}  // namespace reactor
