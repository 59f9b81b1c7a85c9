// SPDX-License-Identifier: MIT
// BM_Dispatch: nanoseconds per event for the socketpair ring of libevent's test/bench.c
// (see fd_ring.hpp), for every backend and for a raw epoll loop doing the same work.
#include <cstddef>
#include <cstdint>
#include <exception>
#include <optional>
#include <string>
#include <system_error>
#include <vector>

#include "bench/micro/bench.hpp"
#include "bench/micro/fd_ring.hpp"
#include "bench/micro/raw_epoll.hpp"
#include "reactor/core/reactor.hpp"

namespace reactor::bench {

namespace {

constexpr std::size_t kPairs[] = {100, 1'000, 10'000};
constexpr std::size_t kActive[] = {1, 100};
// One benchmark iteration is this many events (the loop runs whole batches, so it may
// overshoot a little; the counters use the exact count).
constexpr std::uint64_t kEventsPerIteration = 1'000;
// Besides the ring: stdio, the loop's own fds (eventfd, epoll, libuv's), the JSON output.
constexpr std::uint64_t kSpareFds = 16;
// glibc's FD_SETSIZE; this file may not include <sys/select.h> (style.md).
constexpr int kFdSetSize = 1024;
constexpr const char* kRawEpoll = "raw_epoll";

// Empty when 2 * pairs fds fit under RLIMIT_NOFILE, else why not.
std::string fd_shortage(std::size_t pairs) {
  const std::uint64_t needed = 2 * pairs + kSpareFds;
  if (needed <= fd_limit()) return {};
  return "needs ~" + std::to_string(needed) + " fds, RLIMIT_NOFILE is " +
         std::to_string(fd_limit()) + " (hard limit could not be raised)";
}

// The timed part, shared by the reactor and the raw loop: run_until(target) dispatches
// whole batches until the ring has passed `target` tokens; polls() counts waits.
template <class RunUntil, class Polls>
void measure(benchmark::State& state, FdRing& ring, RunUntil run_until, Polls polls) {
  // Warm-up, untimed: fault in the buffers, settle the kernel's ready lists.
  if (!run_until(ring.events() + kEventsPerIteration)) return;
  const std::uint64_t first_event = ring.events();
  const std::uint64_t first_poll = polls();
  const std::int64_t start = now_ns();
  const std::int64_t start_cpu = thread_cpu_ns();
  for (auto _ : state) {
    if (!run_until(ring.events() + kEventsPerIteration)) return;
  }
  const std::int64_t elapsed = now_ns() - start;
  const std::int64_t elapsed_cpu = thread_cpu_ns() - start_cpu;
  const std::uint64_t events = ring.events() - first_event;
  report_per_unit(state, "ns_per_event", elapsed, events);
  // The loop never sleeps (tokens are always in flight), so CPU time is the same work
  // without the time other processes stole.
  if (events > 0) state.counters["cpu_ns_per_event"] = double(elapsed_cpu) / double(events);
  const std::uint64_t waits = polls() - first_poll;
  if (waits > 0) state.counters["events_per_poll"] = double(events) / double(waits);
  if (ring.anomalies() != 0) state.SkipWithError("the ring lost a token (empty read)");
}

void dispatch_reactor(benchmark::State& state, const std::string& backend, std::size_t pairs,
                      std::size_t active) {
  if (std::string why = fd_shortage(pairs); !why.empty()) {
    state.SkipWithError(why.c_str());
    return;
  }
  FdRing ring(pairs);
  if (!ring.error().empty()) {
    state.SkipWithError(ring.error().c_str());
    return;
  }
  std::optional<Reactor> loop;
  try {
    loop.emplace(backend);
  } catch (const std::exception& e) {
    state.SkipWithError(e.what());
    return;
  }
  std::vector<IoWatcher> watchers;  // destroyed before the loop, the loop before the ring
  watchers.reserve(pairs);
  for (std::size_t i = 0; i < pairs; ++i) {
    std::error_code ec;
    watchers.push_back(loop->watch(
        ring.read_fd(i), Interest::read, [&ring, i](IoEvents) { ring.pass_token(i); }, ec));
    if (ec) {
      const std::string why = "watch(fd " + std::to_string(ring.read_fd(i)) + "): " + ec.message();
      state.SkipWithError(why.c_str());
      return;
    }
  }
  if (!ring.seed(active)) {
    state.SkipWithError(ring.error().c_str());
    return;
  }
  if (backend == "select" && ring.max_fd() >= kFdSetSize) {
    state.SetLabel("fds up to " + std::to_string(ring.max_fd()) +
                   " >= FD_SETSIZE: select sizes its own fd sets");
  }
  measure(
      state, ring,
      [&](std::uint64_t target) {
        try {
          while (ring.events() < target) loop->run_once();
          return true;
        } catch (const std::exception& e) {
          state.SkipWithError(e.what());
          return false;
        }
      },
      [&] { return loop->iterations(); });
}

void dispatch_raw_epoll(benchmark::State& state, std::size_t pairs, std::size_t active) {
  if (std::string why = fd_shortage(pairs); !why.empty()) {
    state.SkipWithError(why.c_str());
    return;
  }
  FdRing ring(pairs);
  if (!ring.error().empty()) {
    state.SkipWithError(ring.error().c_str());
    return;
  }
  RawEpollLoop loop(ring);
  if (!loop.error().empty() || !ring.seed(active)) {
    state.SkipWithError(!loop.error().empty() ? loop.error().c_str() : ring.error().c_str());
    return;
  }
  measure(
      state, ring,
      [&](std::uint64_t target) {
        if (loop.run_until(target)) return true;
        state.SkipWithError(loop.error().c_str());
        return false;
      },
      [&] { return loop.waits(); });
}

}  // namespace

// The P values to run: kPairs, except that a P whose ring does not fit under RLIMIT_NOFILE
// is replaced by the largest P that fits (rounded down to ten), when that is still larger
// than the P before it: a measurement near 10,000 beats none.
std::vector<std::size_t> pairs_to_run() {
  std::vector<std::size_t> out;
  for (const std::size_t pairs : kPairs) {
    std::size_t p = pairs;
    if (!fd_shortage(p).empty() && fd_limit() > 2 * kSpareFds) {
      p = (fd_limit() - kSpareFds) / 2 / 10 * 10;
      if (!out.empty() && p <= out.back()) p = pairs;  // no better: keep it, and skip it
    }
    out.push_back(p);
  }
  return out;
}

void register_dispatch() {
  std::vector<std::string> backends{kRawEpoll};
  for (std::string& name : available_backends()) backends.push_back(std::move(name));
  for (const std::size_t pairs : pairs_to_run()) {
    for (const std::size_t active : kActive) {
      for (const std::string& backend : backends) {
        const std::string name = "BM_Dispatch/" + backend + "/P:" + std::to_string(pairs) +
                                 "/A:" + std::to_string(active);
        benchmark::RegisterBenchmark(name.c_str(),
                                     [backend, pairs, active](benchmark::State& state) {
                                       if (backend == kRawEpoll) {
                                         dispatch_raw_epoll(state, pairs, active);
                                       } else {
                                         dispatch_reactor(state, backend, pairs, active);
                                       }
                                     })
            ->UseRealTime()
            ->Unit(benchmark::kMicrosecond);
      }
    }
  }
}

}  // namespace reactor::bench
