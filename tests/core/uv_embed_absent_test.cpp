// SPDX-License-Identifier: MIT
// Built only when the library has no libuv (REACTOR_WITH_LIBUV=OFF): Reactor(uv_loop_t*) is
// still declared, so that code naming it compiles, and it refuses with a reason.
#include <gtest/gtest.h>

#include <cstddef>
#include <stdexcept>
#include <string>

#include "reactor/core/reactor.hpp"

namespace {

TEST(UvEmbedAbsentTest, ConstructorSaysTheLibraryHasNoLibuv) {
  // Any non-null pointer: it is refused before anything reads it.
  alignas(std::max_align_t) unsigned char not_a_loop[64] = {};
  try {
    reactor::Reactor loop(reinterpret_cast<uv_loop_s*>(not_a_loop));
    ADD_FAILURE() << "a Reactor was built on a uv loop without libuv";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("REACTOR_WITH_LIBUV=OFF"), std::string::npos) << e.what();
  }
}

}  // namespace
