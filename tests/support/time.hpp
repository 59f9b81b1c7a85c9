// SPDX-License-Identifier: MIT
#pragma once
/// Clocks and waits without a loop: durations for messages, polling a condition with a
/// bound, sampling a value on a thread of its own, and a per-test hang guard.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <utility>

namespace reactor::test {

using SteadyClock = std::chrono::steady_clock;

/// Milliseconds (fractional) between two steady_clock points, for messages and timing checks.
inline double ms_between(SteadyClock::time_point from, SteadyClock::time_point to) {
  return std::chrono::duration<double, std::milli>(to - from).count();
}

/// Polls `cond()` every millisecond for at most `cap` (no loop involved); returns cond().
/// Any thread.
template <class Pred>
bool wait_for(Pred cond, std::chrono::milliseconds cap = std::chrono::milliseconds{2000}) {
  const auto deadline = SteadyClock::now() + cap;
  while (!cond() && SteadyClock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds{1});
  }
  return cond();
}

/// Samples `probe()` every `period` on a thread of its own and keeps the largest value.
class Sampler {
 public:
  Sampler(std::function<std::size_t()> probe,
          std::chrono::milliseconds period = std::chrono::milliseconds{1})
      : probe_(std::move(probe)), thread_([this, period] {
          while (!stop_.load()) {
            const std::size_t v = probe_();
            std::size_t m = max_.load();
            while (v > m && !max_.compare_exchange_weak(m, v)) {
            }
            std::this_thread::sleep_for(period);
          }
        }) {}
  Sampler(const Sampler&) = delete;
  Sampler& operator=(const Sampler&) = delete;
  ~Sampler() { stop(); }
  void stop() {
    stop_.store(true);
    if (thread_.joinable()) thread_.join();
  }
  std::size_t max() const { return max_.load(); }

 private:
  std::function<std::size_t()> probe_;
  std::atomic<bool> stop_{false};
  std::atomic<std::size_t> max_{0};
  std::thread thread_;
};

/// Aborts the process, naming the test, if the scope lasts longer than `limit`: the last
/// line of defence against a hung server (a blocked join or waitpid no loop watchdog can
/// reach). ctest reports the abort as a failure of this one test.
class HangGuard {
 public:
  explicit HangGuard(std::chrono::seconds limit)
      : name_(current_test_name()), thread_([this, limit] {
          std::unique_lock lock(mutex_);
          if (!cv_.wait_for(lock, limit, [this] { return done_; })) {
            std::fprintf(stderr, "\n%s: still running after %lld s: aborting (hang)\n",
                         name_.c_str(), static_cast<long long>(limit.count()));
            std::fflush(stderr);
            std::abort();
          }
        }) {}
  HangGuard(const HangGuard&) = delete;
  HangGuard& operator=(const HangGuard&) = delete;
  ~HangGuard() {
    {
      std::lock_guard lock(mutex_);
      done_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }

 private:
  static std::string current_test_name() {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    return info == nullptr ? "test" : std::string(info->test_suite_name()) + "." + info->name();
  }
  std::string name_;
  std::mutex mutex_;
  std::condition_variable cv_;
  bool done_ = false;
  std::thread thread_;
};

}  // namespace reactor::test
