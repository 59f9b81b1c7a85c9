// SPDX-License-Identifier: MIT
// reactor_bench's main: Google Benchmark's, plus two things BENCHMARK_MAIN cannot do.
// - Benchmarks are registered at run time, one per compiled backend.
// - The fd limit is raised first: the dispatch ring needs 2 fds per pair.
//
// Extra flag (taken out before Google Benchmark sees the rest):
//   --group=dispatch,post,timers   which families to register (default: all)
#include <sys/resource.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <set>
#include <sstream>
#include <string>
#include <string_view>

#include "bench/micro/bench.hpp"

namespace reactor::bench {

namespace {

// What we try for the hard limit (we normally run as root). Enough for 10,000 pairs.
constexpr rlim_t kWantedFds = 65536;

// Raises RLIMIT_NOFILE: the hard limit to kWantedFds if allowed, the soft one to the hard.
// Returns a note for the report.
std::string raise_fd_limit() {
  rlimit lim{};
  if (::getrlimit(RLIMIT_NOFILE, &lim) != 0) return std::string("getrlimit: ") + strerror(errno);
  std::string note;
  if (lim.rlim_max != RLIM_INFINITY && lim.rlim_max < kWantedFds) {
    const rlimit wanted{kWantedFds, kWantedFds};
    if (::setrlimit(RLIMIT_NOFILE, &wanted) == 0) {
      lim = wanted;
    } else {
      note = "hard limit " + std::to_string(lim.rlim_max) + " could not be raised to " +
             std::to_string(kWantedFds) + " (" + strerror(errno) + ")";
    }
  }
  if (lim.rlim_cur < lim.rlim_max) {
    lim.rlim_cur = lim.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &lim);
  }
  return note;
}

}  // namespace

std::uint64_t fd_limit() noexcept {
  rlimit lim{};
  if (::getrlimit(RLIMIT_NOFILE, &lim) != 0) return 0;
  return lim.rlim_cur == RLIM_INFINITY ? UINT64_MAX : lim.rlim_cur;
}

}  // namespace reactor::bench

int main(int argc, char** argv) {
  using namespace reactor::bench;
  std::set<std::string> groups{"dispatch", "post", "timers"};
  int kept = 1;
  for (int i = 1; i < argc; ++i) {
    constexpr std::string_view kFlag = "--group=";
    const std::string_view arg = argv[i];
    if (arg.substr(0, kFlag.size()) != kFlag) {
      argv[kept++] = argv[i];
      continue;
    }
    groups.clear();
    std::stringstream list{std::string(arg.substr(kFlag.size()))};
    for (std::string g; std::getline(list, g, ',');) {
      if (g != "dispatch" && g != "post" && g != "timers") {
        std::fprintf(stderr, "reactor_bench: unknown group '%s' (dispatch, post, timers)\n",
                     g.c_str());
        return 2;
      }
      groups.insert(g);
    }
  }
  argc = kept;
  argv[argc] = nullptr;

  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;

  const std::string note = raise_fd_limit();
  benchmark::AddCustomContext("rlimit_nofile", std::to_string(fd_limit()));
  if (!note.empty()) benchmark::AddCustomContext("rlimit_note", note);

  if (groups.count("dispatch") != 0) register_dispatch();
  if (groups.count("post") != 0) register_post();
  if (groups.count("timers") != 0) register_timers();
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
