// SPDX-License-Identifier: MIT
#pragma once
/// Assertions on error codes and exceptions, and throwing from errno.
#include <gtest/gtest.h>

#include <cerrno>
#include <exception>
#include <initializer_list>
#include <string>
#include <system_error>

namespace reactor::test {

/// Success when `ec` names the same errno as `expected` (whatever its category).
inline ::testing::AssertionResult IsErrc(const std::error_code& ec, std::errc expected) {
  if (ec == expected) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure()
         << "got " << (ec ? ec.message() : std::string("no error")) << " (" << ec.value()
         << "), expected " << std::make_error_code(expected).message() << " ("
         << static_cast<int>(expected) << ")";
}

/// Success when `ec` names one of `expected`.
inline ::testing::AssertionResult IsOneOf(const std::error_code& ec,
                                          std::initializer_list<std::errc> expected) {
  std::string names;
  for (std::errc e : expected) {
    if (ec == e) return ::testing::AssertionSuccess();
    names += (names.empty() ? "" : " or ") + std::make_error_code(e).message();
  }
  return ::testing::AssertionFailure() << "got " << (ec ? ec.message() : std::string("no error"))
                                       << " (" << ec.value() << "), expected " << names;
}

/// Success when calling `fn` throws std::system_error whose code names `expected`.
template <typename Fn>
::testing::AssertionResult ThrowsErrc(Fn&& fn, std::errc expected) {
  try {
    fn();
  } catch (const std::system_error& e) {
    return IsErrc(e.code(), expected) << " (thrown: " << e.what() << ")";
  } catch (const std::exception& e) {
    return ::testing::AssertionFailure() << "threw something else: " << e.what();
  } catch (...) {
    return ::testing::AssertionFailure() << "threw a non-exception";
  }
  return ::testing::AssertionFailure() << "did not throw";
}

/// std::system_error from errno, with what was being done.
[[noreturn]] inline void throw_errno(const char* what) {
  throw std::system_error(errno, std::generic_category(), what);
}

}  // namespace reactor::test
