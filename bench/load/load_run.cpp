// SPDX-License-Identifier: MIT
#include "bench/load/load_run.hpp"

#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <string>
#include <system_error>

#include "bench/load/clocks.hpp"
#include "bench/load/connector.hpp"
#include "bench/load/echo_stream.hpp"
#include "bench/load/pattern.hpp"

namespace reactor::bench::load {

namespace {

constexpr std::size_t kScratchBytes = 64 * 1024;
constexpr std::uint64_t kSpareFds = 64;             // std streams, epoll, /proc reads
constexpr std::uint64_t kRetryPauseNs = 1'000'000;  // connect mode: after EAGAIN or an error
constexpr std::uint64_t kSerials = std::uint64_t{1} << 24;  // pattern_key()'s range

std::uint64_t max_in_flight(const Options& o) {
  switch (o.mode) {
    case Mode::kPingPong:
      return std::uint64_t{o.pipeline} * o.size;
    case Mode::kStream:
      return o.window;
    case Mode::kConnect:
      break;
  }
  return o.size;
}

void check_fd_budget(const Options& o) {
  const std::uint64_t need = std::uint64_t{o.idle} + o.conns + kSpareFds;
  rlimit lim{};
  if (::getrlimit(RLIMIT_NOFILE, &lim) != 0) return;
  if (need > lim.rlim_cur && lim.rlim_cur < lim.rlim_max) {
    lim.rlim_cur = lim.rlim_max;  // raising the soft limit to the hard one is always allowed
    ::setrlimit(RLIMIT_NOFILE, &lim);
    ::getrlimit(RLIMIT_NOFILE, &lim);
  }
  if (need > lim.rlim_cur) {
    throw std::runtime_error("--idle + --conns need about " + std::to_string(need) +
                             " file descriptors, RLIMIT_NOFILE allows " +
                             std::to_string(lim.rlim_cur));
  }
}

std::uint64_t ErrorCounts::*kind_of(const std::error_code& ec) {
  const int e = ec.value();
  return e == ECONNRESET || e == EPIPE ? &ErrorCounts::reset : &ErrorCounts::other;
}

int timeout_ms(std::uint64_t now, std::uint64_t wake) {
  if (wake <= now) return 0;
  return static_cast<int>(std::min<std::uint64_t>((wake - now + 999'999) / 1'000'000, 1000));
}

}  // namespace

struct LoadRun::Slot {
  explicit Slot(const Options& o) : stream(o.size, max_in_flight(o)) {}

  int fd = -1;
  std::uint32_t generation = 0;  // bumped on close: events for the old fd are dropped
  unsigned interest = 0;         // Poller::kRead / kWrite as registered
  bool connecting = false;
  std::uint64_t started_ns = 0;  // connect mode: when this attempt began, or when to retry
  EchoStream stream;
};

LoadRun::LoadRun(const Options& options, Endpoint endpoint)
    : options_(options), endpoint_(std::move(endpoint)), scratch_(kScratchBytes) {
  check_fd_budget(options_);
  if (options_.server_pid != 0 && !sample_process_cpu(options_.server_pid)) {
    throw std::runtime_error("cannot read /proc/" + std::to_string(options_.server_pid) +
                             "/stat (--server-pid)");
  }
}

LoadRun::~LoadRun() {
  for (std::uint32_t i = 0; i < slots_.size(); ++i) close_slot(i);
  for (const int fd : idle_fds_) ::close(fd);
}

Report LoadRun::run() {
  setup();
  std::uint64_t now = now_ns();
  warmup_end_ = now + seconds_to_ns(options_.warmup);
  for (std::uint32_t i = 0; i < slots_.size(); ++i) kick(i, now);
  for (;;) {
    now = now_ns();
    const bool all_gone = options_.mode != Mode::kConnect && live_ == 0;
    if (phase_ == Phase::kWarmup && all_gone) break;  // nothing left to measure
    if (phase_ == Phase::kWarmup && now >= warmup_end_) begin_measure(now);
    if (phase_ == Phase::kMeasure && (now >= window_end_ || all_gone)) end_measure(now);
    if (phase_ == Phase::kDrain && (now >= drain_deadline_ || settled())) break;
    const std::uint64_t wake = phase_ == Phase::kWarmup    ? warmup_end_
                               : phase_ == Phase::kMeasure ? window_end_
                                                           : drain_deadline_;
    const int timeout = retry_.empty() ? timeout_ms(now, wake) : std::min(timeout_ms(now, wake), 1);
    std::error_code ec;
    for (const PollEvent& event : poller_.poll(timeout, ec)) dispatch(event);
    if (ec) throw std::system_error(ec, "epoll_wait");
    if (!retry_.empty()) run_retries(now_ns());
  }
  return finish();
}

void LoadRun::setup() {
  const std::uint64_t deadline = now_ns() + seconds_to_ns(options_.connect_timeout);
  const auto note = [this](const Established& e) {
    report_.errors.connect += e.failures;
    report_.connect_retries += e.retries;
    if (report_.errors.first.empty() && !e.first_error.empty())
      report_.errors.first = e.first_error;
  };
  if (options_.idle > 0) {
    Established idle = establish(endpoint_, options_.idle, deadline);
    note(idle);
    idle_fds_ = std::move(idle.fds);
  }
  if (options_.mode == Mode::kConnect) {
    slots_.assign(options_.conns, Slot(options_));
    return;
  }
  Established active = establish(endpoint_, options_.conns, deadline);
  note(active);
  slots_.reserve(active.fds.size());
  for (const int fd : active.fds) {
    const auto index = static_cast<std::uint32_t>(slots_.size());
    Slot& s = slots_.emplace_back(options_);
    s.fd = fd;
    s.stream.reset(pattern_key(next_serial_++));
    s.interest = Poller::kRead;
    if (const auto ec = poller_.add(fd, token(index), s.interest)) {
      ::close(fd);
      s.fd = -1;
      error(&ErrorCounts::other, "epoll_ctl: " + ec.message());
      continue;
    }
    ++live_;
  }
}

void LoadRun::kick(std::uint32_t index, std::uint64_t now) {
  Slot& s = slots_[index];
  switch (options_.mode) {
    case Mode::kPingPong:
      s.stream.allow(std::uint64_t{options_.pipeline} * options_.size);
      break;
    case Mode::kStream:
      s.stream.allow(options_.window);
      break;
    case Mode::kConnect:
      start_cycle(index, now);
      return;
  }
  if (s.fd >= 0) flush(index);
}

void LoadRun::begin_measure(std::uint64_t now) {
  phase_ = Phase::kMeasure;
  measuring_ = true;
  histogram_.clear();
  report_.messages = report_.bytes = report_.connects = 0;
  client_cpu_start_ = self_cpu_us();
  if (options_.server_pid != 0) server_cpu_start_ = sample_process_cpu(options_.server_pid);
  window_start_ = now;
  window_end_ = now + seconds_to_ns(options_.seconds);
}

void LoadRun::end_measure(std::uint64_t now) {
  window_stop_ = now;
  report_.client_cpu_us = self_cpu_us() - client_cpu_start_;
  if (options_.server_pid != 0) {
    const auto end = sample_process_cpu(options_.server_pid);
    if (end && server_cpu_start_) {
      bool exact = false;
      report_.server_cpu_us = cpu_us_between(*server_cpu_start_, *end, &exact);
      report_.server_cpu_exact = exact;
    }
  }
  phase_ = Phase::kDrain;
  measuring_ = false;
  sending_ = false;
  retry_.clear();
  drain_deadline_ = now + seconds_to_ns(options_.grace);
}

bool LoadRun::settled() const noexcept {
  return std::all_of(slots_.begin(), slots_.end(), [this](const Slot& s) {
    return s.fd < 0 || (options_.mode != Mode::kConnect && s.stream.settled());
  });
}

void LoadRun::dispatch(const PollEvent& event) {
  const auto index = static_cast<std::uint32_t>(event.token);
  if (index >= slots_.size()) return;
  const Slot& s = slots_[index];
  if (s.fd < 0 || s.generation != static_cast<std::uint32_t>(event.token >> 32)) return;
  if (options_.mode == Mode::kConnect) {
    on_cycle_event(index, event);
  } else {
    on_stream_event(index, event);
  }
}

void LoadRun::on_stream_event(std::uint32_t index, const PollEvent& event) {
  Slot& s = slots_[index];
  if (event.readable || event.failed) {
    const IoResult r = s.stream.read_some(s.fd, scratch_, measuring_ ? &histogram_ : nullptr);
    switch (r.state) {
      case IoState::kDone:
        if (measuring_) {
          report_.messages += r.messages;
          report_.bytes += r.bytes;
        }
        if (sending_ && options_.mode == Mode::kPingPong) {
          s.stream.allow(r.messages * options_.size);
        } else if (sending_) {
          s.stream.allow_up_to(s.stream.received() + options_.window);
        }
        // With EPOLLOUT armed the socket is full: writing now would only fail.
        if ((s.interest & Poller::kWrite) == 0 && !flush(index)) return;
        break;
      case IoState::kBlocked:
        break;
      case IoState::kClosed:
        drop(index, &ErrorCounts::closed, "closed by the server");
        return;
      case IoState::kFailed:
        drop(index, kind_of(r.error), r.error.message());
        return;
    }
  }
  if (event.writable) flush(index);
}

bool LoadRun::flush(std::uint32_t index) {
  Slot& s = slots_[index];
  const IoResult w = s.stream.write_some(s.fd, scratch_);
  if (w.state == IoState::kFailed) {
    drop(index, kind_of(w.error), w.error.message());
    return false;
  }
  const unsigned want = Poller::kRead | (w.state == IoState::kBlocked ? Poller::kWrite : 0u);
  if (want != s.interest) {
    if (const auto ec = poller_.modify(s.fd, token(index), want)) {
      drop(index, &ErrorCounts::other, "epoll_ctl: " + ec.message());
      return false;
    }
    s.interest = want;
  }
  return true;
}

// Connect mode: connect, write `size` bytes, read them back, close; again.

void LoadRun::start_cycle(std::uint32_t index, std::uint64_t now) {
  Slot& s = slots_[index];
  std::error_code ec;
  const int fd = endpoint_.open_socket(ec);
  if (fd < 0) {
    error(&ErrorCounts::other, "socket: " + ec.message());
    retry_later(index, now + kRetryPauseNs);
    return;
  }
  s.stream.reset(pattern_key(next_serial_++ % kSerials));
  s.stream.allow(options_.size);
  s.started_ns = now;
  switch (endpoint_.start_connect(fd, ec)) {
    case ConnectStart::kDone:
    case ConnectStart::kPending:
      break;
    case ConnectStart::kRetry:
      ::close(fd);
      ++report_.connect_retries;
      retry_later(index, now + kRetryPauseNs);
      return;
    case ConnectStart::kFailed:
      ::close(fd);
      error(&ErrorCounts::connect, "connect: " + ec.message());
      retry_later(index, now + kRetryPauseNs);
      return;
  }
  // Until connected, wait for writable; after, flush() sets read (+ write while blocked).
  s.fd = fd;
  s.connecting = true;
  s.interest = Poller::kWrite;
  if (const auto err = poller_.add(fd, token(index), s.interest)) {
    drop(index, &ErrorCounts::other, "epoll_ctl: " + err.message());
  }
}

void LoadRun::on_cycle_event(std::uint32_t index, const PollEvent& event) {
  Slot& s = slots_[index];
  if (s.connecting) {
    if (const auto ec = Endpoint::connect_result(s.fd)) {
      drop(index, &ErrorCounts::connect, "connect: " + ec.message());
      return;
    }
    s.connecting = false;
    flush(index);
    return;  // nothing can have come back before it was sent
  }
  if (event.readable || event.failed) {
    const IoResult r = s.stream.read_some(s.fd, scratch_, nullptr);
    switch (r.state) {
      case IoState::kDone:
        if (measuring_) report_.bytes += r.bytes;
        if (s.stream.settled()) {
          finish_cycle(index, now_ns());
          return;
        }
        break;
      case IoState::kBlocked:
        break;
      case IoState::kClosed:
        drop(index, &ErrorCounts::closed, "closed by the server before the echo");
        return;
      case IoState::kFailed:
        drop(index, kind_of(r.error), r.error.message());
        return;
    }
  }
  if (event.writable) flush(index);
}

void LoadRun::finish_cycle(std::uint32_t index, std::uint64_t now) {
  if (measuring_) {
    histogram_.record(now - slots_[index].started_ns);
    ++report_.messages;
    ++report_.connects;
  }
  close_slot(index);
  if (sending_) start_cycle(index, now);
}

void LoadRun::retry_later(std::uint32_t index, std::uint64_t at) {
  if (!sending_) return;
  slots_[index].started_ns = at;
  retry_.push_back(index);
}

void LoadRun::run_retries(std::uint64_t now) {
  due_.clear();
  std::size_t kept = 0;
  for (const std::uint32_t index : retry_) {
    if (slots_[index].started_ns <= now) {
      due_.push_back(index);
    } else {
      retry_[kept++] = index;
    }
  }
  retry_.resize(kept);
  for (const std::uint32_t index : due_) start_cycle(index, now);
}

void LoadRun::drop(std::uint32_t index, ErrorKind kind, const std::string& why) {
  error(kind,
        "connection #" + std::to_string(pattern_serial(slots_[index].stream.key())) + ": " + why);
  close_slot(index);
  if (options_.mode == Mode::kConnect) {
    retry_later(index, now_ns() + kRetryPauseNs);
  } else {
    --live_;
  }
}

void LoadRun::close_slot(std::uint32_t index) noexcept {
  Slot& s = slots_[index];
  if (s.fd < 0) return;
  ::close(s.fd);  // also leaves the epoll set
  s.fd = -1;
  ++s.generation;
  s.interest = 0;
  s.connecting = false;
}

void LoadRun::error(ErrorKind kind, const std::string& why) {
  ++(report_.errors.*kind);
  if (report_.errors.first.empty()) report_.errors.first = why;
}

std::uint64_t LoadRun::token(std::uint32_t index) const noexcept {
  return std::uint64_t{slots_[index].generation} << 32 | index;
}

Report LoadRun::finish() {
  for (std::uint32_t i = 0; i < slots_.size(); ++i) {
    const Slot& s = slots_[i];
    if (s.fd < 0) continue;
    if (options_.mode == Mode::kConnect || !s.stream.settled()) {
      error(&ErrorCounts::stalled, "connection #" + std::to_string(pattern_serial(s.stream.key())) +
                                       ": " +
                                       std::to_string(s.stream.target() - s.stream.received()) +
                                       " bytes not echoed within the grace period");
    }
    close_slot(i);
  }
  // An idle connection still open and silent: recv would block.
  for (const int fd : idle_fds_) {
    char c;
    const ssize_t n = ::recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      ++report_.idle_open;
    } else {
      error(&ErrorCounts::idle_closed,
            n == 0  ? "an idle connection was closed by the server"
            : n > 0 ? "an idle connection received data"
                    : std::string("an idle connection failed: ") + std::strerror(errno));
    }
    ::close(fd);
  }
  idle_fds_.clear();

  Report& r = report_;
  r.mode = std::string(mode_name(options_.mode));
  r.address = endpoint_.text();
  r.conns = options_.conns;
  r.idle = options_.idle;
  r.size = options_.size;
  r.pipeline = options_.mode == Mode::kPingPong ? options_.pipeline : 1;
  r.warmup = options_.warmup;
  r.seconds =
      window_stop_ > window_start_ ? static_cast<double>(window_stop_ - window_start_) / 1e9 : 0.0;
  r.server_cpu_asked = options_.server_pid != 0;
  if (window_stop_ == 0) r.messages = r.bytes = r.connects = 0;  // the window never opened
  const auto us = [](std::uint64_t ns) { return static_cast<double>(ns) / 1e3; };
  r.latency_samples = histogram_.count();
  r.p50_us = us(histogram_.quantile(0.50));
  r.p90_us = us(histogram_.quantile(0.90));
  r.p99_us = us(histogram_.quantile(0.99));
  r.p999_us = us(histogram_.quantile(0.999));
  r.max_us = us(histogram_.max());
  return r;
}

}  // namespace reactor::bench::load
