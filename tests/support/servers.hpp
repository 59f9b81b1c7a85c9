// SPDX-License-Identifier: MIT
#pragma once
/// Servers in tests: the models and the parameter cases that run them (each on the backends
/// it uses), echo handlers of every kind, a serving thread that cannot outlive its test, a
/// stream or datagram server behind one interface, and logs that work across threads and
/// forked children (a pipe, shared-memory counters).
///
/// A suite over models is instantiated once per model, the model in the prefix and the
/// backend last:
///
///   class FooTest : public reactor::test::ModelTest {};
///   REACTOR_INSTANTIATE_MODEL(FooTest, Reactor, reactor);
///
/// gives Reactor/FooTest.Bar/epoll, Reactor/FooTest.Bar/poll, ...; the blocking models
/// (sync, threading, forking) run on the default backend only: Sync/FooTest.Bar/epoll.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <limits.h>
#include <sys/mman.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <memory>
#include <mutex>
#include <new>
#include <ostream>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include "reactor/core/backend.hpp"
#include "reactor/core/reactor.hpp"
#include "reactor/net/address.hpp"
#include "reactor/net/buffer.hpp"
#include "reactor/net/connection.hpp"
#include "reactor/server/datagram_server.hpp"
#include "reactor/server/handlers.hpp"
#include "reactor/server/model.hpp"
#include "reactor/server/options.hpp"
#include "reactor/server/stream_server.hpp"
#include "tests/support/backends.hpp"
#include "tests/support/clients.hpp"
#include "tests/support/fds.hpp"
#include "tests/support/processes.hpp"
#include "tests/support/sanitizers.hpp"
#include "tests/support/sockets.hpp"
#include "tests/support/time.hpp"

namespace reactor::test {

// ---------------------------------------------------------------------------------------
// Models

// GCC 12's and clang 14's ASan allocators are not fork-safe: a child forked while another
// thread holds an allocator lock deadlocks on its first allocation. These tests fork from a
// multithreaded process (their clients are threads), so under ASan the forking model is
// left to the release run and to the e2e tests, whose reactor-serve forks from one thread.
inline constexpr bool kForkingTestable = !kAsan;
/// False for a model these tests cannot run here (forking under ASan).
inline bool testable(Model m) { return m != Model::forking || kForkingTestable; }

inline constexpr std::array<Model, 5> kAllModels{Model::sync, Model::threading, Model::forking,
                                                 Model::reactor, Model::pool};

/// "Sync", "Threading", "Forking", "Reactor", "Pool": for messages.
inline std::string model_name(Model m) {
  std::string out(to_string(m));
  if (!out.empty() && out[0] >= 'a' && out[0] <= 'z') out[0] = static_cast<char>(out[0] - 32);
  return out;
}

/// The reactor and pool models run event handlers on the server's loops, so they are run over
/// every backend; the blocking models use their loop for accepting only (default backend).
inline bool runs_on_every_backend(Model m) { return m == Model::reactor || m == Model::pool; }

/// The transports a server serves, one of each kind.
inline constexpr std::array<Transport, 4> kServerTransports{Transport::tcp4, Transport::unix_stream,
                                                            Transport::udp4, Transport::unix_dgram};

// ---------------------------------------------------------------------------------------
// Parameter cases

/// A model on a backend.
struct ModelCase {
  Model model;
  std::string backend;
};

/// The backends model `m` runs on: every backend for the event models, the default backend
/// for the blocking ones; none when `m` cannot be tested here (forking under ASan).
inline std::vector<ModelCase> model_cases(Model m) {
  std::vector<ModelCase> out;
  if (!testable(m)) return out;
  if (runs_on_every_backend(m)) {
    for (const std::string& b : all_backends()) out.push_back({m, b});
  } else {
    out.push_back({m, default_backend_name()});
  }
  return out;
}

/// For gtest's messages (instead of a byte dump).
inline void PrintTo(const ModelCase& c, std::ostream* os) {
  *os << to_string(c.model) << "/" << c.backend;
}

/// Names a ModelCase test after its backend (the model is in the instantiation prefix).
struct ModelCaseName {
  std::string operator()(const ::testing::TestParamInfo<ModelCase>& info) const {
    return info.param.backend;
  }
};

/// Base fixture for suites over ModelCase: warms the backend up (libuv keeps two
/// process-wide fds after its first loop) so that FdLeakCheck sees only the test.
/// After the test, the thread count is back to at most where it was and no child is left.
class ModelTest : public ::testing::TestWithParam<ModelCase> {
 protected:
  void SetUp() override {
    warm_up(GetParam().backend);
    threads_before_ = thread_count();
  }
  void TearDown() override {
    // At most as many as before: fewer is a thread from before the test (the sanitizer's,
    // or one of warm_up's still exiting) that ended meanwhile, not a leak.
    EXPECT_TRUE(wait_for([&] { return thread_count() <= threads_before_; },
                         std::chrono::milliseconds{2000}))
        << thread_count() << " threads, " << threads_before_ << " before the test";
    EXPECT_TRUE(child_pids().empty()) << child_pids().size() << " children left";
  }
  Model model() const { return GetParam().model; }
  const std::string& backend() const { return GetParam().backend; }

 private:
  std::size_t threads_before_ = 0;
};

/// Options for a model on a backend (the pool gets two loops: this machine has two cores).
inline ServerOptions options_for(Model model, const std::string& backend) {
  ServerOptions o;
  o.model = model;
  o.backend = backend;
  o.threads = 2;
  return o;
}

// ---------------------------------------------------------------------------------------
// Logs that work from any thread and from forked children

/// Lines written by handlers (threads or children, each line one atomic pipe write) and read
/// back by the test. Both ends close-on-exec; the read end non-blocking.
class PipeLog {
 public:
  PipeLog() {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) throw std::system_error(errno, std::generic_category());
    read_.reset(fds[0]);
    write_.reset(fds[1]);
    ::fcntl(read_.get(), F_SETFL, ::fcntl(read_.get(), F_GETFL) | O_NONBLOCK);
  }
  /// One line (at most PIPE_BUF bytes, so writers never interleave). Any thread or child.
  void write(std::string line) const noexcept {
    if (line.size() >= PIPE_BUF) line.resize(PIPE_BUF - 1);
    line.push_back('\n');
    ssize_t n;
    do {
      n = ::write(write_.get(), line.data(), line.size());
    } while (n < 0 && errno == EINTR);
  }
  /// Every line written so far (test thread only).
  const std::vector<std::string>& lines() {
    char buf[4096];
    for (;;) {
      const ssize_t n = ::read(read_.get(), buf, sizeof buf);
      if (n <= 0) break;
      partial_.append(buf, static_cast<std::size_t>(n));
    }
    for (std::size_t nl; (nl = partial_.find('\n')) != std::string::npos;) {
      lines_.push_back(partial_.substr(0, nl));
      partial_.erase(0, nl + 1);
    }
    return lines_;
  }
  /// Lines starting with `prefix`.
  std::vector<std::string> lines_starting(std::string_view prefix) {
    std::vector<std::string> out;
    for (const std::string& l : lines()) {
      if (l.compare(0, prefix.size(), prefix) == 0) out.push_back(l);
    }
    return out;
  }

 private:
  Fd read_;
  Fd write_;
  std::string partial_;
  std::vector<std::string> lines_;
};

/// Lock-free counters in an anonymous shared mapping: threads and forked children update
/// the same values.
class SharedCounters {
 public:
  explicit SharedCounters(std::size_t n) : n_(n) {
    void* p = ::mmap(nullptr, bytes(), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) throw std::system_error(errno, std::generic_category(), "mmap");
    values_ = static_cast<std::atomic<std::int64_t>*>(p);
    for (std::size_t i = 0; i < n_; ++i) new (&values_[i]) std::atomic<std::int64_t>(0);
  }
  SharedCounters(const SharedCounters&) = delete;
  SharedCounters& operator=(const SharedCounters&) = delete;
  ~SharedCounters() { ::munmap(values_, bytes()); }
  std::atomic<std::int64_t>& operator[](std::size_t i) const { return values_[i]; }
  /// Adds one to counter `i` and raises counter `max_index` to the new value if larger.
  std::int64_t enter(std::size_t i, std::size_t max_index) const {
    const std::int64_t now = values_[i].fetch_add(1) + 1;
    std::int64_t m = values_[max_index].load();
    while (now > m && !values_[max_index].compare_exchange_weak(m, now)) {
    }
    return now;
  }

 private:
  std::size_t bytes() const { return n_ * sizeof(std::atomic<std::int64_t>); }
  std::size_t n_;
  std::atomic<std::int64_t>* values_ = nullptr;
};

// ---------------------------------------------------------------------------------------
// Handlers

/// A blocking handler echoing every line until the client closes.
inline StreamHandlerFactory blocking_echo() {
  return stream_handler([](BlockingStream& s, const Address&) {
    while (auto line = s.read_line()) {
      s.write(*line);
      s.flush();
    }
  });
}

/// An event handler echoing every byte.
class EchoEvents : public EventHandler {
 public:
  void on_data(Connection& c, Buffer& in) override {
    c.send(in.view());
    in.consume(in.size());
  }
};

inline EventHandlerFactory event_echo() {
  return [] { return std::make_unique<EchoEvents>(); };
}

/// Both kinds: runs on every model.
inline StreamService echo_service() { return StreamService(blocking_echo(), event_echo()); }

/// Replies with the datagram.
inline DatagramHandler datagram_echo_handler() {
  return [](DatagramRequest& r) { r.reply(r.data()); };
}

// ---------------------------------------------------------------------------------------
// Serving

/// Runs server.serve_forever() on a thread of its own. stop() (and the destructor) call
/// shutdown() and join; the thread never outlives the object.
template <class Server>
class Serving {
 public:
  explicit Serving(Server& server) : server_(server) {
    thread_ = std::thread([this] { run(); });
  }
  Serving(const Serving&) = delete;
  Serving& operator=(const Serving&) = delete;
  ~Serving() { stop(); }

  /// shutdown() from this thread, then join.
  void stop() {
    if (!thread_.joinable()) return;
    server_.shutdown();
    thread_.join();
  }
  /// Joins a serving thread that has returned (or will, without being told).
  void join() {
    if (thread_.joinable()) thread_.join();
  }
  /// True once serve_forever returned; waits up to `limit` for it.
  bool wait_returned(std::chrono::milliseconds limit) {
    std::unique_lock lock(mutex_);
    return cv_.wait_for(lock, limit, [this] { return returned_; });
  }
  bool returned() {
    std::lock_guard lock(mutex_);
    return returned_;
  }
  SteadyClock::time_point returned_at() {
    std::lock_guard lock(mutex_);
    return returned_at_;
  }
  /// What serve_forever threw ("" when nothing).
  std::string error() {
    std::lock_guard lock(mutex_);
    return error_;
  }

 private:
  void run() {
    std::string error;
    try {
      server_.serve_forever();
    } catch (const std::exception& e) {
      error = e.what();
    } catch (...) {
      error = "unknown exception";
    }
    {
      std::lock_guard lock(mutex_);
      error_ = error;
      returned_ = true;
      returned_at_ = SteadyClock::now();
    }
    cv_.notify_all();
  }

  Server& server_;
  std::mutex mutex_;
  std::condition_variable cv_;
  bool returned_ = false;
  SteadyClock::time_point returned_at_{};
  std::string error_;
  std::thread thread_;
};

/// A stream or a datagram server, by transport, behind one interface (for the tests that
/// loop over every transport and model).
class AnyServer {
 public:
  AnyServer(Transport t, const Address& bind, ServerOptions options,
            StreamService service = echo_service(),
            DatagramHandler handler = datagram_echo_handler())
      : transport_(t) {
    if (is_stream(t)) {
      stream_ = std::make_unique<StreamServer>(bind, std::move(service), std::move(options));
    } else {
      datagram_ = std::make_unique<DatagramServer>(bind, std::move(handler), std::move(options));
    }
  }
  void serve_forever() { stream_ ? stream_->serve_forever() : datagram_->serve_forever(); }
  bool handle_request() {
    return stream_ ? stream_->handle_request() : datagram_->handle_request();
  }
  void shutdown() noexcept { stream_ ? stream_->shutdown() : datagram_->shutdown(); }
  void server_close() noexcept { stream_ ? stream_->server_close() : datagram_->server_close(); }
  const Address& address() const noexcept {
    return stream_ ? stream_->address() : datagram_->address();
  }
  int fileno() const noexcept { return stream_ ? stream_->fileno() : datagram_->fileno(); }
  Reactor& loop() noexcept { return stream_ ? stream_->loop() : datagram_->loop(); }
  ServerStats stats() const noexcept { return stream_ ? stream_->stats() : datagram_->stats(); }
  const ServerOptions& options() const noexcept {
    return stream_ ? stream_->options() : datagram_->options();
  }
  Transport transport() const noexcept { return transport_; }
  /// One request with `line`; the reply or a description of what went wrong.
  std::string echo(const std::string& line) const {
    return test::echo(transport_, address(), line);
  }

 private:
  Transport transport_;
  std::unique_ptr<StreamServer> stream_;
  std::unique_ptr<DatagramServer> datagram_;
};

}  // namespace reactor::test

/// Instantiates `Suite` (over ModelCase) for one model: `Prefix` is the model in PascalCase,
/// `model` the enumerator, e.g. REACTOR_INSTANTIATE_MODEL(FooTest, Threading, threading).
#define REACTOR_INSTANTIATE_MODEL(Suite, Prefix, model)                                          \
  INSTANTIATE_TEST_SUITE_P(                                                                      \
      Prefix, Suite, ::testing::ValuesIn(::reactor::test::model_cases(::reactor::Model::model)), \
      ::reactor::test::ModelCaseName())
