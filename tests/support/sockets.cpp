// SPDX-License-Identifier: MIT
#include "tests/support/sockets.hpp"

#include <dirent.h>

#include <cstdlib>
#include <cstring>

namespace reactor::test {

TempDir::TempDir() {
  char templ[] = "/tmp/reactor-test-XXXXXX";
  if (::mkdtemp(templ) == nullptr) throw_errno("mkdtemp");
  path_ = templ;
}

TempDir::~TempDir() {
  if (DIR* dir = ::opendir(path_.c_str())) {
    while (const dirent* e = ::readdir(dir)) {
      if (std::strcmp(e->d_name, ".") != 0 && std::strcmp(e->d_name, "..") != 0) {
        ::unlink((path_ + "/" + e->d_name).c_str());
      }
    }
    ::closedir(dir);
  }
  ::rmdir(path_.c_str());
}

}  // namespace reactor::test
