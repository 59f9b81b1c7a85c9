// SPDX-License-Identifier: MIT
#pragma once
/// Which sanitizer, if any, this test binary is built with, for the few tests that must
/// know: allocation counting (sanitizers allocate behind our back), forking from threads
/// (ASan's allocator is not fork-safe), and latency bounds (instrumented code is slower).

#if defined(__has_feature)
#define REACTOR_TEST_HAS_FEATURE(x) __has_feature(x)
#else
#define REACTOR_TEST_HAS_FEATURE(x) 0
#endif

#if defined(__SANITIZE_ADDRESS__) || REACTOR_TEST_HAS_FEATURE(address_sanitizer)
#define REACTOR_TEST_ASAN 1
#else
#define REACTOR_TEST_ASAN 0
#endif
#if defined(__SANITIZE_THREAD__) || REACTOR_TEST_HAS_FEATURE(thread_sanitizer)
#define REACTOR_TEST_TSAN 1
#else
#define REACTOR_TEST_TSAN 0
#endif
#if REACTOR_TEST_HAS_FEATURE(memory_sanitizer)
#define REACTOR_TEST_MSAN 1
#else
#define REACTOR_TEST_MSAN 0
#endif
/// For #if: any sanitizer that replaces the allocator.
#define REACTOR_TEST_SANITIZED (REACTOR_TEST_ASAN || REACTOR_TEST_TSAN || REACTOR_TEST_MSAN)

namespace reactor::test {

inline constexpr bool kAsan = REACTOR_TEST_ASAN;
inline constexpr bool kTsan = REACTOR_TEST_TSAN;
inline constexpr bool kMsan = REACTOR_TEST_MSAN;

/// True under any sanitizer that replaces the allocator.
inline constexpr bool kSanitized = kAsan || kTsan || kMsan;

/// The factor a test's latency bound is widened by here: 1 in plain
/// builds, where the contract is checked as written; 2 under ASan and 5 under TSan, whose
/// instrumentation slows every thread start, allocation and lock. Only bounds on how fast
/// the server answers are scaled, never counts or orderings.
inline constexpr double kLatencySlack = kTsan ? 5.0 : (kSanitized ? 2.0 : 1.0);

}  // namespace reactor::test
