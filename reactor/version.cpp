// SPDX-License-Identifier: MIT
#include "reactor/version.hpp"

namespace reactor {

Version version() noexcept { return kHeaderVersion; }

const char* version_string() noexcept { return REACTOR_VERSION_STRING; }

}  // namespace reactor
