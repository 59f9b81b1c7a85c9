// SPDX-License-Identifier: MIT
#include "reactor/server/detail/server_core.hpp"

#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <stdexcept>
#include <string>

namespace reactor::detail {

namespace {

// The server whose loop this thread is running (a handler calling shutdown() must not wait
// for serve() to end: serve() is waiting for it).
thread_local const ServerCore* t_running = nullptr;

struct RunningScope {
  explicit RunningScope(const ServerCore* core) noexcept : saved(t_running) { t_running = core; }
  ~RunningScope() { t_running = saved; }
  const ServerCore* saved;
};

std::size_t min_nonzero(std::size_t a, std::size_t b) noexcept {
  if (a == 0) return b;
  if (b == 0) return a;
  return std::min(a, b);
}

std::size_t slot_limit(const ServerOptions& o) noexcept {
  switch (o.model) {
    case Model::threading:
      return min_nonzero(o.max_connections, std::max<std::size_t>(o.max_threads, 1));
    case Model::forking:
      return min_nonzero(o.max_connections, std::max<std::size_t>(o.max_children, 1));
    default:
      return o.max_connections;
  }
}

std::size_t loop_count_for(const ServerOptions& o) noexcept {
  if (o.model != Model::pool) return 1;
  if (o.threads != 0) return o.threads;
  return std::max(1u, std::thread::hardware_concurrency());
}

}  // namespace

ServerCore::ServerCore(ServerOptions options)
    : options_(std::move(options)), budget_(slot_limit(options_)), owner_pid_(::getpid()) {
  cancel_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (cancel_fd_ < 0) throw std::system_error(errno, std::generic_category(), "server: eventfd");
  try {
    for (std::size_t i = 0, n = loop_count_for(options_); i < n; ++i) {
      loops_.push_back(std::make_unique<Reactor>(options_.backend));
    }
    workers_ = std::make_unique<Workers>(*loops_[0]);
    if (!options_.shutdown_signals.empty()) watch_shutdown_signals();
  } catch (...) {
    shutdown_watchers_.clear();
    workers_.reset();
    loops_.clear();
    ::close(cancel_fd_);
    throw;
  }
}

// The signal handler itself writes to the cancel fd, so that a signal cancels blocked
// handlers even when the serving thread is one of them (sync); loop 0 then shuts down.
void ServerCore::watch_shutdown_signals() {
  try {
    for (int signo : options_.shutdown_signals) {
      shutdown_watchers_.push_back(loops_[0]->on_signal(
          signo, [this](int) { shutdown(); }, cancel_fd_));
    }
  } catch (const std::invalid_argument& e) {
    throw std::invalid_argument(std::string("shutdown_signals: ") + e.what());
  }
}

ServerCore::~ServerCore() {
  join_all();
  workers_.reset();  // its SIGCHLD watcher goes before the loop
  shutdown_watchers_.clear();
  loops_.clear();
  ::close(cancel_fd_);
}

void ServerCore::serve() {
  {
    std::lock_guard lock(serve_mutex_);
    if (closed_) throw std::logic_error("serve_forever: the server is closed");
    if (serving_) throw std::logic_error("serve_forever: already serving");
    serving_ = true;
  }
  std::exception_ptr failure;
  std::vector<std::thread> others;
  if (!stopping_) {
    auto run = [this, &failure](Reactor& loop, bool record) {
      RunningScope scope(this);
      try {
        loop.run();
      } catch (...) {
        // Handlers are guarded; what reaches here is the loop failing: stop everything.
        if (record) failure = std::current_exception();
        shutdown();
        stop_loops();  // a failed loop cannot drain
      }
    };
    try {
      for (std::size_t i = 1; i < loops_.size(); ++i) {
        others.emplace_back([this, i, run] { run(*loops_[i], false); });
      }
    } catch (...) {
      failure = std::current_exception();
      shutdown();
    }
    if (!failure) run(*loops_[0], true);
    for (std::size_t i = 1; i < loops_.size(); ++i) loops_[i]->stop();
    for (auto& t : others) t.join();
  }
  {
    std::lock_guard lock(serve_mutex_);
    serving_ = false;
  }
  served_.notify_all();
  if (failure) std::rethrow_exception(failure);
}

bool ServerCore::serve_until(const std::function<bool()>& done, std::chrono::milliseconds timeout) {
  {
    std::lock_guard lock(serve_mutex_);
    if (closed_) throw std::logic_error("handle_request: the server is closed");
    if (serving_) throw std::logic_error("handle_request: already serving");
    serving_ = true;
  }
  using Clock = std::chrono::steady_clock;
  const auto deadline = Clock::now() + timeout;
  bool ok = false;
  std::exception_ptr failure;
  {
    RunningScope scope(this);
    try {
      while (!(ok = done()) && !stopping_) {
        std::optional<std::chrono::nanoseconds> left;
        if (timeout.count() > 0) {
          left = deadline - Clock::now();
          if (*left <= std::chrono::nanoseconds{0}) break;
        }
        loops_[0]->run_once(left);
      }
    } catch (...) {
      failure = std::current_exception();
    }
  }
  {
    std::lock_guard lock(serve_mutex_);
    serving_ = false;
  }
  served_.notify_all();
  if (failure) std::rethrow_exception(failure);
  return ok;
}

bool ServerCore::handle_request(const std::function<bool()>& started,
                                const std::function<bool()>& finished,
                                const std::function<void()>& end) {
  if (stopping_ || closed_) return false;
  bool ok = false;
  try {
    ok = serve_until(started, options_.timeout) && serve_until(finished, {});
  } catch (...) {
    end();
    throw;
  }
  end();
  if (!ok && !stopping_ && options_.handle_timeout) options_.handle_timeout();
  return ok;
}

void ServerCore::shutdown() noexcept {
  if (::getpid() != owner_pid_) return;  // a forked child: the parent's loops are not ours
  if (!stopping_.exchange(true)) {
    // Cancels every wait of blocking handlers, in forked children too (they share the fd).
    const std::uint64_t one = 1;
    while (::write(cancel_fd_, &one, sizeof one) < 0 && errno == EINTR) {
    }
    if (begin_drain_ && options_.shutdown_drain.count() > 0) {
      undrained_ = loops_.size();
      try {
        for (std::size_t i = 0; i < loops_.size(); ++i) {
          loops_[i]->post([this, i] { begin_drain_(i); });
        }
      } catch (...) {
        stop_loops();  // out of memory: no drain, cut at close
      }
    } else {
      stop_loops();
    }
  }
  if (t_running == this) return;  // inside a handler: serve() returns when it does
  std::unique_lock lock(serve_mutex_);
  served_.wait(lock, [this] { return !serving_; });
}

void ServerCore::stop_loops() noexcept {
  for (auto& loop : loops_) loop->stop();
}

void ServerCore::loop_drained() noexcept {
  if (undrained_.fetch_sub(1) == 1) stop_loops();
}

void ServerCore::join_all() noexcept {
  shutdown();
  workers_->join_all();
}

bool ServerCore::admit(const Address& client) noexcept {
  ++counters_.accepted;
  if (stopping_) return false;
  if (!options_.verify_request) return true;
  bool allowed = false;
  try {
    allowed = options_.verify_request(client);
  } catch (...) {
    count(fail(client, std::current_exception()));
  }
  if (!allowed) ++counters_.rejected;
  return allowed && !stopping_;  // verify_request may have shut the server down
}

void ServerCore::release_slot(const std::function<void(std::size_t loop)>& rebalance) {
  if (!budget_.release()) return;
  for (std::size_t i = 0; i < loops_.size(); ++i) {
    loops_[i]->post([rebalance, i] { rebalance(i); });
  }
}

ServerStats ServerCore::stats() const noexcept {
  ServerStats s;
  s.accepted = counters_.accepted.load();
  s.rejected = counters_.rejected.load();
  s.handled = counters_.handled.load();
  s.errors = counters_.errors.load();
  s.timeouts = counters_.timeouts.load();
  s.cut = counters_.cut.load();
  s.active = budget_.active();
  s.peak_active = budget_.peak();
  return s;
}

}  // namespace reactor::detail
