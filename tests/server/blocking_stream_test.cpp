// SPDX-License-Identifier: MIT
// BlockingStream: lines (LF, CRLF, lone CR, NUL, split delimiters), the line cap, exact
// and partial reads, buffered writes, timeouts, cancellation through an eventfd, a vanished
// peer (never SIGPIPE), half-close, and 16 MiB each way under a storm of signals.
//
// Every test runs over TCP on 127.0.0.1, TCP on ::1 and a Unix stream socket: one end in a
// BlockingStream, the other a raw blocking socket driven with plain system calls (bounded by
// a 20 s SO_RCVTIMEO/SO_SNDTIMEO). Every stream gets a per-wait timeout (kSafety) unless the
// test is about timeouts, so a wait the library fails to end returns an error instead of
// hanging; a per-test deadline aborts with a message as the last resort.
#include "reactor/server/blocking_stream.hpp"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <pthread.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include "reactor/net/buffer.hpp"
#include "reactor/net/socket.hpp"
#include "tests/support/allocators.hpp"
#include "tests/support/errors.hpp"
#include "tests/support/fds.hpp"
#include "tests/support/io.hpp"
#include "tests/support/loop.hpp"
#include "tests/support/patterns.hpp"
#include "tests/support/signals.hpp"
#include "tests/support/sockets.hpp"
#include "tests/support/time.hpp"

namespace reactor {
namespace {

using namespace std::chrono_literals;
using namespace reactor::test;
using test::FdLeakCheck;
using test::ScopedDisposition;
using test::ScopedUnblock;
using Clock = std::chrono::steady_clock;

/// The per-wait timeout every stream gets unless a test is about timeouts: far longer than
/// any healthy wait here, short enough that a broken wait fails the test instead of hanging.
constexpr auto kSafety = 10s;
/// The big transfers (under signals, and the flow tests).
constexpr std::size_t kBig = std::size_t{16} << 20;

double ms_since(Clock::time_point t) { return ms_between(t, Clock::now()); }

/// The test pattern (position-dependent bytes), 16 MiB, built once.
const std::string& big_pattern() {
  static const std::string p = pattern(0, kBig);
  return p;
}

std::uint64_t checksum(std::string_view s) {
  Fnv1a f;
  f.update(s);
  return f.value;
}

/// Success when `got` equals `want` byte for byte; otherwise says where they first differ.
::testing::AssertionResult SameBytes(std::string_view got, std::string_view want) {
  const std::size_t at = first_difference(got, want);
  if (at == std::string_view::npos) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure()
         << "got " << got.size() << " bytes (checksum " << checksum(got) << "), expected "
         << want.size() << " (checksum " << checksum(want) << "); first difference at offset "
         << at;
}

/// Success when `ec` is broken_pipe or connection_reset.
::testing::AssertionResult IsPeerGone(const std::error_code& ec) {
  return IsOneOf(ec, {std::errc::broken_pipe, std::errc::connection_reset});
}

/// What a raw peer read.
struct PeerRead {
  std::string bytes;
  bool eof = false;
  int error = 0;  ///< errno of a failed recv (EAGAIN: the 20 s SO_RCVTIMEO ran out)
};

/// Reads a blocking peer fd until end of stream, an error or `limit` bytes, `chunk` bytes
/// per recv, sleeping `pause` after each: a slow reader.
PeerRead read_until_eof(int fd, std::size_t chunk = 65536, std::chrono::microseconds pause = 0us,
                        std::size_t limit = std::size_t{64} << 20) {
  PeerRead r;
  std::string buf(chunk, '\0');
  while (r.bytes.size() < limit) {
    const ssize_t n = ::recv(fd, buf.data(), buf.size(), 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      r.error = errno;
      break;
    }
    if (n == 0) {
      r.eof = true;
      break;
    }
    r.bytes.append(buf.data(), static_cast<std::size_t>(n));
    if (pause.count() > 0) std::this_thread::sleep_for(pause);
  }
  return r;
}

/// A non-blocking, close-on-exec eventfd, the kind a server hands its handlers as cancel_fd.
test::Fd make_cancel_fd() {
  test::Fd fd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (fd.get() < 0) throw_errno("eventfd");
  return fd;
}

void signal_cancel(int fd) {
  const std::uint64_t one = 1;
  while (::write(fd, &one, sizeof one) < 0 && errno == EINTR) {
  }
}

/// Makes the cancel fd unreadable again.
void reset_cancel(int fd) {
  std::uint64_t value = 0;
  while (::read(fd, &value, sizeof value) < 0 && errno == EINTR) {
  }
}

/// Calls `fn` on another thread after `delay`; when() is the moment it was called.
class Later {
 public:
  Later(std::chrono::milliseconds delay, std::function<void()> fn)
      : thread_([this, delay, fn = std::move(fn)] {
          std::this_thread::sleep_for(delay);
          when_ = Clock::now();
          fn();
          done_.store(true);
        }) {}
  Later(const Later&) = delete;
  Later& operator=(const Later&) = delete;
  ~Later() { join(); }
  void join() {
    if (thread_.joinable()) thread_.join();
  }
  /// Valid after join().
  Clock::time_point when() const { return when_; }
  bool done() const { return done_.load(); }

 private:
  Clock::time_point when_{};
  std::atomic<bool> done_{false};
  std::thread thread_;
};

/// Sends SIGUSR1 to `target` about every 100 µs from its own thread until stop(), at most
/// `cap` times (about 60 s): the signalling half of the transfers under signals. The disposition
/// must already be a handler (SIGUSR1's default action ends the process), and `target` must not be
/// joined before stop() returns.
class SignalStorm {
 public:
  explicit SignalStorm(pthread_t target, int cap = 600000)
      : thread_([this, target, cap] {
          for (int i = 0; i < cap && !stop_.load(); ++i) {
            if (::pthread_kill(target, SIGUSR1) == 0) sent_.fetch_add(1);
            std::this_thread::sleep_for(100us);
          }
        }) {}
  SignalStorm(const SignalStorm&) = delete;
  SignalStorm& operator=(const SignalStorm&) = delete;
  ~SignalStorm() { stop(); }
  void stop() {
    stop_.store(true);
    if (thread_.joinable()) thread_.join();
  }
  int sent() const { return sent_.load(); }

 private:
  std::atomic<bool> stop_{false};
  std::atomic<int> sent_{0};
  std::thread thread_;
};

/// Counts buffer allocations (delegating to the allocator installed before) and remembers
/// the largest, for "memory stays bounded".
class AllocationWatch {
 public:
  AllocationWatch() {
    largest().store(0);
    previous() = set_buffer_allocator(BufferAllocator{&allocate, &release});
  }
  AllocationWatch(const AllocationWatch&) = delete;
  AllocationWatch& operator=(const AllocationWatch&) = delete;
  ~AllocationWatch() { set_buffer_allocator(previous()); }
  std::size_t largest_allocation() const { return largest().load(); }

 private:
  static BufferAllocator& previous() {
    static BufferAllocator p{};
    return p;
  }
  static std::atomic<std::size_t>& largest() {
    static std::atomic<std::size_t> n{0};
    return n;
  }
  static void* allocate(std::size_t size) noexcept {
    std::size_t seen = largest().load();
    while (size > seen && !largest().compare_exchange_weak(seen, size)) {
    }
    return previous().allocate(size);
  }
  static void release(void* p) noexcept { previous().release(p); }
};

// ---------------------------------------------------------------------------------------

class BlockingStreamTest : public ::testing::TestWithParam<Transport> {
 protected:
  void SetUp() override {
    if (GetParam() == Transport::tcp6 && !ipv6_loopback_available()) {
      GTEST_SKIP() << "::1 cannot be bound here";
    }
    (void)big_pattern();  // built outside the timed parts
  }

  /// A connected pair: ours (for the stream) and a raw blocking peer.
  StreamPair make_pair() { return make_stream_pair(GetParam()); }

  /// Shrinks the kernel buffers between the two ends, so that a few hundred KiB fill them.
  void shrink_buffers(StreamPair& p) {
    set_int_option(p.ours.fd(), SOL_SOCKET, SO_SNDBUF, 32 * 1024);
    set_int_option(p.peer.get(), SOL_SOCKET, SO_RCVBUF, 32 * 1024);
  }

  HangGuard deadline_{60s};
};

// ---------------------------------------------------------------------------------------
// Lines

TEST_P(BlockingStreamTest, ReadLineReturnsLinesWithNewlineAndLastWithout) {
  FdLeakCheck leak;
  StreamPair p = make_pair();
  ASSERT_TRUE(send_all(p.peer.get(), "one\ntwo\n\nthree"));
  ASSERT_EQ(::shutdown(p.peer.get(), SHUT_WR), 0);
  BlockingStream s(std::move(p.ours));
  s.set_timeout(kSafety);

  std::error_code ec;
  EXPECT_EQ(s.read_line(ec), std::optional<std::string>("one\n"));
  EXPECT_FALSE(ec);
  EXPECT_EQ(s.read_line(), std::optional<std::string>("two\n"));
  EXPECT_EQ(s.read_line(ec), std::optional<std::string>("\n"));
  EXPECT_FALSE(ec);
  EXPECT_EQ(s.read_line(), std::optional<std::string>("three"));
  EXPECT_EQ(s.read_line(ec), std::nullopt);
  EXPECT_FALSE(ec) << ec.message();
  EXPECT_TRUE(s.eof());
  // End of stream stays end of stream, in both forms.
  EXPECT_EQ(s.read_line(), std::nullopt);
  EXPECT_EQ(s.read_line(ec), std::nullopt);
  EXPECT_FALSE(ec);
  EXPECT_EQ(s.buffered_input(), 0u);
}

TEST_P(BlockingStreamTest, ReadLineOnEmptyStreamIsNullopt) {
  FdLeakCheck leak;
  StreamPair p = make_pair();
  p.peer.reset();
  BlockingStream s(std::move(p.ours));
  s.set_timeout(kSafety);
  EXPECT_FALSE(s.eof());
  std::error_code ec;
  EXPECT_EQ(s.read_line(ec), std::nullopt);
  EXPECT_FALSE(ec) << ec.message();
  EXPECT_TRUE(s.eof());
  EXPECT_EQ(s.read(10, ec), "");
  EXPECT_FALSE(ec);
  EXPECT_EQ(s.read_some(10, ec), "");
  EXPECT_FALSE(ec);
  EXPECT_EQ(s.read_some(), "");
}

TEST_P(BlockingStreamTest, CrlfLoneCrAndNulAreKeptAsIs) {
  FdLeakCheck leak;
  StreamPair p = make_pair();
  using namespace std::string_literals;
  const std::string text = "crlf\r\nlone\rcr\n\r\n\0nul\0inside\0\nend\r"s;
  ASSERT_TRUE(send_all(p.peer.get(), text));
  ASSERT_EQ(::shutdown(p.peer.get(), SHUT_WR), 0);
  BlockingStream s(std::move(p.ours));
  s.set_timeout(kSafety);

  EXPECT_EQ(s.read_line(), std::optional<std::string>("crlf\r\n"));
  EXPECT_EQ(s.read_line(), std::optional<std::string>("lone\rcr\n"));
  EXPECT_EQ(s.read_line(), std::optional<std::string>("\r\n"));
  EXPECT_EQ(s.read_line(), std::optional<std::string>("\0nul\0inside\0\n"s));
  EXPECT_EQ(s.read_line(), std::optional<std::string>("end\r"));
  EXPECT_EQ(s.read_line(), std::nullopt);
}

TEST_P(BlockingStreamTest, LineSplitAcrossOneByteWrites) {
  FdLeakCheck leak;
  StreamPair p = make_pair();
  using namespace std::string_literals;
  const std::vector<std::string> lines = {"a\n",
                                          "hello world\r\n",
                                          "\n",
                                          "split\r"s,
                                          "\n"s,  // a CRLF split in two lines' worth
                                          "x\ry\n",
                                          "nul\0in\0side\n"s,
                                          std::string(300, 'L') + "\n",
                                          "last without newline"};
  // "split\r" + "\n" is one line on the wire: "split\r\n".
  const std::vector<std::string> want = {"a\n",
                                         "hello world\r\n",
                                         "\n",
                                         "split\r\n",
                                         "x\ry\n",
                                         "nul\0in\0side\n"s,
                                         std::string(300, 'L') + "\n",
                                         "last without newline"};
  std::string wire;
  for (const auto& l : lines) wire += l;

  PeerThread peer(p.peer.get(), [&] {
    for (char c : wire) {
      if (!send_all(p.peer.get(), std::string_view(&c, 1))) return;
      std::this_thread::sleep_for(100us);
    }
    ::shutdown(p.peer.get(), SHUT_WR);
  });
  BlockingStream s(std::move(p.ours));
  s.set_timeout(kSafety);
  for (const auto& w : want) {
    std::error_code ec;
    auto line = s.read_line(ec);
    ASSERT_FALSE(ec) << ec.message() << " before line " << w;
    ASSERT_TRUE(line.has_value()) << "early end of stream before line " << w;
    EXPECT_EQ(*line, w);
  }
  EXPECT_EQ(s.read_line(), std::nullopt);
  peer.join();
}

TEST_P(BlockingStreamTest, ManyLinesInOneBurstAreSplitExactly) {
  FdLeakCheck leak;
  StreamPair p = make_pair();
  std::string wire;
  std::vector<std::string> want;
  for (int i = 0; i < 5000; ++i) {
    std::string line = std::to_string(i) + ":" + std::string(static_cast<std::size_t>(i % 97), 'z');
    line += (i % 3 == 0) ? "\r\n" : "\n";
    want.push_back(line);
    wire += line;
  }
  PeerThread peer(p.peer.get(), [&] {
    send_all(p.peer.get(), wire);
    ::shutdown(p.peer.get(), SHUT_WR);
  });
  BlockingStream s(std::move(p.ours));
  s.set_timeout(kSafety);
  std::size_t n = 0;
  std::error_code ec;
  while (auto line = s.read_line(ec)) {
    ASSERT_LT(n, want.size());
    ASSERT_EQ(*line, want[n]) << "line " << n;
    ++n;
  }
  EXPECT_FALSE(ec) << ec.message();
  EXPECT_EQ(n, want.size());
  peer.join();
}

// ---------------------------------------------------------------------------------------
// The line cap

TEST_P(BlockingStreamTest, LineLongerThanTheCapFailsWithMessageSize) {
  for (const bool throwing : {false, true}) {
    SCOPED_TRACE(throwing ? "throwing form" : "error_code form");
    FdLeakCheck leak;
    StreamPair p = make_pair();
    ASSERT_TRUE(send_all(p.peer.get(), std::string(250, 'x') + "\nnext\n"));
    BlockingStream s(std::move(p.ours));
    s.set_timeout(kSafety);
    EXPECT_EQ(s.max_line(), BlockingStream::kDefaultMaxLine);
    s.set_max_line(100);
    EXPECT_EQ(s.max_line(), 100u);
    if (throwing) {
      EXPECT_TRUE(test::ThrowsErrc([&] { (void)s.read_line(); }, std::errc::message_size));
    } else {
      std::error_code ec;
      EXPECT_EQ(s.read_line(ec), std::nullopt);
      EXPECT_TRUE(IsErrc(ec, std::errc::message_size));
    }
    EXPECT_LE(s.buffered_input(), 100u + 2) << "the cap and a CRLF at most";
  }
}

TEST_P(BlockingStreamTest, LineUpToTheCapIsReturned) {
  FdLeakCheck leak;
  StreamPair p = make_pair();
  const std::string at_cap = std::string(99, 'y') + "\n";  // 100 bytes with its newline
  const std::string under = std::string(50, 'u') + "\r\n";
  ASSERT_TRUE(send_all(p.peer.get(), at_cap + under + at_cap));
  ASSERT_EQ(::shutdown(p.peer.get(), SHUT_WR), 0);
  BlockingStream s(std::move(p.ours));
  s.set_timeout(kSafety);
  s.set_max_line(100);
  std::error_code ec;
  EXPECT_EQ(s.read_line(ec), std::optional<std::string>(at_cap));
  EXPECT_FALSE(ec) << ec.message();
  EXPECT_EQ(s.read_line(ec), std::optional<std::string>(under));
  EXPECT_FALSE(ec) << ec.message();
  EXPECT_EQ(s.read_line(ec), std::optional<std::string>(at_cap));
  EXPECT_FALSE(ec) << ec.message();
  EXPECT_EQ(s.read_line(ec), std::nullopt);
  EXPECT_FALSE(ec) << ec.message();
}

TEST_P(BlockingStreamTest, CapAppliesToALineAlreadyBuffered) {
  // read() may pull more than the cap into the buffer; a line found there that is longer than
  // the cap must still fail, whichever call buffered it.
  FdLeakCheck leak;
  StreamPair p = make_pair();
  ASSERT_TRUE(send_all(p.peer.get(), "A" + std::string(40, 'x') + "\nok\n"));
  ASSERT_EQ(::shutdown(p.peer.get(), SHUT_WR), 0);
  BlockingStream s(std::move(p.ours));
  s.set_timeout(kSafety);
  // Give the whole burst time to arrive, so that read(1) may buffer all of it.
  ASSERT_TRUE(wait_for([&] { return unread_bytes(s.fd()) >= 45; }));
  EXPECT_EQ(s.read(1), "A");
  s.set_max_line(16);
  std::error_code ec;
  const auto line = s.read_line(ec);
  EXPECT_TRUE(IsErrc(ec, std::errc::message_size))
      << "returned " << (line ? std::to_string(line->size()) + " bytes" : "nothing")
      << " with a cap of 16";
  // What read() buffered stays buffered: read_line() only refuses to add to it.
}

TEST_P(BlockingStreamTest, TenMiBWithoutNewlineFailsWithBoundedMemory) {
  FdLeakCheck leak;
  AllocationWatch allocations;
  StreamPair p = make_pair();
  std::optional<BlockingStream> s;
  s.emplace(std::move(p.ours));
  s->set_timeout(kSafety);
  ASSERT_EQ(s->max_line(), std::size_t{64} * 1024);
  std::atomic<bool> peer_sent_all{false};
  {
    PeerThread peer(p.peer.get(), [&] {
      const std::string chunk(64 * 1024, 'n');
      std::size_t sent = 0;
      while (sent < (std::size_t{10} << 20) && send_all(p.peer.get(), chunk)) {
        sent += chunk.size();
      }
      peer_sent_all.store(sent >= (std::size_t{10} << 20));
    });
    std::error_code ec;
    const auto t0 = Clock::now();
    const auto line = s->read_line(ec);
    EXPECT_TRUE(IsErrc(ec, std::errc::message_size))
        << "returned " << (line ? std::to_string(line->size()) + " bytes" : "nothing");
    EXPECT_LT(ms_since(t0), 5000.0);
    EXPECT_LE(s->buffered_input(), s->max_line() + 2);
    EXPECT_TRUE(test::ThrowsErrc([&] { (void)s->read_line(); }, std::errc::message_size));
    EXPECT_LE(s->buffered_input(), s->max_line() + 2);
    // Closing our end makes the blocked peer fail (EPIPE/ECONNRESET) and end.
    s.reset();
    peer.join();
  }
  EXPECT_LE(allocations.largest_allocation(), std::size_t{1} << 20)
      << "a buffer grew far past the 64 KiB line cap";
  EXPECT_FALSE(peer_sent_all.load()) << "all 10 MiB were consumed for one capped line";
}

// ---------------------------------------------------------------------------------------
// read(n) and read_some

TEST_P(BlockingStreamTest, ReadReturnsExactlyNAndFewerOnlyAtEof) {
  FdLeakCheck leak;
  StreamPair p = make_pair();
  PeerThread peer(p.peer.get(), [&] {
    send_all(p.peer.get(), "abc");
    std::this_thread::sleep_for(50ms);
    send_all(p.peer.get(), "d");
    std::this_thread::sleep_for(20ms);
    send_all(p.peer.get(), "efghij");
    ::shutdown(p.peer.get(), SHUT_WR);
  });
  BlockingStream s(std::move(p.ours));
  s.set_timeout(kSafety);
  std::error_code ec;
  EXPECT_EQ(s.read(0, ec), "");
  EXPECT_FALSE(ec);
  EXPECT_EQ(s.read(5, ec), "abcde");  // needs three arrivals
  EXPECT_FALSE(ec) << ec.message();
  EXPECT_EQ(s.read(3), "fgh");
  EXPECT_EQ(s.read(10, ec), "ij");  // short: end of stream
  EXPECT_FALSE(ec) << ec.message();
  EXPECT_TRUE(s.eof());
  EXPECT_EQ(s.read(4, ec), "");
  EXPECT_FALSE(ec);
  EXPECT_EQ(s.read(4), "");
  peer.join();
}

TEST_P(BlockingStreamTest, ReadLineAndReadShareOneBuffer) {
  FdLeakCheck leak;
  StreamPair p = make_pair();
  const std::string body = pattern(7, 100000);
  ASSERT_TRUE(send_all(p.peer.get(), "HEADER 100000\r\n"));
  PeerThread peer(p.peer.get(), [&] {
    send_all(p.peer.get(), body + "trailer\nx");
    ::shutdown(p.peer.get(), SHUT_WR);
  });
  BlockingStream s(std::move(p.ours));
  s.set_timeout(kSafety);
  EXPECT_EQ(s.read_line(), std::optional<std::string>("HEADER 100000\r\n"));
  EXPECT_TRUE(SameBytes(s.read(body.size()), body));
  EXPECT_EQ(s.read_line(), std::optional<std::string>("trailer\n"));
  EXPECT_EQ(s.read_some(), "x");
  EXPECT_EQ(s.read_some(), "");
  EXPECT_TRUE(s.eof());
  peer.join();
}

TEST_P(BlockingStreamTest, ReadSomeReturnsWhatIsThere) {
  FdLeakCheck leak;
  StreamPair p = make_pair();
  BlockingStream s(std::move(p.ours));
  s.set_timeout(kSafety);
  ASSERT_TRUE(send_all(p.peer.get(), "hello"));
  std::string got;
  std::error_code ec;
  for (int i = 0; i < 5 && got.size() < 5; ++i) {
    const std::string part = s.read_some(64, ec);
    ASSERT_FALSE(ec) << ec.message();
    ASSERT_FALSE(part.empty());
    got += part;
  }
  EXPECT_EQ(got, "hello");

  // max caps what one call returns; the rest stays for the next call.
  ASSERT_TRUE(send_all(p.peer.get(), "0123456789"));
  ASSERT_TRUE(wait_for([&] { return unread_bytes(s.fd()) >= 10; }));
  std::string a = s.read_some(3, ec);
  ASSERT_FALSE(ec) << ec.message();
  EXPECT_GE(a.size(), 1u);
  EXPECT_LE(a.size(), 3u);
  while (a.size() < 10) {
    const std::string more = s.read_some(3, ec);
    ASSERT_FALSE(ec) << ec.message();
    ASSERT_FALSE(more.empty());
    EXPECT_LE(more.size(), 3u);
    a += more;
  }
  EXPECT_EQ(a, "0123456789");

  // Buffered input is returned without waiting on a now silent peer.
  ASSERT_TRUE(send_all(p.peer.get(), "line\nrest"));
  EXPECT_EQ(s.read_line(), std::optional<std::string>("line\n"));
  s.set_timeout(2s);
  const auto t0 = Clock::now();
  std::string rest = s.read_some(100, ec);
  EXPECT_FALSE(ec) << ec.message();
  EXPECT_LT(ms_since(t0), 1000.0);
  // "rest" may have come in two pieces; only the first is guaranteed buffered.
  if (rest.size() < 4 && !ec) rest += s.read_some(100, ec);
  EXPECT_EQ(rest, "rest");
  EXPECT_EQ(s.read_some(0, ec), "");
  EXPECT_FALSE(ec);

  p.peer.reset();
  EXPECT_EQ(s.read_some(100, ec), "");
  EXPECT_FALSE(ec) << ec.message();
  EXPECT_TRUE(s.eof());
}

TEST_P(BlockingStreamTest, SixteenMiBReadInMixedSizes) {
  FdLeakCheck leak;
  StreamPair p = make_pair();
  const std::string& data = big_pattern();
  PeerThread peer(p.peer.get(), [&] {
    send_all(p.peer.get(), data);
    ::shutdown(p.peer.get(), SHUT_WR);
  });
  BlockingStream s(std::move(p.ours));
  s.set_timeout(kSafety);
  std::string got;
  got.reserve(data.size());
  std::error_code ec;
  for (std::size_t i = 0; !ec && !s.eof(); ++i) {
    const std::size_t n = 1 + (i * 7919) % 300000;
    got += (i % 2 == 0) ? s.read(n, ec) : s.read_some(n, ec);
    ASSERT_LT(i, 10'000'000u);
  }
  EXPECT_FALSE(ec) << ec.message();
  got += s.read(1, ec);
  EXPECT_TRUE(SameBytes(got, data));
  peer.join();
}

// ---------------------------------------------------------------------------------------
// Writing

TEST_P(BlockingStreamTest, WriteAndFlushSixteenMiBToASlowReader) {
  FdLeakCheck leak;
  StreamPair p = make_pair();
  const std::string& data = big_pattern();
  PeerRead got;
  PeerThread peer(p.peer.get(),
                  [&] { got = read_until_eof(p.peer.get(), 16 * 1024, 100us, kBig + 1); });
  BlockingStream s(std::move(p.ours));
  s.set_timeout(kSafety);
  // Pieces of every kind: tiny ones that stay buffered, ones that cross the 64 KiB mark, and
  // big ones.
  std::size_t off = 0;
  std::error_code ec;
  for (std::size_t i = 0; off < data.size() && !ec; ++i) {
    static constexpr std::size_t kSizes[] = {1, 13, 4096, 65535, 65537, 1 << 20, 3, 200000};
    const std::size_t n = std::min(kSizes[i % std::size(kSizes)], data.size() - off);
    if (i % 5 == 0) {
      s.write(std::string_view(data).substr(off, n));  // the throwing form
    } else {
      s.write(std::string_view(data).substr(off, n), ec);
    }
    off += n;
  }
  ASSERT_FALSE(ec) << ec.message();
  s.flush(ec);
  ASSERT_FALSE(ec) << ec.message();
  EXPECT_EQ(s.buffered_output(), 0u);
  s.shutdown_write(ec);
  EXPECT_FALSE(ec) << ec.message();
  peer.join();
  EXPECT_TRUE(got.eof) << "errno " << got.error;
  EXPECT_TRUE(SameBytes(got.bytes, data));
}

TEST_P(BlockingStreamTest, SmallWritesStayBufferedUntilFlush) {
  FdLeakCheck leak;
  StreamPair p = make_pair();
  BlockingStream s(std::move(p.ours));
  s.set_timeout(kSafety);
  s.write("hello ");
  std::error_code ec;
  s.write("world\n", ec);
  EXPECT_FALSE(ec);
  EXPECT_EQ(s.buffered_output(), 12u);
  std::this_thread::sleep_for(20ms);
  EXPECT_EQ(unread_bytes(p.peer.get()), 0) << "written out before flush()";
  s.flush();
  EXPECT_EQ(s.buffered_output(), 0u);
  ASSERT_TRUE(wait_for([&] { return unread_bytes(p.peer.get()) >= 12; }));
  EXPECT_EQ(test::drain(p.peer.get(), 12), "hello world\n");
  s.flush(ec);  // nothing to flush
  EXPECT_FALSE(ec);
}

TEST_P(BlockingStreamTest, ShutdownWriteFlushesThenPeerReadsEof) {
  FdLeakCheck leak;
  StreamPair p = make_pair();
  BlockingStream s(std::move(p.ours));
  s.set_timeout(kSafety);
  const std::string tail = pattern(99, 300000);
  PeerRead got;
  PeerThread peer(p.peer.get(), [&] { got = read_until_eof(p.peer.get()); });
  s.write("unflushed head\n");
  s.write(tail);  // over 64 KiB: may go out at once
  s.write("unflushed tail");
  std::error_code ec;
  s.shutdown_write(ec);
  EXPECT_FALSE(ec) << ec.message();
  EXPECT_EQ(s.buffered_output(), 0u);
  peer.join();
  EXPECT_TRUE(got.eof) << "errno " << got.error;
  EXPECT_TRUE(SameBytes(got.bytes, "unflushed head\n" + tail + "unflushed tail"));

  // Reading still works after our side is shut.
  ASSERT_TRUE(send_all(p.peer.get(), "reply\n"));
  EXPECT_EQ(s.read_line(), std::optional<std::string>("reply\n"));
}

// ---------------------------------------------------------------------------------------
// A vanished peer: an error, never SIGPIPE

TEST_P(BlockingStreamTest, WriteToClosedPeerFailsWithoutSigpipe) {
  FdLeakCheck leak;
  // The default disposition, unblocked: a SIGPIPE would end this process.
  ScopedDisposition sigpipe(SIGPIPE);
  sigpipe.install(SIG_DFL);
  ScopedUnblock unblock(SIGPIPE);

  for (const bool throwing : {false, true}) {
    SCOPED_TRACE(throwing ? "throwing form" : "error_code form");
    StreamPair p = make_pair();
    BlockingStream s(std::move(p.ours));
    s.set_timeout(kSafety);
    p.peer.reset();
    const std::string chunk(70000, 'w');  // over 64 KiB: every write goes out
    std::error_code ec;
    // TCP may accept the first writes (the reset comes back after them): keep writing.
    for (int i = 0; i < 2000 && !ec; ++i) {
      if (throwing) {
        try {
          s.write(chunk);
          s.flush();
        } catch (const std::system_error& e) {
          ec = e.code();
        }
      } else {
        s.write(chunk, ec);
        if (!ec) s.flush(ec);
      }
      if (!ec) std::this_thread::sleep_for(1ms);
    }
    EXPECT_TRUE(IsPeerGone(ec));
  }
}

TEST_P(BlockingStreamTest, FlushToResetPeerFailsWithoutSigpipe) {
  FdLeakCheck leak;
  ScopedDisposition sigpipe(SIGPIPE);
  sigpipe.install(SIG_DFL);
  ScopedUnblock unblock(SIGPIPE);
  StreamPair p = make_pair();
  BlockingStream s(std::move(p.ours));
  s.set_timeout(kSafety);
  // The peer has unread input when it goes: TCP sends a reset, Unix reports ECONNRESET.
  ASSERT_TRUE(send_all(p.peer.get(), "unread by us\n"));
  s.write("unread by the peer\n");
  s.flush();
  ASSERT_TRUE(wait_for([&] { return unread_bytes(p.peer.get()) > 0; }));
  reset_close(p.peer);
  std::error_code ec;
  for (int i = 0; i < 2000 && !ec; ++i) {
    s.write("more\n", ec);
    if (!ec) s.flush(ec);
    if (!ec) std::this_thread::sleep_for(1ms);
  }
  EXPECT_TRUE(IsPeerGone(ec));
}

// ---------------------------------------------------------------------------------------
// Timeouts

TEST_P(BlockingStreamTest, ReadLineTimesOutAndLosesNothing) {
  FdLeakCheck leak;
  StreamPair p = make_pair();
  BlockingStream s(std::move(p.ours));
  EXPECT_EQ(s.timeout(), 0ms);
  s.set_timeout(200ms);
  EXPECT_EQ(s.timeout(), 200ms);
  ASSERT_TRUE(send_all(p.peer.get(), "par"));

  std::error_code ec;
  auto t0 = Clock::now();
  auto line = s.read_line(ec);
  double took = ms_since(t0);
  EXPECT_TRUE(IsErrc(ec, std::errc::timed_out));
  EXPECT_EQ(line, std::nullopt);
  EXPECT_GE(took, 180.0);
  EXPECT_LT(took, 2000.0);

  t0 = Clock::now();
  EXPECT_TRUE(test::ThrowsErrc([&] { (void)s.read_line(); }, std::errc::timed_out));
  took = ms_since(t0);
  EXPECT_GE(took, 180.0);
  EXPECT_LT(took, 2000.0);

  ASSERT_TRUE(send_all(p.peer.get(), "tial\nnext"));
  line = s.read_line(ec);
  EXPECT_FALSE(ec) << ec.message();
  EXPECT_EQ(line, std::optional<std::string>("partial\n"));

  // A line that arrives during the wait is returned, not a timeout.
  Later sender(50ms, [&] { send_all(p.peer.get(), " line\n"); });
  line = s.read_line(ec);
  EXPECT_FALSE(ec) << ec.message();
  EXPECT_EQ(line, std::optional<std::string>("next line\n"));
}

TEST_P(BlockingStreamTest, ReadAndReadSomeTimeOutAndLoseNothing) {
  FdLeakCheck leak;
  StreamPair p = make_pair();
  BlockingStream s(std::move(p.ours));
  s.set_timeout(200ms);
  std::error_code ec;

  auto t0 = Clock::now();
  EXPECT_EQ(s.read_some(10, ec), "");
  EXPECT_TRUE(IsErrc(ec, std::errc::timed_out));
  EXPECT_GE(ms_since(t0), 180.0);
  EXPECT_TRUE(test::ThrowsErrc([&] { (void)s.read_some(10); }, std::errc::timed_out));

  ASSERT_TRUE(send_all(p.peer.get(), "0123"));
  t0 = Clock::now();
  (void)s.read(10, ec);
  EXPECT_TRUE(IsErrc(ec, std::errc::timed_out));
  EXPECT_GE(ms_since(t0), 180.0);
  EXPECT_LT(ms_since(t0), 2000.0);
  EXPECT_TRUE(test::ThrowsErrc([&] { (void)s.read(10); }, std::errc::timed_out));

  ASSERT_TRUE(send_all(p.peer.get(), "456789"));
  EXPECT_EQ(s.read(10, ec), "0123456789");
  EXPECT_FALSE(ec) << ec.message();
}

TEST_P(BlockingStreamTest, FlushTimesOutOnAPeerThatDoesNotRead) {
  FdLeakCheck leak;
  StreamPair p = make_pair();
  shrink_buffers(p);
  BlockingStream s(std::move(p.ours));
  s.set_timeout(200ms);
  ASSERT_GT(test::fill(s.fd()), 0u);  // the kernel's buffers are full now
  std::error_code ec;
  s.write(std::string(60000, 's'), ec);  // stays buffered (not over 64 KiB)
  ASSERT_FALSE(ec) << ec.message();
  ASSERT_GT(s.buffered_output(), 0u);
  const auto t0 = Clock::now();
  s.flush(ec);
  const double took = ms_since(t0);
  EXPECT_TRUE(IsErrc(ec, std::errc::timed_out));
  EXPECT_GE(took, 180.0);
  EXPECT_LT(took, 2000.0);
  EXPECT_TRUE(test::ThrowsErrc([&] { s.flush(); }, std::errc::timed_out));
}

TEST_P(BlockingStreamTest, ZeroTimeoutWaitsAsLongAsItTakes) {
  FdLeakCheck leak;
  StreamPair p = make_pair();
  BlockingStream s(std::move(p.ours));
  s.set_timeout(0ms);
  // The line comes after 700 ms; the deadline (60 s) bounds a wait that never ends.
  Later sender(700ms, [&] { send_all(p.peer.get(), "late\n"); });
  const auto t0 = Clock::now();
  std::error_code ec;
  EXPECT_EQ(s.read_line(ec), std::optional<std::string>("late\n"));
  EXPECT_FALSE(ec) << ec.message();
  EXPECT_GE(ms_since(t0), 600.0);
}

// ---------------------------------------------------------------------------------------
// Cancellation

TEST_P(BlockingStreamTest, CancelWakesABlockedReadLine) {
  FdLeakCheck leak;
  test::Fd cancel = make_cancel_fd();
  StreamPair p = make_pair();
  BlockingStream s(std::move(p.ours), cancel.get());
  s.set_timeout(kSafety);
  ASSERT_TRUE(send_all(p.peer.get(), "half a "));

  const auto t0 = Clock::now();
  Later canceller(150ms, [&] { signal_cancel(cancel.get()); });
  std::error_code ec;
  const auto line = s.read_line(ec);
  const auto returned = Clock::now();
  canceller.join();
  EXPECT_TRUE(IsErrc(ec, std::errc::operation_canceled));
  EXPECT_EQ(line, std::nullopt);
  EXPECT_GE(ms_since(t0), 100.0) << "returned before the cancel";
  EXPECT_LT(ms_between(canceller.when(), returned), 1000.0);

  // Still cancelled while the fd stays readable, in both forms.
  EXPECT_TRUE(test::ThrowsErrc([&] { (void)s.read_line(); }, std::errc::operation_canceled));
  EXPECT_EQ(s.read(100, ec), "");  // needs more than is buffered: a wait
  EXPECT_TRUE(IsErrc(ec, std::errc::operation_canceled));

  // Nothing buffered was lost: once the cancel is withdrawn the line completes.
  reset_cancel(cancel.get());
  ASSERT_TRUE(send_all(p.peer.get(), "line\n"));
  EXPECT_EQ(s.read_line(ec), std::optional<std::string>("half a line\n"));
  EXPECT_FALSE(ec) << ec.message();
}

TEST_P(BlockingStreamTest, CancelWakesABlockedBigWrite) {
  FdLeakCheck leak;
  test::Fd cancel = make_cancel_fd();
  StreamPair p = make_pair();
  shrink_buffers(p);
  BlockingStream s(std::move(p.ours), cancel.get());
  s.set_timeout(kSafety);
  Later canceller(150ms, [&] { signal_cancel(cancel.get()); });
  std::error_code ec;
  s.write(big_pattern(), ec);  // 16 MiB to a peer that reads nothing
  if (!ec) s.flush(ec);
  const auto returned = Clock::now();
  canceller.join();
  EXPECT_TRUE(IsErrc(ec, std::errc::operation_canceled));
  EXPECT_LT(ms_between(canceller.when(), returned), 1000.0);
}

TEST_P(BlockingStreamTest, CancelWakesABlockedFlush) {
  FdLeakCheck leak;
  test::Fd cancel = make_cancel_fd();
  StreamPair p = make_pair();
  shrink_buffers(p);
  BlockingStream s(std::move(p.ours), cancel.get());
  s.set_timeout(kSafety);
  ASSERT_GT(test::fill(s.fd()), 0u);  // the kernel's buffers are full now
  std::error_code ec;
  s.write(std::string(60000, 'q'), ec);  // stays buffered (not over 64 KiB)
  ASSERT_FALSE(ec) << ec.message();
  ASSERT_GT(s.buffered_output(), 0u);

  Later canceller(150ms, [&] { signal_cancel(cancel.get()); });
  const auto t0 = Clock::now();
  EXPECT_TRUE(test::ThrowsErrc([&] { s.flush(); }, std::errc::operation_canceled));
  const auto returned = Clock::now();
  canceller.join();
  EXPECT_GE(ms_since(t0), 100.0) << "returned before the cancel";
  EXPECT_LT(ms_between(canceller.when(), returned), 1000.0);
  s.flush(ec);
  EXPECT_TRUE(IsErrc(ec, std::errc::operation_canceled));
}

TEST_P(BlockingStreamTest, CancelledReadFailsAtOnceButAWriteDrains) {
  FdLeakCheck leak;
  test::Fd cancel = make_cancel_fd();
  StreamPair p = make_pair();
  shrink_buffers(p);
  BlockingStream s(std::move(p.ours), cancel.get());
  s.set_timeout(kSafety);
  s.set_drain(3000ms);
  signal_cancel(cancel.get());
  std::error_code ec;
  auto t0 = Clock::now();
  EXPECT_EQ(s.read_line(ec), std::nullopt);
  EXPECT_TRUE(IsErrc(ec, std::errc::operation_canceled));
  EXPECT_LT(ms_since(t0), 500.0) << "a cancelled read waits for nothing";

  // The peer starts reading 300 ms after the write blocks: within the drain, so the answer
  // goes out whole.
  const std::string answer(1 << 20, 'a');
  std::size_t got = 0;
  Later reader(300ms, [&] {
    char buf[65536];
    while (got < answer.size()) {
      const ssize_t n = ::recv(p.peer.get(), buf, sizeof buf, 0);
      if (n <= 0) break;
      got += static_cast<std::size_t>(n);
    }
  });
  s.write(answer, ec);
  if (!ec) s.flush(ec);
  reader.join();
  EXPECT_FALSE(ec) << ec.message();
  EXPECT_EQ(got, answer.size());
  EXPECT_FALSE(s.output_lost());
  // Reads stay cancelled.
  EXPECT_TRUE(test::ThrowsErrc([&] { (void)s.read_line(); }, std::errc::operation_canceled));
}

TEST_P(BlockingStreamTest, CancelledWriteFailsAtTheEndOfTheDrain) {
  FdLeakCheck leak;
  test::Fd cancel = make_cancel_fd();
  StreamPair p = make_pair();
  shrink_buffers(p);
  BlockingStream s(std::move(p.ours), cancel.get());
  s.set_timeout(kSafety);
  s.set_drain(300ms);
  signal_cancel(cancel.get());
  std::error_code ec;
  const auto t0 = Clock::now();
  s.write(big_pattern(), ec);  // to a peer that reads nothing
  if (!ec) s.flush(ec);
  const double took = ms_since(t0);
  EXPECT_TRUE(IsErrc(ec, std::errc::operation_canceled));
  EXPECT_GE(took, 250.0) << "cut before the drain time";
  EXPECT_LT(took, 2000.0);
  EXPECT_TRUE(s.output_lost());
}

TEST_P(BlockingStreamTest, DeadlineBoundsEveryWaitAfterIt) {
  FdLeakCheck leak;
  StreamPair p = make_pair();
  BlockingStream s(std::move(p.ours));
  s.set_timeout(kSafety);
  s.set_deadline(Clock::now() + 400ms);
  // A byte every 100 ms never completes a line; each wait alone is short, the deadline ends
  // them all.
  std::atomic<bool> stop{false};
  std::thread dripper([&] {
    while (!stop) {
      send_all(p.peer.get(), "x");
      std::this_thread::sleep_for(100ms);
    }
  });
  std::error_code ec;
  const auto t0 = Clock::now();
  EXPECT_EQ(s.read_line(ec), std::nullopt);
  const double took = ms_since(t0);
  stop = true;
  dripper.join();
  EXPECT_TRUE(IsErrc(ec, std::errc::timed_out));
  EXPECT_GE(took, 350.0);
  EXPECT_LT(took, 1500.0);
  // Past the deadline, a wait fails at once; what is buffered is still there.
  EXPECT_TRUE(test::ThrowsErrc([&] { (void)s.read(1 << 20); }, std::errc::timed_out));
  EXPECT_GT(s.buffered_input(), 0u);
}

TEST_P(BlockingStreamTest, CancelFdIsNotOwned) {
  FdLeakCheck leak;
  test::Fd cancel = make_cancel_fd();
  {
    StreamPair p = make_pair();
    BlockingStream s(std::move(p.ours), cancel.get());
  }
  EXPECT_EQ(::fcntl(cancel.get(), F_GETFD), FD_CLOEXEC) << "the stream closed the cancel fd";
}

// ---------------------------------------------------------------------------------------
// Construction

TEST_P(BlockingStreamTest, BlockingSocketIsMadeNonBlocking) {
  FdLeakCheck leak;
  StreamPair p = make_pair();
  set_nonblocking(p.ours.fd(), false);
  BlockingStream s(std::move(p.ours));
  EXPECT_NE(::fcntl(s.fd(), F_GETFL) & O_NONBLOCK, 0);
  EXPECT_EQ(s.socket().fd(), s.fd());
  // A read on a silent peer still honours the timeout instead of blocking in read(2).
  s.set_timeout(200ms);
  const auto t0 = Clock::now();
  std::error_code ec;
  EXPECT_EQ(s.read_line(ec), std::nullopt);
  EXPECT_TRUE(IsErrc(ec, std::errc::timed_out));
  EXPECT_LT(ms_since(t0), 2000.0);
}

/// `fd` moved to the lowest free number at or above `at`; -1 if there is none.
int move_fd_up(int fd, int at) {
  const int high = ::fcntl(fd, F_DUPFD_CLOEXEC, at);
  ::close(fd);
  return high;
}

TEST_P(BlockingStreamTest, WaitingOnAHighFdTakesConstantMemory) {
  // The number of fds does not matter, only how high they are: a table indexed by fd number
  // would cost kilobytes per stream here.
  constexpr int kHigh = 10'000;
  FdLeakCheck leak;
  test::ScopedFdLimit fd_limit;
  if (!fd_limit.raise_to_hard(kHigh + 16)) GTEST_SKIP() << "RLIMIT_NOFILE below " << kHigh + 16;
  StreamPair p = make_pair();
  const int fd = move_fd_up(p.ours.release(), kHigh);
  ASSERT_GE(fd, kHigh) << std::strerror(errno);
  test::Fd cancel(move_fd_up(make_cancel_fd().release(), kHigh + 1));
  ASSERT_GT(cancel.get(), kHigh) << std::strerror(errno);

  std::error_code timed_out, canceled;
  const std::size_t before = reactor::test::heap_in_use();
  std::size_t during = 0;
  {
    BlockingStream s(Socket(fd), cancel.get());
    s.set_timeout(50ms);
    (void)s.read_some(16, timed_out);  // one wait that times out
    signal_cancel(cancel.get());
    (void)s.read_some(16, canceled);  // one wait the cancel fd ends
    during = reactor::test::heap_in_use();
  }
  EXPECT_TRUE(IsErrc(timed_out, std::errc::timed_out));
  EXPECT_TRUE(IsErrc(canceled, std::errc::operation_canceled));
  EXPECT_LT(during - std::min(during, before), 1024u)
      << "a stream on fd " << fd << " holds " << during - before << " bytes while it waits";
}

// ---------------------------------------------------------------------------------------
// Signals never break an operation

TEST_P(BlockingStreamTest, SixteenMiBWrittenUnderSignals) {
  FdLeakCheck leak;
  ScopedDisposition usr1(SIGUSR1);
  usr1.install_counting(0);  // no SA_RESTART: every interruptible call sees EINTR
  StreamPair p = make_pair();
  const std::string& data = big_pattern();
  std::error_code write_ec;
  std::atomic<bool> ready{false};

  std::thread handler([&] {
    ScopedUnblock unblock(SIGUSR1);
    BlockingStream s(std::move(p.ours));
    s.set_timeout(kSafety);
    ready.store(true);
    std::size_t off = 0;
    for (std::size_t i = 0; off < data.size() && !write_ec; ++i) {
      const std::size_t n = std::min<std::size_t>(i % 3 == 0 ? 1000 : 150000, data.size() - off);
      s.write(std::string_view(data).substr(off, n), write_ec);
      off += n;
    }
    if (!write_ec) s.flush(write_ec);
    if (!write_ec) s.shutdown_write(write_ec);
  });
  {
    SignalStorm storm(handler.native_handle());
    while (!ready.load()) std::this_thread::yield();
    // A slow reader, so that the writer keeps blocking.
    const PeerRead got = read_until_eof(p.peer.get(), 32 * 1024, 50us, kBig + 1);
    if (!got.eof) ::shutdown(p.peer.get(), SHUT_RDWR);  // unblock the handler
    storm.stop();
    handler.join();
    EXPECT_FALSE(write_ec) << write_ec.message();
    EXPECT_TRUE(got.eof) << "errno " << got.error;
    EXPECT_TRUE(SameBytes(got.bytes, data));
    EXPECT_GT(storm.sent(), 20) << "the storm hardly ran";
  }
  EXPECT_GT(test::g_signal_counts[SIGUSR1].load(), 20)
      << "hardly any signal reached the handler thread";
  std::printf("[          ] %d signals delivered to the writer\n",
              test::g_signal_counts[SIGUSR1].load());
}

TEST_P(BlockingStreamTest, SixteenMiBReadUnderSignals) {
  FdLeakCheck leak;
  ScopedDisposition usr1(SIGUSR1);
  usr1.install_counting(0);
  StreamPair p = make_pair();
  const std::string& data = big_pattern();
  // Lines first (read_line under signals), then the raw 16 MiB.
  std::string lines;
  for (int i = 0; i < 20000; ++i) lines += "line " + std::to_string(i) + "\n";
  std::error_code read_ec;
  std::string got_lines;
  std::string got;
  std::atomic<bool> ready{false};
  std::atomic<bool> finished{false};

  std::thread handler([&] {
    ScopedUnblock unblock(SIGUSR1);
    BlockingStream s(std::move(p.ours));
    s.set_timeout(kSafety);
    ready.store(true);
    for (int i = 0; i < 20000 && !read_ec; ++i) {
      auto line = s.read_line(read_ec);
      if (!line) break;
      got_lines += *line;
    }
    got.reserve(data.size());
    for (std::size_t i = 0; !read_ec && !s.eof(); ++i) {
      const std::size_t n = 1 + (i * 104729) % 200000;
      got += (i % 2 == 0) ? s.read(n, read_ec) : s.read_some(n, read_ec);
    }
    finished.store(true);
  });
  {
    SignalStorm storm(handler.native_handle());
    while (!ready.load()) std::this_thread::yield();
    bool sent = true;
    // Small pieces with pauses, so that the reader keeps blocking.
    for (std::size_t off = 0; sent && off < lines.size(); off += 4096) {
      sent = send_all(p.peer.get(), std::string_view(lines).substr(off, 4096));
      std::this_thread::sleep_for(50us);
    }
    for (std::size_t off = 0; sent && off < data.size(); off += 32 * 1024) {
      sent = send_all(p.peer.get(), std::string_view(data).substr(off, 32 * 1024));
      std::this_thread::sleep_for(50us);
    }
    ::shutdown(p.peer.get(), sent ? SHUT_WR : SHUT_RDWR);
    // The storm must end before the handler is joined (pthread_kill needs a live id).
    EXPECT_TRUE(wait_for([&] { return finished.load(); }, 30000ms));
    storm.stop();
    handler.join();
    EXPECT_TRUE(sent);
    EXPECT_FALSE(read_ec) << read_ec.message();
    EXPECT_TRUE(SameBytes(got_lines, lines));
    EXPECT_TRUE(SameBytes(got, data));
    EXPECT_GT(storm.sent(), 20) << "the storm hardly ran";
  }
  EXPECT_GT(test::g_signal_counts[SIGUSR1].load(), 20)
      << "hardly any signal reached the handler thread";
  std::printf("[          ] %d signals delivered to the reader\n",
              test::g_signal_counts[SIGUSR1].load());
}

INSTANTIATE_TEST_SUITE_P(AllTransports, BlockingStreamTest,
                         ::testing::Values(Transport::tcp4, Transport::tcp6,
                                           Transport::unix_stream),
                         [](const ::testing::TestParamInfo<Transport>& info) {
                           return std::string(name(info.param));
                         });

}  // namespace
}  // namespace reactor
