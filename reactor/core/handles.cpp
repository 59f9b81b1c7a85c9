// The handles forward to their Reactor while it lives; each is inert after it is gone.
#include <utility>

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
  return r != nullptr && r->watching(fd_, generation_);
}

Interest IoWatcher::interest() const noexcept {
  Reactor* r = loop();
  return r != nullptr ? r->interest_of(fd_, generation_) : Interest::none;
}

std::error_code IoWatcher::set_interest(Interest interest) noexcept {
  Reactor* r = loop();
  if (r == nullptr) return std::make_error_code(std::errc::bad_file_descriptor);
  return r->set_interest(fd_, generation_, interest);
}

void IoWatcher::stop() noexcept {
  // unwatch() destroys the handler last, after the slot is updated; if that handler owned
  // this watcher, nothing here is touched after the call.
  if (Reactor* r = loop()) r->unwatch(fd_, generation_);
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
  return r != nullptr && r->timer_active(index_, generation_);
}

void Timer::cancel() noexcept {
  if (Reactor* r = loop()) r->cancel_timer(index_, generation_);
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
  return r != nullptr && r->signal_active(index_, generation_);
}

void SignalWatcher::stop() noexcept {
  if (Reactor* r = loop()) r->stop_signal(index_, generation_);
}

}  // namespace reactor
