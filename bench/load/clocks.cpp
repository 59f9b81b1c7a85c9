// SPDX-License-Identifier: MIT
#include "bench/load/clocks.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <string>

namespace reactor::bench::load {

std::uint64_t now_ns() noexcept {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000u +
         static_cast<std::uint64_t>(ts.tv_nsec);
}

std::uint64_t seconds_to_ns(double seconds) noexcept {
  return seconds <= 0 ? 0 : static_cast<std::uint64_t>(seconds * 1e9);
}

namespace {

/// The whole of a small /proc file, or "" if it cannot be read.
std::string read_small_file(const char* path) {
  const int fd = ::open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return {};
  char text[1024];
  const ssize_t n = ::read(fd, text, sizeof text);
  ::close(fd);
  return n > 0 ? std::string(text, static_cast<std::size_t>(n)) : std::string();
}

/// Fields 14..17 of /proc/PID/stat (utime, stime, cutime, cstime) in clock ticks.
bool read_stat_ticks(int pid, unsigned long long (&ticks)[4]) {
  char path[64];
  std::snprintf(path, sizeof path, "/proc/%d/stat", pid);
  const std::string text = read_small_file(path);
  // Field 2, the command name, is in parentheses and may hold spaces or ')': start after the
  // last ')'. What follows is field 3 (state).
  const std::size_t paren = text.rfind(')');
  if (paren == std::string::npos) return false;
  const char* p = text.c_str() + paren + 1;
  for (int field = 3; field < 14; ++field) {
    while (*p == ' ') ++p;
    while (*p != ' ' && *p != '\0') ++p;
  }
  for (unsigned long long& t : ticks) {
    char* end = nullptr;
    t = std::strtoull(p, &end, 10);
    if (end == p) return false;
    p = end;
  }
  return true;
}

/// Adds each live thread's time on a CPU (schedstat's first field) and records its id.
void read_thread_times(int pid, CpuSample& sample) {
  char path[64];
  std::snprintf(path, sizeof path, "/proc/%d/task", pid);
  DIR* dir = ::opendir(path);
  if (dir == nullptr) return;
  while (const dirent* entry = ::readdir(dir)) {
    if (entry->d_name[0] < '0' || entry->d_name[0] > '9') continue;
    const int tid = std::atoi(entry->d_name);
    std::snprintf(path, sizeof path, "/proc/%d/task/%d/schedstat", pid, tid);
    const std::string text = read_small_file(path);
    char* end = nullptr;
    const unsigned long long ns = std::strtoull(text.c_str(), &end, 10);
    if (end == text.c_str()) continue;  // the thread exited while we looked
    sample.threads_ns += ns;
    sample.tids.push_back(tid);
  }
  ::closedir(dir);
  std::sort(sample.tids.begin(), sample.tids.end());
}

}  // namespace

std::optional<CpuSample> sample_process_cpu(int pid) noexcept {
  try {
    unsigned long long ticks[4];
    if (!read_stat_ticks(pid, ticks)) return std::nullopt;
    const long hz = ::sysconf(_SC_CLK_TCK);
    if (hz <= 0) return std::nullopt;
    const auto to_us = [hz](unsigned long long t) {
      return static_cast<std::uint64_t>(t * 1'000'000ull / static_cast<unsigned long long>(hz));
    };
    CpuSample sample;
    sample.ticks_us = to_us(ticks[0] + ticks[1] + ticks[2] + ticks[3]);
    sample.children_us = to_us(ticks[2] + ticks[3]);
    read_thread_times(pid, sample);
    return sample;
  } catch (...) {  // std::bad_alloc from the strings or the tid list
    return std::nullopt;
  }
}

std::uint64_t cpu_us_between(const CpuSample& from, const CpuSample& to, bool* exact) noexcept {
  const bool same_threads = !from.tids.empty() && from.tids == to.tids &&
                            from.children_us == to.children_us && to.threads_ns >= from.threads_ns;
  if (exact != nullptr) *exact = same_threads;
  if (same_threads) return (to.threads_ns - from.threads_ns) / 1000;
  return to.ticks_us >= from.ticks_us ? to.ticks_us - from.ticks_us : 0;
}

std::uint64_t self_cpu_us() noexcept {
  rusage usage{};
  ::getrusage(RUSAGE_SELF, &usage);
  const auto us = [](const timeval& tv) {
    return static_cast<std::uint64_t>(tv.tv_sec) * 1'000'000u +
           static_cast<std::uint64_t>(tv.tv_usec);
  };
  return us(usage.ru_utime) + us(usage.ru_stime);
}

}  // namespace reactor::bench::load
