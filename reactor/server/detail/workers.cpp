// SPDX-License-Identifier: MIT
#include "reactor/server/detail/workers.hpp"

#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <system_error>
#include <utility>

#include "reactor/server/detail/outcome.hpp"

namespace reactor::detail {

Workers::~Workers() {
  join_all();
  sigchld_.reset();
}

bool Workers::spawn_thread(std::function<void()> body, std::function<void()> done) {
  const std::uint64_t id = next_thread_++;
  try {
    std::thread t([this, id, body = std::move(body)] {
      body();
      loop_.post([this, id] { finish_thread(id); });
    });
    threads_.emplace(id, HandlerThread{std::move(t), std::move(done)});
  } catch (const std::system_error&) {
    return false;  // EAGAIN: out of threads; the caller retries
  }
  return true;
}

void Workers::finish_thread(std::uint64_t id) {
  auto it = threads_.find(id);
  if (it == threads_.end()) return;  // join_all() got there first
  it->second.thread.join();
  auto done = std::move(it->second.done);
  threads_.erase(it);
  if (done) done();
}

bool Workers::spawn_child(const std::function<void()>& in_child, const std::function<int()>& body,
                          std::function<void(int status)> done) {
  // Watch before the first fork, so that no exit goes unnoticed.
  if (!sigchld_) sigchld_.emplace(loop_.on_signal(SIGCHLD, [this](int) { reap_children(); }));
  // What the parent has buffered must not come out twice.
  std::fflush(stdout);
  std::fflush(stderr);
  const pid_t pid = ::fork();
  if (pid < 0) return false;
  if (pid == 0) {
    Reactor::restore_signal_dispositions_in_child();
    int code = static_cast<int>(Outcome::error);
    try {
      in_child();
      code = body();
    } catch (...) {
    }
    // No exit handlers, no destructors of the parent's objects, no second flush of stdio
    // buffers inherited from the parent: a child flushes what it prints itself.
    ::_exit(code);
  }
  children_.emplace(pid, std::move(done));
  return true;
}

void Workers::reap_children() {
  for (auto it = children_.begin(); it != children_.end();) {
    int status = 0;
    const pid_t r = ::waitpid(it->first, &status, WNOHANG);
    if (r == 0 || (r < 0 && errno == EINTR)) {
      ++it;
      continue;
    }
    if (r < 0) status = 0;  // ECHILD: reaped behind our back (SIGCHLD set to SIG_IGN)
    auto done = std::move(it->second);
    it = children_.erase(it);
    if (done) done(status);
  }
}

void Workers::join_all() noexcept {
  auto threads = std::move(threads_);
  threads_.clear();
  for (auto& [id, t] : threads) {
    if (t.thread.get_id() == std::this_thread::get_id()) {
      threads_.emplace(id, std::move(t));  // server_close() from a handler thread: joined later
      continue;
    }
    t.thread.join();
    if (t.done) t.done();
  }
  auto children = std::move(children_);
  children_.clear();
  for (auto& [pid, done] : children) {
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    if (done) done(status);
  }
}

}  // namespace reactor::detail
