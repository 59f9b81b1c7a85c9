#pragma once
/// Header-only helpers for the overload and fault-injection tests: a forked child process
/// that cannot outlive its test, a line channel between processes, CPU time and thread
/// counts read from /proc, and a pattern cheap enough for hundreds of MiB.
/// Namespace reactor::test::fault.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <iterator>
#include <sstream>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <utility>

#include "tests/support/fds.hpp"
#include "tests/support/time_helpers.hpp"

namespace reactor::test::fault {

using namespace std::chrono_literals;
using Clock = SteadyClock;        // tests/support/time_helpers.hpp
using reactor::test::ms_between;  // likewise

// ---------------------------------------------------------------------------------------
// /proc

/// Threads of this process (the Threads: line of /proc/self/status).
inline std::size_t thread_count() {
  std::size_t n = 0;
  std::ifstream status("/proc/self/status");
  for (std::string line; std::getline(status, line);) {
    if (line.rfind("Threads:", 0) == 0) n = std::stoul(line.substr(8));
  }
  return n;
}

/// User plus system CPU time used so far by process `pid` (from /proc/<pid>/stat, in clock
/// ticks, usually 10 ms), or -1 ms when it cannot be read.
inline std::chrono::milliseconds process_cpu(pid_t pid) {
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

// ---------------------------------------------------------------------------------------
// Between processes

/// A one-way channel carrying text lines: a Unix stream socket pair (so that a write to a
/// peer that has gone fails with EPIPE instead of raising SIGPIPE), both ends close-on-exec.
/// The reader waits with a bound.
class LinePipe {
 public:
  LinePipe() {
    int fds[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0) {
      throw std::system_error(errno, std::generic_category(), "socketpair");
    }
    read_.reset(fds[0]);
    write_.reset(fds[1]);
  }
  int read_fd() const { return read_.get(); }
  int write_fd() const { return write_.get(); }
  void close_read() { read_.reset(); }
  void close_write() { write_.reset(); }

  /// Writes one line (a '\n' is added). False when the reader has gone.
  bool send(std::string_view line) {
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

  /// The next line (without '\n'), waiting at most `limit`. False on timeout or end of
  /// file.
  bool receive(std::string& line, std::chrono::milliseconds limit) {
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
          0,
          std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count());
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

 private:
  Fd read_;
  Fd write_;
  std::string buffer_;
};

/// Flushes every stdio and iostream buffer, so that nothing buffered comes out twice.
inline void flush_before_fork() {
  std::cout.flush();
  std::cerr.flush();
  std::fflush(nullptr);
}

/// A forked child running `body` (which returns its exit status) and leaving with _exit(),
/// so that it never returns into GoogleTest nor runs the parent's destructors. The object
/// never outlives its test with the child alive: the destructor kills and reaps it.
///
/// Fork only from a single-threaded process: under ASan a child forked while another thread
/// holds an allocator lock deadlocks. single_threaded() says whether that holds now.
class Child {
 public:
  static bool single_threaded() { return thread_count() == 1; }

  template <class Body>
  explicit Child(Body body) {
    flush_before_fork();
    pid_ = ::fork();
    if (pid_ < 0) throw std::system_error(errno, std::generic_category(), "fork");
    if (pid_ == 0) {
      int status = 99;
      try {
        status = body();
      } catch (const std::exception& e) {
        std::fprintf(stderr, "child: %s\n", e.what());
      } catch (...) {
        std::fprintf(stderr, "child: unknown exception\n");
      }
      std::fflush(nullptr);
      ::_exit(status);
    }
  }
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;
  ~Child() {
    if (pid_ > 0 && !reaped_) {
      ::kill(pid_, SIGKILL);
      int status = 0;
      while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
      }
    }
  }

  pid_t pid() const { return pid_; }

  /// True while the child has not exited (does not reap it).
  bool running() const {
    if (reaped_) return false;
    siginfo_t info{};
    if (::waitid(P_PID, static_cast<id_t>(pid_), &info, WEXITED | WNOHANG | WNOWAIT) != 0) {
      return false;
    }
    return info.si_pid == 0;
  }

  /// Waits up to `limit` for the child to exit, calling `meanwhile()` between 10 ms naps.
  /// Returns its exit status; -1 (and a test failure) when it had to be killed or did not
  /// exit normally.
  template <class Meanwhile>
  int wait(std::chrono::milliseconds limit, Meanwhile meanwhile) {
    const auto deadline = Clock::now() + limit;
    int status = 0;
    pid_t r = 0;
    while ((r = ::waitpid(pid_, &status, WNOHANG)) == 0 && Clock::now() < deadline) {
      meanwhile();
      std::this_thread::sleep_for(10ms);
    }
    if (r == 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, &status, 0);
      reaped_ = true;
      ADD_FAILURE() << "the child overran " << limit.count() << " ms and was killed";
      return -1;
    }
    reaped_ = true;
    if (r != pid_) {
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
  int wait(std::chrono::milliseconds limit) {
    return wait(limit, [] {});
  }

 private:
  pid_t pid_ = -1;
  bool reaped_ = false;
};

// ---------------------------------------------------------------------------------------
// A pattern cheap enough for hundreds of MiB

/// The byte at stream offset `i`: byte i % 8 of (i / 8) times an odd constant. Every aligned
/// 8-byte word differs from every other within 2^61 words, so a slice that is dropped,
/// duplicated or moved by any amount is noticed.
inline char word_pattern_byte(std::uint64_t i) {
  const std::uint64_t w = (i >> 3) * 0x9E3779B97F4A7C15ull;
  return static_cast<char>((w >> ((i & 7) * 8)) & 0xff);
}

/// Fills `out` with the pattern from stream offset `offset` (a multiple of 8 is fastest).
inline void fill_word_pattern(std::uint64_t offset, char* out, std::size_t n) {
  std::size_t i = 0;
  for (; i < n && ((offset + i) & 7) != 0; ++i) out[i] = word_pattern_byte(offset + i);
  for (; i + 8 <= n; i += 8) {
    const std::uint64_t w = ((offset + i) >> 3) * 0x9E3779B97F4A7C15ull;
    std::memcpy(out + i, &w, 8);  // little-endian: byte k of w is byte k of the word
  }
  for (; i < n; ++i) out[i] = word_pattern_byte(offset + i);
}

/// Index of the first byte of `got` that differs from the pattern at `offset`, or npos.
inline std::size_t word_pattern_mismatch(std::uint64_t offset, std::string_view got) {
  char expected[4096];
  for (std::size_t done = 0; done < got.size();) {
    const std::size_t n = std::min(sizeof expected, got.size() - done);
    fill_word_pattern(offset + done, expected, n);
    if (std::memcmp(expected, got.data() + done, n) != 0) {
      for (std::size_t i = 0; i < n; ++i) {
        if (expected[i] != got[done + i]) return done + i;
      }
    }
    done += n;
  }
  return std::string_view::npos;
}

}  // namespace reactor::test::fault
