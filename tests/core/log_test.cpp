// SPDX-License-Identifier: MIT
// The log hook: one process-wide handler receives the library's diagnostics with a level;
// reports below the threshold are dropped; an empty handler restores the default (stderr);
// a throwing handler loses only its report; long reports are cut and say so.
#include <gtest/gtest.h>

#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "reactor/core/log.hpp"

namespace {

using reactor::LogLevel;

/// Installs a capturing handler and threshold for one test; puts the old ones back.
class Capture {
 public:
  explicit Capture(LogLevel level = LogLevel::debug) : level_(reactor::log_level()) {
    reactor::set_log_level(level);
    previous_ = reactor::set_log_handler([this](LogLevel l, std::string_view m) {
      std::lock_guard lock(mutex_);
      reports_.emplace_back(l, std::string(m));
    });
  }
  ~Capture() {
    reactor::set_log_handler(std::move(previous_));
    reactor::set_log_level(level_);
  }
  std::vector<std::pair<LogLevel, std::string>> reports() {
    std::lock_guard lock(mutex_);
    return reports_;
  }

 private:
  LogLevel level_;
  reactor::LogHandler previous_;
  std::mutex mutex_;
  std::vector<std::pair<LogLevel, std::string>> reports_;
};

TEST(LogTest, HandlerReceivesLevelAndFormattedText) {
  Capture capture;
  reactor::detail::log(LogLevel::warning, "accept on %s failed: %d", "127.0.0.1:7000", 24);
  const auto reports = capture.reports();
  ASSERT_EQ(reports.size(), 1u);
  EXPECT_EQ(reports[0].first, LogLevel::warning);
  EXPECT_EQ(reports[0].second, "accept on 127.0.0.1:7000 failed: 24");
}

TEST(LogTest, ReportsBelowTheThresholdAreDropped) {
  Capture capture(LogLevel::warning);
  EXPECT_FALSE(reactor::detail::log_enabled(LogLevel::info));
  EXPECT_TRUE(reactor::detail::log_enabled(LogLevel::error));
  reactor::detail::log(LogLevel::debug, "d");
  reactor::detail::log(LogLevel::info, "i");
  reactor::detail::log(LogLevel::warning, "w");
  reactor::detail::log(LogLevel::error, "e");
  const auto reports = capture.reports();
  ASSERT_EQ(reports.size(), 2u);
  EXPECT_EQ(reports[0].second, "w");
  EXPECT_EQ(reports[1].second, "e");
}

TEST(LogTest, DefaultIsWarningToStderrAndEmptyHandlerRestoresIt) {
  EXPECT_EQ(reactor::log_level(), LogLevel::warning);
  {
    Capture capture;
    reactor::LogHandler mine = reactor::set_log_handler({});
    EXPECT_TRUE(static_cast<bool>(mine)) << "set_log_handler returns the handler it replaces";
    testing::internal::CaptureStderr();
    reactor::detail::log(LogLevel::error, "to %s", "stderr");
    EXPECT_EQ(testing::internal::GetCapturedStderr(), "reactor: error: to stderr\n");
    EXPECT_TRUE(capture.reports().empty());
    reactor::set_log_handler(std::move(mine));  // so that ~Capture restores the default
  }
  EXPECT_FALSE(static_cast<bool>(reactor::set_log_handler({}))) << "the default is empty";
}

TEST(LogTest, ThrowingHandlerLosesOnlyItsReport) {
  Capture capture;
  reactor::LogHandler mine = reactor::set_log_handler(
      [](LogLevel, std::string_view) { throw std::runtime_error("handler failed"); });
  testing::internal::CaptureStderr();
  EXPECT_NO_THROW(reactor::detail::log(LogLevel::error, "lost"));
  EXPECT_EQ(testing::internal::GetCapturedStderr(), "");
  reactor::set_log_handler(std::move(mine));
  reactor::detail::log(LogLevel::error, "kept");
  ASSERT_EQ(capture.reports().size(), 1u);
  EXPECT_EQ(capture.reports()[0].second, "kept");
}

TEST(LogTest, LongReportIsCutAndSaysSo) {
  Capture capture;
  const std::string text(2000, 'x');
  reactor::detail::log(LogLevel::error, "%s", text.c_str());
  ASSERT_EQ(capture.reports().size(), 1u);
  const std::string got = capture.reports()[0].second;
  EXPECT_LT(got.size(), text.size());
  EXPECT_GE(got.size(), 200u);
  EXPECT_EQ(got.substr(got.size() - 3), "...");
}

TEST(LogTest, ReportsFromManyThreadsAllArrive) {
  Capture capture;
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([t] {
      for (int i = 0; i < 100; ++i) reactor::detail::log(LogLevel::info, "t%d %d", t, i);
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(capture.reports().size(), 400u);
}

TEST(LogTest, HandlerMayLogAndReplaceItself) {
  Capture capture;
  reactor::LogHandler mine;
  mine = reactor::set_log_handler([&mine](LogLevel, std::string_view m) {
    reactor::LogHandler self = reactor::set_log_handler(std::move(mine));  // runs on, safely
    reactor::detail::log(LogLevel::error, "after %s", std::string(m).c_str());
  });
  reactor::detail::log(LogLevel::error, "first");
  ASSERT_EQ(capture.reports().size(), 1u);
  EXPECT_EQ(capture.reports()[0].second, "after first");
}

TEST(LogTest, LevelNames) {
  EXPECT_STREQ(reactor::to_string(LogLevel::debug), "debug");
  EXPECT_STREQ(reactor::to_string(LogLevel::info), "info");
  EXPECT_STREQ(reactor::to_string(LogLevel::warning), "warning");
  EXPECT_STREQ(reactor::to_string(LogLevel::error), "error");
}

}  // namespace
