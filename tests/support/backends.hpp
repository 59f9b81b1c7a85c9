#pragma once
/// Parameterising a suite over every compiled backend:
///
///   class FooTest : public reactor::test::BackendTest {};
///   TEST_P(FooTest, Bar) { reactor::Reactor loop(backend()); ... }
///   REACTOR_INSTANTIATE_ALL_BACKENDS(FooTest);
///
/// gives test names such as AllBackends/FooTest.Bar/epoll.
#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace reactor::test {

/// Every backend compiled into the library ("epoll", "uv", "poll", "select").
std::vector<std::string> all_backends();

/// Base fixture: GetParam() is a backend name.
class BackendTest : public ::testing::TestWithParam<std::string> {
 protected:
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
