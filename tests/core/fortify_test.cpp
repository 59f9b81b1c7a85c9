// SPDX-License-Identifier: MIT
// The release build is compiled with -D_FORTIFY_SOURCE=3 (CMakePresets.json). Level 3
// checks copies into buffers whose size is known only at run time (via
// __builtin_dynamic_object_size), which level 2 cannot. This test proves the level is in
// effect: a copy one byte past a malloc'd buffer of run-time size must abort with glibc's
// "buffer overflow detected" before writing. Builds without the flag (debug, sanitizers)
// skip it.
#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>

namespace {

#if defined(_FORTIFY_SOURCE) && _FORTIFY_SOURCE >= 3 && defined(__OPTIMIZE__)
constexpr bool kFortify3 = true;
#else
constexpr bool kFortify3 = false;
#endif

volatile std::size_t g_size = 16;  // opaque to the compiler: a run-time size
char* volatile g_sink = nullptr;   // keeps the copy from being optimised away

[[maybe_unused]] void copy_one_past_the_end() {
  const std::size_t n = g_size;
  char* buffer = static_cast<char*>(std::malloc(n));
  char source[64] = {};
  std::memcpy(buffer, source, n + 1 > sizeof source ? sizeof source : n + 1);
  g_sink = buffer;
  std::free(g_sink);
}

TEST(FortifyTest, RuntimeSizedOverflowIsCaught) {
  if (!kFortify3) GTEST_SKIP() << "not built with -D_FORTIFY_SOURCE=3 and optimisation";
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(copy_one_past_the_end(), "buffer overflow detected");
}

}  // namespace
