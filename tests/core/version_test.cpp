// SPDX-License-Identifier: MIT
// The version three ways: the generated macros, reactor::version() / version_string() from
// the library, and the project's own version, which the build passes in as
// REACTOR_PROJECT_VERSION (so a header generated from anything else fails here).
#include <cstdio>
#include <string>

#include <gtest/gtest.h>

#include "reactor/version.hpp"

#ifndef REACTOR_PROJECT_VERSION
#error "the build passes project(VERSION) as REACTOR_PROJECT_VERSION"
#endif

namespace {

std::string dotted(int major, int minor, int patch) {
  return std::to_string(major) + "." + std::to_string(minor) + "." + std::to_string(patch);
}

TEST(VersionTest, MacrosAreTheProjectVersion) {
  EXPECT_EQ(std::string(REACTOR_VERSION_STRING), REACTOR_PROJECT_VERSION);
  EXPECT_EQ(dotted(REACTOR_VERSION_MAJOR, REACTOR_VERSION_MINOR, REACTOR_VERSION_PATCH),
            REACTOR_PROJECT_VERSION);
  EXPECT_EQ(REACTOR_VERSION_NUMBER,
            REACTOR_VERSION_MAJOR * 10000 + REACTOR_VERSION_MINOR * 100 + REACTOR_VERSION_PATCH);
}

TEST(VersionTest, LibraryReportsTheVersionOfItsHeaders) {
  const reactor::Version v = reactor::version();
  EXPECT_EQ(v.major, REACTOR_VERSION_MAJOR);
  EXPECT_EQ(v.minor, REACTOR_VERSION_MINOR);
  EXPECT_EQ(v.patch, REACTOR_VERSION_PATCH);
  EXPECT_EQ(v.major, reactor::kHeaderVersion.major);
  EXPECT_EQ(v.minor, reactor::kHeaderVersion.minor);
  EXPECT_EQ(v.patch, reactor::kHeaderVersion.patch);
}

TEST(VersionTest, VersionStringIsTheDottedVersion) {
  const reactor::Version v = reactor::version();
  ASSERT_NE(reactor::version_string(), nullptr);
  EXPECT_EQ(std::string(reactor::version_string()), dotted(v.major, v.minor, v.patch));
  EXPECT_EQ(std::string(reactor::version_string()), REACTOR_PROJECT_VERSION);
  // A static string: the same pointer every call.
  EXPECT_EQ(reactor::version_string(), reactor::version_string());
}

}  // namespace
