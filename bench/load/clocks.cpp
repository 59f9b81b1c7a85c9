#include "bench/load/clocks.hpp"

#include <fcntl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>

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

std::optional<std::uint64_t> process_cpu_us(int pid) noexcept {
  char path[64];
  std::snprintf(path, sizeof path, "/proc/%d/stat", pid);
  const int fd = ::open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return std::nullopt;
  char text[1024];
  const ssize_t n = ::read(fd, text, sizeof text - 1);
  ::close(fd);
  if (n <= 0) return std::nullopt;
  text[n] = '\0';
  // Field 2, the command name, is in parentheses and may hold spaces or ')': start after the
  // last ')'. What follows is field 3 (state); utime and stime are fields 14 and 15.
  const char* p = std::strrchr(text, ')');
  if (p == nullptr) return std::nullopt;
  ++p;
  for (int field = 3; field < 14; ++field) {
    while (*p == ' ') ++p;
    while (*p != ' ' && *p != '\0') ++p;
  }
  char* end = nullptr;
  const unsigned long long utime = std::strtoull(p, &end, 10);
  if (end == p) return std::nullopt;
  p = end;
  const unsigned long long stime = std::strtoull(p, &end, 10);
  if (end == p) return std::nullopt;
  const long hz = ::sysconf(_SC_CLK_TCK);
  if (hz <= 0) return std::nullopt;
  return (utime + stime) * 1'000'000ull / static_cast<unsigned long long>(hz);
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
