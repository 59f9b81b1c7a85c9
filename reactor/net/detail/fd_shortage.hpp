// SPDX-License-Identifier: MIT
#pragma once
// Between the listeners (listener.cpp) and the library's own closes (socket.cpp): a listener
// backing off for lack of fds retries at once when this thread frees one.

#include <atomic>

namespace reactor::detail {

/// Listeners backing off for lack of fds, in the whole process: while it is 0 a close costs
/// one relaxed load more.
extern std::atomic<unsigned> listeners_backing_off;

/// Makes the listeners of this thread that back off for lack of fds retry now.
void retry_backing_off_listeners() noexcept;

}  // namespace reactor::detail
