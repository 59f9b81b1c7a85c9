// SPDX-License-Identifier: MIT
#include "tests/support/processes.hpp"

#include <dirent.h>
#include <poll.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <iostream>
#include <iterator>
#include <set>
#include <sstream>
#include <system_error>

#include "tests/support/sanitizers.hpp"

namespace reactor::test {

namespace {

using Clock = std::chrono::steady_clock;

/// Entries of /proc/self/task: the threads of this process.
std::size_t task_count() {
  std::size_t n = 0;
  if (DIR* dir = ::opendir("/proc/self/task")) {
    while (const dirent* e = ::readdir(dir)) {
      if (e->d_name[0] != '.') ++n;
    }
    ::closedir(dir);
  }
  return n;
}

}  // namespace

std::size_t thread_count() {
  if constexpr (kTsan) {
    static const bool started = [] {
      std::thread([] {}).join();
      return true;
    }();
    (void)started;
  }
  return task_count();
}

std::vector<pid_t> child_pids() {
  std::set<pid_t> pids;
  if (DIR* dir = ::opendir("/proc/self/task")) {
    while (const dirent* e = ::readdir(dir)) {
      if (e->d_name[0] == '.') continue;
      std::ifstream in(std::string("/proc/self/task/") + e->d_name + "/children");
      pid_t pid = 0;
      while (in >> pid) pids.insert(pid);
    }
    ::closedir(dir);
  }
  return {pids.begin(), pids.end()};
}

char process_state(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(in, line)) return 0;
  const std::size_t close = line.rfind(')');
  if (close == std::string::npos || close + 2 >= line.size()) return 0;
  return line[close + 2];
}

std::size_t zombie_children() {
  std::size_t n = 0;
  for (pid_t pid : child_pids()) n += process_state(pid) == 'Z' ? 1 : 0;
  return n;
}

bool waitpid_finds_no_child() {
  int status = 0;
  const pid_t r = ::waitpid(-1, &status, WNOHANG);
  return r == -1 && errno == ECHILD;
}

double cpu_seconds() {
  rusage ru{};
  ::getrusage(RUSAGE_SELF, &ru);
  auto sec = [](const timeval& tv) { return double(tv.tv_sec) + double(tv.tv_usec) / 1e6; };
  return sec(ru.ru_utime) + sec(ru.ru_stime);
}

std::chrono::microseconds thread_cpu() {
  rusage ru{};
  ::getrusage(RUSAGE_THREAD, &ru);
  return std::chrono::seconds(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
         std::chrono::microseconds(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec);
}

std::chrono::milliseconds process_cpu(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  // The command name (field 2) may hold spaces and parentheses: count from the last ')'.
  const std::size_t close = text.rfind(')');
  if (close == std::string::npos) return std::chrono::milliseconds{-1};
  std::istringstream fields(text.substr(close + 2));
  std::string field;
  unsigned long long utime = 0, stime = 0;
  // Field 3 is the state; utime and stime are fields 14 and 15.
  for (int i = 3; i <= 15 && fields >> field; ++i) {
    if (i == 14) utime = std::stoull(field);
    if (i == 15) stime = std::stoull(field);
  }
  const long hz = ::sysconf(_SC_CLK_TCK);
  return std::chrono::milliseconds((utime + stime) * 1000 / static_cast<unsigned long long>(hz));
}

void flush_before_fork() {
  std::cout.flush();
  std::cerr.flush();
  std::fflush(nullptr);
}

bool still_running(pid_t pid) {
  siginfo_t info{};
  if (::waitid(P_PID, static_cast<id_t>(pid), &info, WEXITED | WNOHANG | WNOWAIT) != 0) {
    return false;
  }
  return info.si_pid == 0;
}

int reap(pid_t pid, std::chrono::milliseconds limit, const std::function<void()>& meanwhile) {
  const auto deadline = Clock::now() + limit;
  int status = 0;
  pid_t r = 0;
  while ((r = ::waitpid(pid, &status, WNOHANG)) == 0 && Clock::now() < deadline) {
    meanwhile();
  }
  if (r == 0) {
    ::kill(pid, SIGKILL);
    ::waitpid(pid, &status, 0);
    ADD_FAILURE() << "the child overran " << limit.count() << " ms and was killed";
    return -1;
  }
  if (r != pid) {
    ADD_FAILURE() << "waitpid failed: " << std::strerror(errno);
    return -1;
  }
  if (!WIFEXITED(status)) {
    ADD_FAILURE() << "the child did not exit normally (status " << status
                  << (WIFSIGNALED(status) ? ", signal " + std::to_string(WTERMSIG(status))
                                          : std::string())
                  << ")";
    return -1;
  }
  return WEXITSTATUS(status);
}

bool Child::single_threaded() { return task_count() == 1; }

Child::~Child() {
  if (pid_ > 0 && !reaped_) {
    ::kill(pid_, SIGKILL);
    int status = 0;
    while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
    }
  }
}

LinePipe::LinePipe() {
  int fds[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0) {
    throw std::system_error(errno, std::generic_category(), "socketpair");
  }
  read_.reset(fds[0]);
  write_.reset(fds[1]);
}

bool LinePipe::send(std::string_view line) {
  std::string s(line);
  s.push_back('\n');
  std::size_t off = 0;
  while (off < s.size()) {
    const ssize_t n = ::send(write_.get(), s.data() + off, s.size() - off, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    off += static_cast<std::size_t>(n);
  }
  return true;
}

bool LinePipe::receive(std::string& line, std::chrono::milliseconds limit) {
  const auto deadline = Clock::now() + limit;
  for (;;) {
    const std::size_t nl = buffer_.find('\n');
    if (nl != std::string::npos) {
      line = buffer_.substr(0, nl);
      buffer_.erase(0, nl + 1);
      return true;
    }
    // At least one look, even with no time left (a zero limit: whatever is there now).
    const auto left = std::max<std::chrono::milliseconds::rep>(
        0, std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count());
    pollfd p{read_.get(), POLLIN, 0};
    const int r = ::poll(&p, 1, static_cast<int>(left));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return false;
    char buf[512];
    const ssize_t n = ::read(read_.get(), buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    buffer_.append(buf, static_cast<std::size_t>(n));
  }
}

}  // namespace reactor::test
