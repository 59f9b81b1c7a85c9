// SPDX-License-Identifier: MIT
#pragma once
/// The process around a test: its threads and children (read from /proc), CPU time, forked
/// children that cannot outlive their test, and a line channel between processes.
#include <gtest/gtest.h>
#include <sys/types.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdio>
#include <exception>
#include <functional>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <vector>

#include "tests/support/fds.hpp"

namespace reactor::test {

// ---------------------------------------------------------------------------------------
// Threads, children, CPU

/// Threads of this process (/proc/self/task), for before/after comparisons. Under TSan the
/// runtime adds a background thread of its own when the first thread is created; one
/// throwaway thread is made first so that it is already there in every baseline.
/// Compare with `<=` against a baseline, never `==`: a thread that was there before (a
/// runtime's helper, a pool worker winding down from an earlier test) may end meanwhile.
std::size_t thread_count();

/// Children of this process, zombies included (the union of /proc/self/task/*/children:
/// a child is listed under the thread that forked it).
std::vector<pid_t> child_pids();

/// The state letter of a process ('R', 'S', 'Z', ...), or 0 when it is gone.
char process_state(pid_t pid);

/// Children in state Z (exited, not reaped).
std::size_t zombie_children();

/// True when this process has no child at all: waitpid(-1, WNOHANG) fails with ECHILD.
/// (Reaps a zombie if there is one; that is a failure anyway.)
bool waitpid_finds_no_child();

/// CPU time (user + system) this process has used so far, all threads, in seconds.
double cpu_seconds();

/// CPU time (user + system) the calling thread has used so far.
std::chrono::microseconds thread_cpu();

/// User plus system CPU time used so far by process `pid` (from /proc/<pid>/stat, in clock
/// ticks, usually 10 ms), or -1 ms when it cannot be read.
std::chrono::milliseconds process_cpu(pid_t pid);

// ---------------------------------------------------------------------------------------
// Forked children

/// Flushes every stdio and iostream buffer, so that nothing buffered comes out twice.
void flush_before_fork();

/// True while child `pid` has not exited (does not reap it).
bool still_running(pid_t pid);

/// Waits up to `limit` for child `pid` to exit, calling `meanwhile()` while it has not (the
/// caller's wait: a nap, or a loop iteration). Returns its exit status; -1 (and a test
/// failure) when it had to be killed or did not exit normally. Reaps the child either way.
int reap(pid_t pid, std::chrono::milliseconds limit, const std::function<void()>& meanwhile);

/// A forked child running `body` (which returns its exit status) and leaving with _exit(),
/// so that it never returns into GoogleTest nor runs the parent's destructors. The object
/// never outlives its test with the child alive: the destructor kills and reaps it.
///
/// Fork only from a single-threaded process: under ASan a child forked while another thread
/// holds an allocator lock deadlocks. single_threaded() says whether that holds now.
class Child {
 public:
  /// True when this process has one thread (counted without creating any).
  static bool single_threaded();

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
  ~Child();

  pid_t pid() const { return pid_; }

  /// True while the child has not exited (does not reap it).
  bool running() const { return !reaped_ && still_running(pid_); }

  /// Waits up to `limit` for the child to exit, calling `meanwhile()` between 10 ms naps.
  /// Returns its exit status; -1 (and a test failure) when it had to be killed or did not
  /// exit normally.
  template <class Meanwhile>
  int wait(std::chrono::milliseconds limit, Meanwhile meanwhile) {
    reaped_ = true;
    return reap(pid_, limit, [&] {
      meanwhile();
      std::this_thread::sleep_for(std::chrono::milliseconds{10});
    });
  }
  int wait(std::chrono::milliseconds limit) {
    return wait(limit, [] {});
  }

 private:
  pid_t pid_ = -1;
  bool reaped_ = false;
};

/// A one-way channel carrying text lines between processes: a Unix stream socket pair (so
/// that a write to a peer that has gone fails with EPIPE instead of raising SIGPIPE), both
/// ends close-on-exec. The reader waits with a bound.
class LinePipe {
 public:
  LinePipe();
  int read_fd() const { return read_.get(); }
  int write_fd() const { return write_.get(); }
  void close_read() { read_.reset(); }
  void close_write() { write_.reset(); }

  /// Writes one line (a '\n' is added). False when the reader has gone.
  bool send(std::string_view line);

  /// The next line (without '\n'), waiting at most `limit`. False on timeout or end of
  /// file.
  bool receive(std::string& line, std::chrono::milliseconds limit);

 private:
  Fd read_;
  Fd write_;
  std::string buffer_;
};

}  // namespace reactor::test
