// SPDX-License-Identifier: MIT
// Built instead of uv.cpp when the library is configured without libuv
// (REACTOR_WITH_LIBUV=OFF): Reactor(uv_loop_t*) stays declared, and says why it cannot work.
#include <stdexcept>

#include "reactor/core/detail/hosted_backend.hpp"

namespace reactor::detail {

std::unique_ptr<Backend> make_uv_backend_on(uv_loop_s*) {
  throw std::invalid_argument(
      "reactor: a Reactor on a uv_loop_t needs the uv backend, and this library was built "
      "without libuv (REACTOR_WITH_LIBUV=OFF)");
}

}  // namespace reactor::detail
