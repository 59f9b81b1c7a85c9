#pragma once
/// Header-only helpers for the server tests: the transports and models to loop
/// over, parameter cases and their names, plain blocking clients bounded by SO_RCVTIMEO, echo
/// handlers of every kind, a serving thread that cannot outlive its test, process state read
/// from /proc (threads, children, zombies, open socket inodes), a per-test hang guard, and
/// logs that work across threads and forked children (a pipe, shared memory counters).
/// Namespace reactor::test::serverutil, so that nothing here can clash with other helpers.
#include <dirent.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <fstream>
#include <functional>
#include <initializer_list>
#include <memory>
#include <mutex>
#include <new>
#include <ostream>
#include <set>
#include <sstream>
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
#include "tests/support/fds.hpp"
#include "tests/support/io_helpers.hpp"
#include "tests/support/net_helpers.hpp"
#include "tests/support/sanitizers.hpp"

namespace reactor::test::serverutil {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using nethelpers::send_all;
using nethelpers::wait_for;
using std::chrono::milliseconds;

/// How long a client waits for any single receive or send before giving up (SO_RCVTIMEO,
/// SO_SNDTIMEO): a library bug fails the test instead of hanging it.
inline constexpr milliseconds kIoTimeout = 10s;

/// Milliseconds between two points, for messages and timing checks.
inline double ms_between(Clock::time_point from, Clock::time_point to) {
  return std::chrono::duration<double, std::milli>(to - from).count();
}

// ---------------------------------------------------------------------------------------
// Names, models, transports

/// "epoll" -> "Epoll": parameter names are CamelCase (no underscores in test names).
inline std::string camel(std::string_view s) {
  std::string out(s);
  if (!out.empty() && out[0] >= 'a' && out[0] <= 'z') out[0] = static_cast<char>(out[0] - 32);
  return out;
}

// GCC 12's and clang 14's ASan allocators are not fork-safe: a child forked while another
// thread holds an allocator lock deadlocks on its first allocation. These tests fork from a
// multithreaded process (their clients are threads), so under ASan the forking model is
// left to the release run and to the e2e tests, whose reactor-serve forks from one thread.
inline constexpr bool kForkingTestable = !reactor::test::kAsan;
/// False for a model these tests cannot run here (forking under ASan).
inline bool testable(Model m) { return m != Model::forking || kForkingTestable; }

inline constexpr std::array<Model, 5> kAllModels{Model::sync, Model::threading, Model::forking,
                                                 Model::reactor, Model::pool};

inline std::string model_name(Model m) { return camel(to_string(m)); }

/// The reactor and pool models run event handlers on the server's loops, so they are run over
/// every backend; the blocking models use their loop for accepting only (default backend).
inline bool runs_on_every_backend(Model m) { return m == Model::reactor || m == Model::pool; }

/// The transports a server can serve.
enum class Transport : std::uint8_t { tcp, unixstream, udp, unixdgram };
inline constexpr std::array<Transport, 4> kAllTransports{Transport::tcp, Transport::unixstream,
                                                         Transport::udp, Transport::unixdgram};

inline const char* transport_name(Transport t) {
  switch (t) {
    case Transport::tcp:
      return "Tcp";
    case Transport::unixstream:
      return "UnixStream";
    case Transport::udp:
      return "Udp";
    case Transport::unixdgram:
      return "UnixDgram";
  }
  return "?";
}

inline bool is_stream(Transport t) { return t == Transport::tcp || t == Transport::unixstream; }
inline bool is_unix(Transport t) { return t == Transport::unixstream || t == Transport::unixdgram; }

/// A fresh Linux abstract Unix name ("unix:@reactor-st-<pid>-<n>-<tag>").
inline Address unique_abstract(std::string_view tag = "") {
  static std::atomic<unsigned> counter{0};
  return Address::parse("unix:@reactor-st-" + std::to_string(::getpid()) + "-" +
                        std::to_string(counter.fetch_add(1)) + "-" + std::string(tag));
}

/// A private temporary directory for Unix socket files, removed (with what is left in it)
/// at scope end.
class TempDir {
 public:
  TempDir() {
    char templ[] = "/tmp/reactor-st-XXXXXX";
    if (::mkdtemp(templ) == nullptr) throw std::system_error(errno, std::generic_category());
    path_ = templ;
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  ~TempDir() {
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
  const std::string& path() const { return path_; }
  /// A fresh socket file name in the directory (not created).
  Address socket_address() {
    return Address::parse("unix:" + path_ + "/s" + std::to_string(next_++));
  }

 private:
  std::string path_;
  unsigned next_ = 0;
};

/// The address a server of transport `t` binds: loopback port 0, a socket file in `dir`
/// when given, else a fresh abstract name.
inline Address bind_address(Transport t, TempDir* dir = nullptr) {
  if (!is_unix(t)) return Address::ipv4_loopback(0);
  return dir != nullptr ? dir->socket_address() : unique_abstract(transport_name(t));
}

/// The file system path of a Unix path address ("" for the others).
inline std::string unix_path(const Address& a) {
  if (a.family() != Address::Family::unix_path) return {};
  return a.to_string().substr(5);  // after "unix:"
}

// ---------------------------------------------------------------------------------------
// Process state

/// Threads of this process (/proc/self/task). Under TSan the runtime adds a background
/// thread of its own when the first thread is created; one throwaway thread is made first
/// so that it is already there in every baseline.
inline std::size_t thread_count() {
  if constexpr (reactor::test::kTsan) {
    static const bool started = [] {
      std::thread([] {}).join();
      return true;
    }();
    (void)started;
  }
  std::size_t n = 0;
  if (DIR* dir = ::opendir("/proc/self/task")) {
    while (const dirent* e = ::readdir(dir)) {
      if (e->d_name[0] != '.') ++n;
    }
    ::closedir(dir);
  }
  return n;
}

/// Children of this process, zombies included (the union of /proc/self/task/*/children:
/// a child is listed under the thread that forked it).
inline std::vector<pid_t> child_pids() {
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

/// The state letter of a process ('R', 'S', 'Z', ...), or 0 when it is gone.
inline char process_state(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(in, line)) return 0;
  const std::size_t close = line.rfind(')');
  if (close == std::string::npos || close + 2 >= line.size()) return 0;
  return line[close + 2];
}

/// Children in state Z (exited, not reaped).
inline std::size_t zombie_children() {
  std::size_t n = 0;
  for (pid_t pid : child_pids()) n += process_state(pid) == 'Z' ? 1 : 0;
  return n;
}

/// True when this process has no child at all: waitpid(-1, WNOHANG) fails with ECHILD.
/// (Reaps a zombie if there is one; that is a failure anyway.)
inline bool waitpid_finds_no_child() {
  int status = 0;
  const pid_t r = ::waitpid(-1, &status, WNOHANG);
  return r == -1 && errno == ECHILD;
}

/// The inode of the socket behind `fd` (0 if it is not open).
inline ino_t inode_of(int fd) {
  struct stat st {};
  if (::fstat(fd, &st) != 0) return 0;
  return st.st_ino;
}

/// True when some fd of this process refers to socket inode `ino` (/proc/self/fd links
/// read "socket:[ino]"). Safe in a forked child: no allocation beyond a small string.
inline bool socket_inode_open(ino_t ino) {
  const std::string want = "socket:[" + std::to_string(ino) + "]";
  bool found = false;
  if (DIR* dir = ::opendir("/proc/self/fd")) {
    while (const dirent* e = ::readdir(dir)) {
      if (e->d_name[0] == '.') continue;
      char link[64];
      const std::string p = std::string("/proc/self/fd/") + e->d_name;
      const ssize_t n = ::readlink(p.c_str(), link, sizeof link - 1);
      if (n > 0 && want == std::string_view(link, static_cast<std::size_t>(n))) found = true;
    }
    ::closedir(dir);
  }
  return found;
}

/// CPU time (user + system) this process has used so far, all threads, in seconds.
inline double cpu_seconds() {
  rusage ru{};
  ::getrusage(RUSAGE_SELF, &ru);
  auto sec = [](const timeval& tv) { return double(tv.tv_sec) + double(tv.tv_usec) / 1e6; };
  return sec(ru.ru_utime) + sec(ru.ru_stime);
}

/// Aborts the process, naming the test, if the scope lasts longer than `limit`: the last
/// line of defence against a hung server (a blocked join or waitpid no loop watchdog can
/// reach). ctest reports the abort as a failure of this one test.
class HangGuard {
 public:
  explicit HangGuard(std::chrono::seconds limit)
      : name_(current_test_name()), thread_([this, limit] {
          std::unique_lock lock(mutex_);
          if (!cv_.wait_for(lock, limit, [this] { return done_; })) {
            std::fprintf(stderr, "\n%s: still running after %lld s: aborting (hang)\n",
                         name_.c_str(), static_cast<long long>(limit.count()));
            std::fflush(stderr);
            std::abort();
          }
        }) {}
  HangGuard(const HangGuard&) = delete;
  HangGuard& operator=(const HangGuard&) = delete;
  ~HangGuard() {
    {
      std::lock_guard lock(mutex_);
      done_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }

 private:
  static std::string current_test_name() {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    return info == nullptr ? "test" : std::string(info->test_suite_name()) + "." + info->name();
  }
  std::string name_;
  std::mutex mutex_;
  std::condition_variable cv_;
  bool done_ = false;
  std::thread thread_;
};

/// Samples `probe()` every `period` on a thread of its own and keeps the largest value.
class Sampler {
 public:
  Sampler(std::function<std::size_t()> probe, milliseconds period = 1ms)
      : probe_(std::move(probe)), thread_([this, period] {
          while (!stop_.load()) {
            const std::size_t v = probe_();
            std::size_t m = max_.load();
            while (v > m && !max_.compare_exchange_weak(m, v)) {
            }
            std::this_thread::sleep_for(period);
          }
        }) {}
  Sampler(const Sampler&) = delete;
  Sampler& operator=(const Sampler&) = delete;
  ~Sampler() { stop(); }
  void stop() {
    stop_.store(true);
    if (thread_.joinable()) thread_.join();
  }
  std::size_t max() const { return max_.load(); }

 private:
  std::function<std::size_t()> probe_;
  std::atomic<bool> stop_{false};
  std::atomic<std::size_t> max_{0};
  std::thread thread_;
};

// ---------------------------------------------------------------------------------------
// Parameter cases

/// A model on a backend.
struct ModelCase {
  Model model;
  std::string backend;
};

/// Every model of `models` on the default backend, and the event models on every backend.
inline std::vector<ModelCase> model_cases(std::initializer_list<Model> models) {
  std::vector<ModelCase> out;
  for (Model m : models) {
    if (!testable(m)) continue;
    if (runs_on_every_backend(m)) {
      for (const std::string& b : all_backends()) out.push_back({m, b});
    } else {
      out.push_back({m, default_backend_name()});
    }
  }
  return out;
}

/// For gtest's messages (instead of a byte dump).
inline void PrintTo(const ModelCase& c, std::ostream* os) {
  *os << to_string(c.model) << "/" << c.backend;
}

/// "ReactorEpoll", "SyncEpoll", ...
struct ModelCaseName {
  std::string operator()(const ::testing::TestParamInfo<ModelCase>& info) const {
    return model_name(info.param.model) + camel(info.param.backend);
  }
};

/// Base fixture for suites over ModelCase: warms the backend up (libuv keeps two
/// process-wide fds after its first loop) so that FdLeakCheck sees only the test.
/// After the test, the thread count is back where it was and no child is left.
class ModelTest : public ::testing::TestWithParam<ModelCase> {
 protected:
  void SetUp() override {
    warm_up_backend(GetParam().backend);
    threads_before_ = thread_count();
  }
  void TearDown() override {
    EXPECT_TRUE(wait_for([&] { return thread_count() == threads_before_; }, 2000ms))
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
// Clients: plain blocking sockets, every wait bounded

inline void set_timeouts(int fd, milliseconds limit) {
  timeval tv{};
  tv.tv_sec = static_cast<time_t>(limit.count() / 1000);
  tv.tv_usec = static_cast<suseconds_t>((limit.count() % 1000) * 1000);
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

/// The local address of a socket (getsockname); empty on failure.
inline Address local_address_of(int fd) {
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) return {};
  std::error_code ec;
  return Address::from_native(reinterpret_cast<sockaddr*>(&ss), len, ec);
}

/// A blocking stream socket connected to `to` (bound first to `bind_to` when it is not
/// empty: a Unix client with a name the server can see). On failure the Fd is empty and
/// `err` holds errno.
inline Fd connect_stream(const Address& to, int& err, const Address& bind_to = {},
                         milliseconds timeout = kIoTimeout) {
  err = 0;
  Fd fd(::socket(to.domain(), SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (fd.get() < 0) {
    err = errno;
    return Fd{};
  }
  set_timeouts(fd.get(), timeout);
  if (!bind_to.empty() && ::bind(fd.get(), bind_to.native(), bind_to.native_size()) != 0) {
    err = errno;
    return Fd{};
  }
  int rc;
  do {
    rc = ::connect(fd.get(), to.native(), to.native_size());
  } while (rc != 0 && errno == EINTR);
  if (rc != 0) {
    err = errno;
    return Fd{};
  }
  if (to.is_ip()) {
    const int one = 1;
    ::setsockopt(fd.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  }
  return fd;
}

/// What a client read: the bytes, and how the reading ended.
struct ClientRead {
  std::string bytes;
  bool eof = false;  ///< recv returned 0
  int error = 0;     ///< errno of a failed recv (EAGAIN: SO_RCVTIMEO ran out)
  /// The server ended the connection (FIN or reset), rather than the wait timing out.
  bool ended() const { return eof || error == ECONNRESET || error == EPIPE; }
  std::string describe() const {
    std::string s = "read \"" + bytes + "\"";
    if (eof) s += " then EOF";
    if (error != 0) s += std::string(" then ") + std::strerror(error);
    return s;
  }
};

/// Reads until a '\n' (kept), EOF, an error or a receive timeout.
inline ClientRead read_line(int fd) {
  ClientRead r;
  char c;
  for (;;) {
    const ssize_t n = ::recv(fd, &c, 1, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      r.error = errno;
      return r;
    }
    if (n == 0) {
      r.eof = true;
      return r;
    }
    r.bytes.push_back(c);
    if (c == '\n') return r;
  }
}

/// Reads until EOF, an error or a receive timeout.
inline ClientRead read_to_end(int fd) {
  ClientRead r;
  char buf[4096];
  for (;;) {
    const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      r.error = errno;
      return r;
    }
    if (n == 0) {
      r.eof = true;
      return r;
    }
    r.bytes.append(buf, static_cast<std::size_t>(n));
  }
}

/// Ends a client connection for sure: shutdown(2) first, then close. A forking server's
/// children are forked from this very process and inherit a copy of every client fd open at
/// that moment, so a bare close() would not end the connection while such a copy lives.
inline void hang_up(Fd& fd) {
  if (fd.get() >= 0) ::shutdown(fd.get(), SHUT_RDWR);
  fd.reset();
}

/// One stream request: connect, send `line`, read one line back, hang up. Returns the line
/// read, or a description of what went wrong (which never ends in '\n').
inline std::string stream_echo(const Address& to, const std::string& line,
                               const Address& bind_to = {}) {
  int err = 0;
  Fd fd = connect_stream(to, err, bind_to);
  if (fd.get() < 0) return std::string("connect failed: ") + std::strerror(err);
  if (!send_all(fd.get(), line)) return std::string("send failed: ") + std::strerror(errno);
  const ClientRead r = read_line(fd.get());
  hang_up(fd);
  if (!r.bytes.empty() && r.bytes.back() == '\n') return r.bytes;
  return r.describe();
}

/// A datagram socket for talking to `server`, bound at once (so that its address is known
/// before it sends): IP clients to loopback port 0, Unix clients to an autobound abstract
/// name (else the server could not answer). Timeouts set. Empty on failure.
inline Fd datagram_client(const Address& server, milliseconds timeout = kIoTimeout) {
  Fd fd(::socket(server.domain(), SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (fd.get() < 0) return Fd{};
  set_timeouts(fd.get(), timeout);
  if (server.is_ip()) {
    const Address local = server.with_port(0);
    if (::bind(fd.get(), local.native(), local.native_size()) != 0) return Fd{};
  } else {
    sockaddr_un sa{};
    sa.sun_family = AF_UNIX;
    if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&sa), sizeof(sa_family_t)) != 0) {
      return Fd{};
    }
  }
  return fd;
}

/// Sends one datagram; true when the kernel took it.
inline bool send_datagram(int fd, const Address& to, std::string_view bytes) {
  ssize_t n;
  do {
    n = ::sendto(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL, to.native(), to.native_size());
  } while (n < 0 && errno == EINTR);
  return n == static_cast<ssize_t>(bytes.size());
}

/// Receives one datagram; nullopt-like empty result with `err` set on a timeout or error.
inline std::string receive_datagram(int fd, int& err) {
  err = 0;
  char buf[65536];
  for (;;) {
    const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      err = errno;
      return {};
    }
    return std::string(buf, static_cast<std::size_t>(n));
  }
}

/// True when nothing is waiting to be received on `fd` (a reply that should not exist).
inline bool nothing_queued(int fd) {
  char c;
  return ::recv(fd, &c, 1, MSG_DONTWAIT | MSG_PEEK) < 0 && errno == EAGAIN;
}

/// One datagram request and its reply (or a description of what went wrong).
inline std::string datagram_echo(const Address& to, const std::string& payload) {
  Fd fd = datagram_client(to);
  if (fd.get() < 0) return std::string("socket failed: ") + std::strerror(errno);
  if (!send_datagram(fd.get(), to, payload)) {
    return std::string("sendto failed: ") + std::strerror(errno);
  }
  int err = 0;
  std::string got = receive_datagram(fd.get(), err);
  if (err != 0) return std::string("recv failed: ") + std::strerror(err);
  return got;
}

/// One request over `t`.
inline std::string echo(Transport t, const Address& to, const std::string& line) {
  return is_stream(t) ? stream_echo(to, line) : datagram_echo(to, line);
}

/// After a server closed: 0 if `to` still answers, else the errno a client gets
/// (ECONNREFUSED; ENOENT for a removed socket file).
inline int unreachable_error(Transport t, const Address& to) {
  if (is_stream(t)) {
    int err = 0;
    Fd fd = connect_stream(to, err, {}, 2s);
    return fd.get() >= 0 ? 0 : err;
  }
  Fd fd = datagram_client(to, 1s);
  if (fd.get() < 0) return errno;
  if (to.is_ip()) {
    // A connected UDP socket learns of the ICMP port-unreachable on its next call.
    if (::connect(fd.get(), to.native(), to.native_size()) != 0) return errno;
    if (::send(fd.get(), "x", 1, MSG_NOSIGNAL) != 1) return errno;
    char c;
    if (::recv(fd.get(), &c, 1, 0) >= 0) return 0;
    return errno == EAGAIN ? 0 : errno;
  }
  if (!send_datagram(fd.get(), to, "x")) return errno;
  return 0;
}

/// A client line a server test sends: "<tag>-<i>-<padding>\n".
inline std::string client_line(std::string_view tag, std::size_t i) {
  return std::string(tag) + "-" + std::to_string(i) + "-abcdefghijklmnopqrstuvwxyz\n";
}

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
  bool wait_returned(milliseconds limit) {
    std::unique_lock lock(mutex_);
    return cv_.wait_for(lock, limit, [this] { return returned_; });
  }
  bool returned() {
    std::lock_guard lock(mutex_);
    return returned_;
  }
  Clock::time_point returned_at() {
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
      returned_at_ = Clock::now();
    }
    cv_.notify_all();
  }

  Server& server_;
  std::mutex mutex_;
  std::condition_variable cv_;
  bool returned_ = false;
  Clock::time_point returned_at_{};
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
    return serverutil::echo(transport_, address(), line);
  }

 private:
  Transport transport_;
  std::unique_ptr<StreamServer> stream_;
  std::unique_ptr<DatagramServer> datagram_;
};

// ---------------------------------------------------------------------------------------
// Fd reuse: catching a library that closes an fd number twice

/// Pipes opened right after the library closed fds: they take the freed numbers. A library
/// that closes a number a second time closes one of these; intact() notices.
class ReusePipes {
 public:
  /// Opens `n` pipes (2n fds).
  void open(std::size_t n) {
    for (std::size_t i = 0; i < n; ++i) {
      int fds[2];
      if (::pipe2(fds, O_CLOEXEC | O_NONBLOCK) != 0) return;
      pipes_.push_back({Fd(fds[0]), Fd(fds[1]), false});
      numbers_.insert(fds[0]);
      numbers_.insert(fds[1]);
    }
  }
  /// Makes the read end of every pipe opened so far readable (one byte each), so that a
  /// stale registration of a reused number would report it.
  void fill() {
    for (Pipe& p : pipes_) {
      if (!p.filled) p.filled = write_byte(p.w.get(), 'p');
    }
  }
  /// Every pipe still open, still the same pipe (a byte written goes through), and the byte
  /// written by fill() still unread (nobody else read it). Leaves the pipes as they were.
  ::testing::AssertionResult intact() {
    for (Pipe& p : pipes_) {
      if (::fcntl(p.r.get(), F_GETFD) < 0 || ::fcntl(p.w.get(), F_GETFD) < 0) {
        return ::testing::AssertionFailure()
               << "fd " << p.r.get() << " or " << p.w.get() << " was closed behind our back";
      }
      const int queued = nethelpers::unread_bytes(p.r.get());
      if (queued != (p.filled ? 1 : 0)) {
        return ::testing::AssertionFailure() << "pipe " << p.r.get() << " holds " << queued
                                             << " bytes, expected " << (p.filled ? 1 : 0);
      }
      if (!write_byte(p.w.get(), 'q')) {
        return ::testing::AssertionFailure() << "write to pipe fd " << p.w.get() << " failed";
      }
      const std::string got = drain(p.r.get());
      if (got != (p.filled ? "pq" : "q")) {
        return ::testing::AssertionFailure()
               << "pipe " << p.r.get() << " read \"" << got << "\": not the same pipe";
      }
      if (p.filled) write_byte(p.w.get(), 'p');
    }
    return ::testing::AssertionSuccess();
  }
  bool holds(int fd) const { return numbers_.count(fd) != 0; }
  std::size_t size() const { return pipes_.size(); }
  void close() {
    pipes_.clear();
    numbers_.clear();
  }

 private:
  struct Pipe {
    Fd r;
    Fd w;
    bool filled;
  };
  std::vector<Pipe> pipes_;
  std::set<int> numbers_;
};

}  // namespace reactor::test::serverutil
