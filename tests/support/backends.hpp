// SPDX-License-Identifier: MIT
#pragma once
/// Parameterising a suite over every compiled backend:
///
///   class FooTest : public reactor::test::BackendTest {};
///   TEST_P(FooTest, Bar) { reactor::Reactor loop(backend()); ... }
///   REACTOR_INSTANTIATE_ALL_BACKENDS(FooTest);
///
/// gives test names such as AllBackends/FooTest.Bar/epoll: the last part of every test
/// parameterised over backends is the backend's name (see tests/README.md).
#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace reactor::test {

/// Every backend compiled into the library ("epoll", "uv", "poll", "select"), each warmed
/// up (see warm_up) before the first test runs.
std::vector<std::string> all_backends();

/// Builds, runs once and destroys one Reactor over `backend`, once per process (any thread).
/// libuv opens a pair of process-wide fds the first time a loop is made and never closes
/// them; doing that before a FdLeakCheck starts keeps the check about the test.
void warm_up(const std::string& backend);

/// Base fixture: GetParam() is a backend name, warmed up before each test.
class BackendTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override { warm_up(backend()); }
  const std::string& backend() const { return GetParam(); }
};

/// Names parameterised tests after the backend.
struct BackendName {
  std::string operator()(const ::testing::TestParamInfo<std::string>& info) const {
    return info.param;
  }
};

}  // namespace reactor::test

#define REACTOR_INSTANTIATE_ALL_BACKENDS(Suite)                                  \
  INSTANTIATE_TEST_SUITE_P(AllBackends, Suite,                                   \
                           ::testing::ValuesIn(::reactor::test::all_backends()), \
                           ::reactor::test::BackendName())
