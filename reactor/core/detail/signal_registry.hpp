// SPDX-License-Identifier: MIT
#pragma once
/// Process-wide signal plumbing shared by every Reactor. Each loop that watches signals owns
/// one of a fixed number of "targets": a wake-up fd, a mask of the signals it wants and a
/// mask of those that arrived. The process's handler (async-signal-safe: atomics and write()
/// only) marks the signal pending in every target that wants it and writes to its wake fd.
/// The first watch of a signal in the process installs the handler (SA_RESTART) and keeps
/// the old disposition; the last unwatch restores it.

#include <cstdint>
#include <system_error>

namespace reactor::detail::signals {

/// Largest signal number supported (Linux: SIGRTMAX is 64).
constexpr int kMaxSignal = 64;
/// How many loops may watch signals at once.
constexpr int kMaxTargets = 64;

/// True for a signal a watcher may catch (1..64, not SIGKILL or SIGSTOP).
bool catchable(int signo) noexcept;

/// Claims a target for a loop whose wake-up fd is `wake_fd` (an eventfd). -1 if all taken.
int attach(int wake_fd) noexcept;
/// Points a target at a new wake-up fd (after fork).
void retarget(int target, int wake_fd) noexcept;
/// Releases a target; after it returns the handler no longer touches the old wake fd.
void detach(int target) noexcept;

/// Adds `signo` to the target's mask, installing the process handler if it is the first.
std::error_code watch(int target, int signo) noexcept;
/// Removes `signo` from the target's mask, restoring the old disposition if it was the last.
void unwatch(int target, int signo) noexcept;

/// In a child after fork() that leaves the parent's loops alone (a forking server's child):
/// puts back every disposition the registry replaced, so the child reacts to signals as the
/// program did before any watcher (SIGINT kills it, say). Takes no lock: a parent thread that
/// held it does not exist in the child.
void restore_dispositions_in_child() noexcept;

/// Takes the set of pending signals of a target (bit signo-1), clearing it.
std::uint64_t take_pending(int target) noexcept;

}  // namespace reactor::detail::signals
