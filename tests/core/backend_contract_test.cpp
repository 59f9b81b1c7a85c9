// SPDX-License-Identifier: MIT
// The backend contract (the comment at the top of reactor/core/backend.hpp), checked clause
// by clause on every compiled backend, driving make_backend() directly: no Reactor in
// between, so clauses the loop never exercises (a replaced token, ENOENT from modify(), a
// batch with no room, a closed fd that is never removed) are seen as a caller would see them.
//
// Every poll() here goes through one helper that also checks, each time, that poll() kept
// the batch's capacity, left the entries already in it alone, appended at most the room
// and named each fd at most once.
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <climits>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include "reactor/core/backend.hpp"
#include "tests/support/backends.hpp"
#include "tests/support/fds.hpp"
#include "tests/support/io.hpp"

namespace {

using namespace std::chrono_literals;
using reactor::Backend;
using reactor::Interest;
using reactor::IoEvents;
using reactor::Readiness;
using reactor::test::drain;
using reactor::test::Fd;
using reactor::test::FdLeakCheck;
using reactor::test::fill;
using reactor::test::SocketPair;
using reactor::test::write_byte;
using Clock = std::chrono::steady_clock;
using Batch = std::vector<Readiness>;

// ---------------------------------------------------------------------------------------
// Small local helpers (the raw reads and writes are tests/support/io.hpp's).

/// A non-blocking, close-on-exec pipe.
struct Pipe {
  Pipe() {
    int fds[2];
    if (::pipe2(fds, O_NONBLOCK | O_CLOEXEC) != 0)
      throw std::system_error(errno, std::generic_category(), "pipe2");
    r.reset(fds[0]);
    w.reset(fds[1]);
  }
  Fd r, w;
};

Fd make_eventfd() {
  const int fd = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (fd < 0) throw std::system_error(errno, std::generic_category(), "eventfd");
  return Fd(fd);
}

bool signal_eventfd(int fd) {
  const std::uint64_t one = 1;
  return ::write(fd, &one, sizeof one) == static_cast<ssize_t>(sizeof one);
}

/// The entry for `token` in `batch`, or null.
const Readiness* find(const Batch& batch, std::uint64_t token) {
  for (const Readiness& r : batch) {
    if (r.token == token) return &r;
  }
  return nullptr;
}

/// Writes one byte to `fd` after `delay` unless cancelled first: a wait that should not
/// block (or not at all) still ends, so that a broken backend fails the test instead of
/// hanging it.
class DelayedWrite {
 public:
  DelayedWrite(int fd, std::chrono::milliseconds delay)
      : thread_([this, fd, delay] {
          const auto until = Clock::now() + delay;
          while (!cancelled_.load() && Clock::now() < until) std::this_thread::sleep_for(1ms);
          if (!cancelled_.load()) write_byte(fd);
        }) {}
  ~DelayedWrite() {
    cancelled_.store(true);
    thread_.join();
  }
  DelayedWrite(const DelayedWrite&) = delete;
  DelayedWrite& operator=(const DelayedWrite&) = delete;

 private:
  std::atomic<bool> cancelled_{false};
  std::thread thread_;
};

// ---------------------------------------------------------------------------------------

class BackendContractTest : public reactor::test::BackendTest {
 protected:
  void SetUp() override { backend_ = reactor::make_backend(backend()); }
  void TearDown() override { backend_.reset(); }

  Backend& b() { return *backend_; }
  bool is(const char* name) const { return backend() == name; }
  /// The hang-up hint is best effort: select cannot see a hang-up, and libuv tells it apart
  /// only at the price of also flagging a half close, which the uv backend does not pay.
  bool sees_hangup() const { return is("epoll") || is("poll"); }

  /// One poll() into a batch with room for `room` entries (after `prefill` entries already
  /// there); expects success and checks the batch clauses every poll() keeps.
  Batch poll(std::optional<std::chrono::nanoseconds> timeout = 0ns, std::size_t room = 16) {
    Batch out;
    out.reserve(room);
    const std::size_t capacity = out.capacity();
    const std::error_code ec = b().poll(out, timeout);
    EXPECT_FALSE(ec) << ec.message();
    EXPECT_EQ(out.capacity(), capacity) << "poll() must never allocate in the batch";
    EXPECT_LE(out.size(), capacity);
    std::set<std::uint64_t> seen;
    for (const Readiness& r : out) {
      EXPECT_TRUE(seen.insert(r.token).second) << "token " << r.token << " twice in a batch";
      EXPECT_TRUE(r.events.any()) << "an entry with no bits, token " << r.token;
    }
    return out;
  }

  FdLeakCheck leaks_;  // constructed first, checked last: after the backend is gone
  std::unique_ptr<Backend> backend_;
};

// ---------------------------------------------------------------------------------------
// The factory.

TEST_P(BackendContractTest, MakeBackendBuildsTheNamedBackend) { EXPECT_EQ(b().name(), backend()); }

TEST_P(BackendContractTest, MakeBackendRefusesAnUnknownName) {
  EXPECT_THROW((void)reactor::make_backend(backend() + "-unknown"), std::invalid_argument);
}

// ---------------------------------------------------------------------------------------
// Level-triggered.

TEST_P(BackendContractTest, ReadableIsReportedByEveryPollUntilDrained) {
  Fd ev = make_eventfd();
  ASSERT_FALSE(b().add(ev.get(), Interest::read, 1));
  EXPECT_TRUE(poll().empty());
  ASSERT_TRUE(signal_eventfd(ev.get()));
  for (int i = 0; i < 3; ++i) {
    const Batch batch = poll();
    ASSERT_EQ(batch.size(), 1u) << "poll " << i;
    EXPECT_EQ(batch[0].token, 1u);
    EXPECT_TRUE(batch[0].events.readable());
  }
  drain(ev.get());
  EXPECT_TRUE(poll().empty()) << "still reported after it stopped being ready";
  b().remove(ev.get());
}

TEST_P(BackendContractTest, WritableIsReportedByEveryPollWhileThereIsRoom) {
  SocketPair p;
  ASSERT_FALSE(b().add(p.a.get(), Interest::write, 1));
  for (int i = 0; i < 3; ++i) {
    const Batch batch = poll();
    ASSERT_EQ(batch.size(), 1u) << "poll " << i;
    EXPECT_TRUE(batch[0].events.writable());
    EXPECT_FALSE(batch[0].events.readable()) << "nothing to read, and not asked for";
  }
  fill(p.a.get());
  EXPECT_TRUE(poll().empty()) << "reported writable with no send room";
  b().remove(p.a.get());
}

// ---------------------------------------------------------------------------------------
// Tokens.

TEST_P(BackendContractTest, PollHandsBackTheTokenGivenToAdd) {
  Pipe zero, max;
  ASSERT_FALSE(b().add(zero.r.get(), Interest::read, 0));
  ASSERT_FALSE(b().add(max.r.get(), Interest::read, UINT64_MAX));
  ASSERT_TRUE(write_byte(zero.w.get()));
  ASSERT_TRUE(write_byte(max.w.get()));
  const Batch batch = poll();
  ASSERT_EQ(batch.size(), 2u);
  ASSERT_NE(find(batch, 0), nullptr);
  ASSERT_NE(find(batch, UINT64_MAX), nullptr);
  EXPECT_TRUE(find(batch, 0)->events.readable());
  EXPECT_TRUE(find(batch, UINT64_MAX)->events.readable());
  b().remove(zero.r.get());
  b().remove(max.r.get());
}

TEST_P(BackendContractTest, ModifyReplacesTheToken) {
  Pipe p;
  ASSERT_TRUE(write_byte(p.w.get()));
  ASSERT_FALSE(b().add(p.r.get(), Interest::read, 1));
  ASSERT_NE(find(poll(), 1), nullptr);
  ASSERT_FALSE(b().modify(p.r.get(), Interest::read, 2));
  for (int i = 0; i < 2; ++i) {
    const Batch batch = poll();
    ASSERT_EQ(batch.size(), 1u) << "poll " << i;
    EXPECT_EQ(batch[0].token, 2u) << "the old token came back";
  }
  // The token alone may change while the fd is silent, too.
  ASSERT_FALSE(b().modify(p.r.get(), Interest::none, 3));
  ASSERT_FALSE(b().modify(p.r.get(), Interest::read, 4));
  const Batch batch = poll();
  ASSERT_EQ(batch.size(), 1u);
  EXPECT_EQ(batch[0].token, 4u);
  b().remove(p.r.get());
}

TEST_P(BackendContractTest, ModifyChangesWhatIsReported) {
  SocketPair p;
  ASSERT_TRUE(write_byte(p.b.get()));  // a: readable, and writable (room to send)
  ASSERT_FALSE(b().add(p.a.get(), Interest::read, 1));
  Batch batch = poll();
  ASSERT_EQ(batch.size(), 1u);
  EXPECT_TRUE(batch[0].events.readable());
  EXPECT_FALSE(batch[0].events.writable()) << "writable reported to a reader";

  ASSERT_FALSE(b().modify(p.a.get(), Interest::write, 1));
  batch = poll();
  ASSERT_EQ(batch.size(), 1u);
  EXPECT_FALSE(batch[0].events.readable()) << "readable reported to a writer";
  EXPECT_TRUE(batch[0].events.writable());

  ASSERT_FALSE(b().modify(p.a.get(), Interest::read_write, 1));
  batch = poll();
  ASSERT_EQ(batch.size(), 1u);
  EXPECT_TRUE(batch[0].events.readable());
  EXPECT_TRUE(batch[0].events.writable());
  b().remove(p.a.get());
}

// ---------------------------------------------------------------------------------------
// Interest::none.

TEST_P(BackendContractTest, InterestNoneReportsNothingForAReadyFd) {
  SocketPair p;
  ASSERT_TRUE(write_byte(p.b.get()));
  ASSERT_FALSE(b().add(p.a.get(), Interest::none, 1));
  EXPECT_TRUE(poll().empty());
  ASSERT_FALSE(b().modify(p.a.get(), Interest::read_write, 1));
  EXPECT_EQ(poll().size(), 1u) << "the registration must survive a silent spell";
  ASSERT_FALSE(b().modify(p.a.get(), Interest::none, 1));
  EXPECT_TRUE(poll().empty());
  b().remove(p.a.get());
}

TEST_P(BackendContractTest, InterestNoneReportsNothingEvenOnHangup) {
  SocketPair added_silent, made_silent;
  ASSERT_FALSE(b().add(added_silent.a.get(), Interest::none, 1));
  ASSERT_FALSE(b().add(made_silent.a.get(), Interest::read_write, 2));
  ASSERT_FALSE(b().modify(made_silent.a.get(), Interest::none, 2));
  added_silent.b.reset();
  made_silent.b.reset();
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(poll().empty()) << "poll " << i;
  b().remove(added_silent.a.get());
  b().remove(made_silent.a.get());
}

TEST_P(BackendContractTest, InterestNoneReportsNothingEvenOnError) {
  Pipe p;
  ASSERT_FALSE(b().add(p.w.get(), Interest::none, 1));
  p.r.reset();  // the write end now has an error condition (no reader)
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(poll().empty()) << "poll " << i;
  b().remove(p.w.get());
}

// ---------------------------------------------------------------------------------------
// Hang-up and error.

TEST_P(BackendContractTest, HangupIsReportedReadableToAReader) {
  SocketPair p;
  ASSERT_FALSE(b().add(p.a.get(), Interest::read, 1));
  p.b.reset();
  for (int i = 0; i < 2; ++i) {  // level-triggered like any other readiness
    const Batch batch = poll();
    ASSERT_EQ(batch.size(), 1u) << "poll " << i;
    EXPECT_TRUE(batch[0].events.readable());
    EXPECT_FALSE(batch[0].events.writable()) << "not asked for";
    EXPECT_FALSE(batch[0].events.invalid());
    if (sees_hangup()) {
      EXPECT_TRUE(batch[0].events.hangup_or_error());
    }
  }
  b().remove(p.a.get());
}

TEST_P(BackendContractTest, HangupIsReportedWritableToAWriter) {
  SocketPair p;
  ASSERT_FALSE(b().add(p.a.get(), Interest::write, 1));
  p.b.reset();
  const Batch batch = poll();
  ASSERT_EQ(batch.size(), 1u);
  EXPECT_TRUE(batch[0].events.writable());
  EXPECT_FALSE(batch[0].events.readable()) << "not asked for";
  if (sees_hangup()) {
    EXPECT_TRUE(batch[0].events.hangup_or_error());
  }
  b().remove(p.a.get());
}

// The peer shut both directions but has not read what `a` sent: `a` has hung up, its read
// finds EOF, and it has no send room.
TEST_P(BackendContractTest, HangupWithNoSendRoomIsOwedOnlyAsReadable) {
  SocketPair reader, writer;
  fill(reader.a.get());
  fill(writer.a.get());
  ASSERT_EQ(::shutdown(reader.b.get(), SHUT_RDWR), 0);
  ASSERT_EQ(::shutdown(writer.b.get(), SHUT_RDWR), 0);
  ASSERT_FALSE(b().add(reader.a.get(), Interest::read_write, 1));
  ASSERT_FALSE(b().add(writer.a.get(), Interest::write, 2));
  const Batch batch = poll();
  const Readiness* r = find(batch, 1);
  ASSERT_NE(r, nullptr) << "the reader must see its EOF";
  EXPECT_TRUE(r->events.readable());
  const Readiness* w = find(batch, 2);
  if (is("select")) {
    EXPECT_EQ(w, nullptr) << "select sees no hang-up, and there is no room";
  } else {
    ASSERT_NE(w, nullptr);
    EXPECT_TRUE(w->events.writable());
    EXPECT_EQ(w->events.hangup_or_error(), sees_hangup());
  }
  b().remove(reader.a.get());
  b().remove(writer.a.get());
}

TEST_P(BackendContractTest, ErrorIsReportedAsWhateverTheInterestAsks) {
  Pipe both, write_only;
  ASSERT_FALSE(b().add(both.w.get(), Interest::read_write, 1));
  ASSERT_FALSE(b().add(write_only.w.get(), Interest::write, 2));
  both.r.reset();  // a write end with no reader: EPIPE for the next write
  write_only.r.reset();
  const Batch batch = poll();
  ASSERT_EQ(batch.size(), 2u);
  const Readiness* r = find(batch, 1);
  ASSERT_NE(r, nullptr);
  EXPECT_TRUE(r->events.readable());
  EXPECT_TRUE(r->events.writable());
  EXPECT_FALSE(r->events.invalid());
  const Readiness* w = find(batch, 2);
  ASSERT_NE(w, nullptr);
  EXPECT_FALSE(w->events.readable()) << "not asked for";
  EXPECT_TRUE(w->events.writable());
  if (!is("select")) {
    EXPECT_TRUE(r->events.hangup_or_error());
    EXPECT_TRUE(w->events.hangup_or_error());
  }
  b().remove(both.w.get());
  b().remove(write_only.w.get());
}

// ---------------------------------------------------------------------------------------
// An fd closed behind the backend's back.

TEST_P(BackendContractTest, FdClosedBehindItsBackIsReportedAtMostOnce) {
  Pipe p;
  ASSERT_TRUE(write_byte(p.w.get()));
  const int fd = p.r.get();
  ASSERT_FALSE(b().add(fd, Interest::read, 7));
  p.r.reset();  // the number stays free: nothing in this test opens an fd from here on
  int invalid = 0;
  for (int i = 0; i < 3; ++i) {
    for (const Readiness& r : poll()) {
      EXPECT_EQ(r.token, 7u);
      EXPECT_EQ(r.events.bits, IoEvents::kInvalid) << "invalid comes with no other bit";
      ++invalid;
    }
  }
  if (is("select") || is("poll")) {
    EXPECT_EQ(invalid, 1) << "the mechanism sees it: reported exactly once";
  } else {
    EXPECT_EQ(invalid, 0) << "the kernel forgot it with the file: dropped silently";
  }
  b().remove(fd);  // what the caller is expected to do, safe in every case
  EXPECT_TRUE(poll().empty());
}

TEST_P(BackendContractTest, ModifyOfAnFdClosedBehindItsBack) {
  Pipe p;
  const int fd = p.r.get();
  ASSERT_FALSE(b().add(fd, Interest::read, 1));
  p.r.reset();
  const std::error_code ec = b().modify(fd, Interest::write, 2);
  if (is("epoll") || is("uv")) {
    EXPECT_EQ(ec, std::errc::bad_file_descriptor) << ec.message();
  } else {
    // select and poll keep interest in user space and cannot tell before their next wait,
    // which reports the fd invalid, once, with the new token.
    EXPECT_FALSE(ec) << ec.message();
    const Batch batch = poll();
    ASSERT_EQ(batch.size(), 1u);
    EXPECT_EQ(batch[0].token, 2u);
    EXPECT_TRUE(batch[0].events.invalid());
  }
  b().remove(fd);
  EXPECT_TRUE(poll().empty());
}

// ---------------------------------------------------------------------------------------
// The errors of add(), modify() and remove().

TEST_P(BackendContractTest, AddTwiceIsFileExists) {
  Pipe p;
  ASSERT_FALSE(b().add(p.r.get(), Interest::read, 1));
  EXPECT_EQ(b().add(p.r.get(), Interest::read, 2), std::errc::file_exists);
  EXPECT_EQ(b().add(p.r.get(), Interest::none, 3), std::errc::file_exists);
  ASSERT_TRUE(write_byte(p.w.get()));
  const Batch batch = poll();
  ASSERT_EQ(batch.size(), 1u);
  EXPECT_EQ(batch[0].token, 1u) << "a refused add() must leave the registration alone";
  b().remove(p.r.get());
}

TEST_P(BackendContractTest, AddOfAClosedFdIsBadDescriptor) {
  int closed = -1;
  {
    Pipe p;
    closed = p.r.get();
  }
  for (Interest i : {Interest::read, Interest::write, Interest::none}) {
    EXPECT_EQ(b().add(closed, i, 1), std::errc::bad_file_descriptor);
  }
  for (int negative : {-1, INT_MIN}) {
    EXPECT_EQ(b().add(negative, Interest::read, 1), std::errc::bad_file_descriptor);
  }
  // Nothing was registered: a modify() finds nothing, and the number can be added later.
  EXPECT_EQ(b().modify(closed, Interest::read, 1), std::errc::no_such_file_or_directory);
  EXPECT_TRUE(poll().empty());
}

TEST_P(BackendContractTest, AddOfARegularFileOrDirectoryIsNotPermitted) {
  char path[] = "/tmp/reactor-contract-XXXXXX";
  Fd file(::mkstemp(path));
  ASSERT_GE(file.get(), 0);
  ::unlink(path);
  Fd dir(::open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  ASSERT_GE(dir.get(), 0);
  for (int fd : {file.get(), dir.get()}) {
    for (Interest i : {Interest::read, Interest::write, Interest::none}) {
      EXPECT_EQ(b().add(fd, i, 1), std::errc::operation_not_permitted) << "fd " << fd;
    }
    EXPECT_EQ(b().modify(fd, Interest::read, 1), std::errc::no_such_file_or_directory);
  }
  EXPECT_TRUE(poll().empty());
}

// A character device with no poll method: epoll refuses it; select and poll cannot tell it
// from a pollable one and report it always ready, as the kernel answers for it.
TEST_P(BackendContractTest, AddOfDevNullDependsOnTheMechanism) {
  Fd null(::open("/dev/null", O_RDWR | O_CLOEXEC));
  ASSERT_GE(null.get(), 0);
  const std::error_code ec = b().add(null.get(), Interest::read_write, 1);
  if (is("epoll") || is("uv")) {
    EXPECT_EQ(ec, std::errc::operation_not_permitted) << ec.message();
    EXPECT_TRUE(poll().empty());
  } else {
    ASSERT_FALSE(ec) << ec.message();
    const Batch batch = poll();
    ASSERT_EQ(batch.size(), 1u);
    EXPECT_TRUE(batch[0].events.readable());
    EXPECT_TRUE(batch[0].events.writable());
    b().remove(null.get());
  }
}

TEST_P(BackendContractTest, ModifyOfAnUnregisteredFdIsNoSuchEntry) {
  Pipe p;
  EXPECT_EQ(b().modify(p.r.get(), Interest::read, 1), std::errc::no_such_file_or_directory);
  EXPECT_EQ(b().modify(-1, Interest::read, 1), std::errc::no_such_file_or_directory);
  EXPECT_EQ(b().modify(INT_MAX, Interest::read, 1), std::errc::no_such_file_or_directory);
  ASSERT_FALSE(b().add(p.r.get(), Interest::read, 1));
  b().remove(p.r.get());
  EXPECT_EQ(b().modify(p.r.get(), Interest::read, 1), std::errc::no_such_file_or_directory)
      << "after remove()";
  ASSERT_TRUE(write_byte(p.w.get()));
  EXPECT_TRUE(poll().empty()) << "a refused modify() must not register the fd";
}

TEST_P(BackendContractTest, RemoveForgetsTheFdAndItsToken) {
  Pipe p;
  ASSERT_TRUE(write_byte(p.w.get()));
  ASSERT_FALSE(b().add(p.r.get(), Interest::read, 1));
  ASSERT_EQ(poll().size(), 1u);
  b().remove(p.r.get());
  EXPECT_TRUE(poll().empty()) << "the token came back after remove()";
  ASSERT_FALSE(b().add(p.r.get(), Interest::read, 2)) << "the fd can be added again";
  const Batch batch = poll();
  ASSERT_EQ(batch.size(), 1u);
  EXPECT_EQ(batch[0].token, 2u);
  b().remove(p.r.get());
}

TEST_P(BackendContractTest, RemoveIsSafeOnClosedAndNeverAddedFds) {
  Pipe p;
  b().remove(p.r.get());  // open, never added
  b().remove(-1);
  b().remove(INT_MAX);
  const int fd = p.w.get();
  ASSERT_FALSE(b().add(fd, Interest::write, 1));
  p.w.reset();
  b().remove(fd);  // closed behind its back
  b().remove(fd);  // twice
  EXPECT_TRUE(poll().empty());
  ASSERT_FALSE(b().add(p.r.get(), Interest::read, 2)) << "the backend still works";
  b().remove(p.r.get());
}

// ---------------------------------------------------------------------------------------
// The batch.

TEST_P(BackendContractTest, AnFdAppearsAtMostOncePerBatch) {
  SocketPair pairs[3];
  for (std::uint64_t i = 0; i < 3; ++i) {
    ASSERT_TRUE(write_byte(pairs[i].b.get()));
    ASSERT_FALSE(b().add(pairs[i].a.get(), Interest::read_write, i));
  }
  for (int round = 0; round < 3; ++round) {
    const Batch batch = poll();  // which checks that no token is there twice
    ASSERT_EQ(batch.size(), 3u);
    for (const Readiness& r : batch) {
      EXPECT_TRUE(r.events.readable() && r.events.writable())
          << "one entry carries everything ready for its fd";
    }
  }
  for (SocketPair& p : pairs) b().remove(p.a.get());
}

TEST_P(BackendContractTest, PollAppendsWithoutTouchingWhatIsThere) {
  Pipe p;
  ASSERT_TRUE(write_byte(p.w.get()));
  ASSERT_FALSE(b().add(p.r.get(), Interest::read, 1));
  Batch out;
  out.reserve(4);
  out.push_back(Readiness{100, IoEvents{IoEvents::kWritable}});
  out.push_back(Readiness{101, IoEvents{IoEvents::kInvalid}});
  const std::size_t capacity = out.capacity();
  ASSERT_FALSE(b().poll(out, 0ns));
  EXPECT_EQ(out.capacity(), capacity);
  ASSERT_EQ(out.size(), 3u);
  EXPECT_EQ(out[0].token, 100u);
  EXPECT_EQ(out[0].events.bits, IoEvents::kWritable);
  EXPECT_EQ(out[1].token, 101u);
  EXPECT_EQ(out[1].events.bits, IoEvents::kInvalid);
  EXPECT_EQ(out[2].token, 1u);
  b().remove(p.r.get());
}

TEST_P(BackendContractTest, AFullBatchTakesExactlyTheRoomAndTheRestComeNextTime) {
  constexpr std::uint64_t kReady = 5;
  Pipe pipes[kReady];
  for (std::uint64_t i = 0; i < kReady; ++i) {
    ASSERT_TRUE(write_byte(pipes[i].w.get()));
    ASSERT_FALSE(b().add(pipes[i].r.get(), Interest::read, i));
  }
  Batch out;
  out.reserve(4);
  out.push_back(Readiness{100, IoEvents{IoEvents::kReadable}});
  out.push_back(Readiness{101, IoEvents{IoEvents::kReadable}});
  const std::size_t capacity = out.capacity();
  const std::size_t room = capacity - out.size();
  ASSERT_FALSE(b().poll(out, 0ns));
  EXPECT_EQ(out.capacity(), capacity);
  ASSERT_EQ(out.size(), capacity) << "room for " << room << ", " << kReady << " ready";
  EXPECT_EQ(out[0].token, 100u);
  EXPECT_EQ(out[1].token, 101u);
  for (std::size_t i = 2; i < out.size(); ++i) {
    EXPECT_LT(out[i].token, kReady);
    EXPECT_TRUE(out[i].events.readable());
  }
  // Level-triggered: whatever did not fit is still owed, and a batch with room gets it all.
  const Batch all = poll(0ns, kReady);
  EXPECT_EQ(all.size(), kReady);
  for (Pipe& p : pipes) b().remove(p.r.get());
}

// More fds stay ready than one batch holds, and nobody drains them: each poll may serve only
// a batch's worth, but whichever fds it picks, every one of them is served within a bounded
// number of polls. A scan that always began at the lowest fd would serve the same few forever.
TEST_P(BackendContractTest, MoreReadyThanABatchHoldsAreAllServedWithinBoundedPolls) {
  constexpr std::size_t kReady = 200;
  constexpr std::size_t kRoom = 7;
  std::vector<Fd> fds;
  for (std::size_t i = 0; i < kReady; ++i) {
    fds.push_back(make_eventfd());
    ASSERT_TRUE(signal_eventfd(fds.back().get()));
    ASSERT_FALSE(b().add(fds.back().get(), Interest::read, i));
  }
  // Full batches cover them all in kReady / kRoom polls; allow twice that, plus one.
  constexpr std::size_t kPolls = 2 * ((kReady + kRoom - 1) / kRoom) + 1;
  std::vector<int> served(kReady, 0);
  std::size_t polls = 0;
  std::size_t left = kReady;
  while (left > 0 && polls < kPolls) {
    const Batch out = poll(0ns, kRoom);
    ++polls;
    ASSERT_EQ(out.size(), out.capacity()) << "poll " << polls << ": a full batch was owed";
    for (const Readiness& r : out) {
      ASSERT_LT(r.token, kReady);
      EXPECT_TRUE(r.events.readable());
      if (served[r.token]++ == 0) --left;
    }
  }
  EXPECT_EQ(left, 0u) << left << " of " << kReady << " ready fds not served in " << polls
                      << " polls of " << kRoom;
  for (Fd& fd : fds) b().remove(fd.get());
}

TEST_P(BackendContractTest, ABatchWithNoRoomIsNoBufferSpaceAtOnce) {
  Pipe idle, ready;
  ASSERT_FALSE(b().add(idle.r.get(), Interest::read, 1));
  ASSERT_FALSE(b().add(ready.r.get(), Interest::read, 2));
  ASSERT_TRUE(write_byte(ready.w.get()));
  // A backend that waited would be woken by this after 2 s, and fail the time check.
  const DelayedWrite guard(idle.w.get(), 2000ms);

  Batch empty;  // capacity 0
  auto start = Clock::now();
  EXPECT_EQ(b().poll(empty, std::nullopt), std::errc::no_buffer_space);
  EXPECT_LT(Clock::now() - start, 1s) << "waited with nowhere to put the answer";
  EXPECT_EQ(empty.capacity(), 0u);

  Batch full;
  full.reserve(2);
  full.resize(full.capacity(), Readiness{100, IoEvents{IoEvents::kReadable}});
  start = Clock::now();
  EXPECT_EQ(b().poll(full, 10s), std::errc::no_buffer_space);
  EXPECT_LT(Clock::now() - start, 1s) << "waited with nowhere to put the answer";
  EXPECT_EQ(full.size(), full.capacity());
  for (const Readiness& r : full) EXPECT_EQ(r.token, 100u);

  EXPECT_EQ(poll().size(), 1u) << "the refused poll() must not have eaten readiness";
  b().remove(idle.r.get());
  b().remove(ready.r.get());
}

// ---------------------------------------------------------------------------------------
// Waiting.

TEST_P(BackendContractTest, ZeroTimeoutDoesNotBlock) {
  Pipe idle;
  ASSERT_FALSE(b().add(idle.r.get(), Interest::read, 1));
  const DelayedWrite guard(idle.w.get(), 2000ms);
  for (int i = 0; i < 3; ++i) {
    const auto start = Clock::now();
    EXPECT_TRUE(poll(0ns).empty());
    EXPECT_LT(Clock::now() - start, 1s) << "a zero timeout blocked";
  }
  b().remove(idle.r.get());
}

TEST_P(BackendContractTest, NoTimeoutWaitsUntilSomethingIsReady) {
  Pipe p;
  ASSERT_FALSE(b().add(p.r.get(), Interest::read, 1));
  const auto start = Clock::now();
  const DelayedWrite writer(p.w.get(), 50ms);
  const Batch batch = poll(std::nullopt);
  EXPECT_GE(Clock::now() - start, 50ms) << "returned before anything was ready";
  ASSERT_EQ(batch.size(), 1u);
  EXPECT_EQ(batch[0].token, 1u);
  b().remove(p.r.get());
}

TEST_P(BackendContractTest, ReadinessEndsAWaitEarly) {
  Pipe p;
  ASSERT_FALSE(b().add(p.r.get(), Interest::read, 1));
  const auto start = Clock::now();
  const DelayedWrite writer(p.w.get(), 20ms);
  const Batch batch = poll(30s);
  EXPECT_LT(Clock::now() - start, 10s) << "sanity bound only";
  ASSERT_EQ(batch.size(), 1u);
  b().remove(p.r.get());
}

// Every backend rounds a timeout up to its mechanism's resolution (epoll: 1 ms, select:
// 1 us, libuv: 1 ms plus its cached clock), so a wait with nothing ready never ends before
// the time asked. Only that lower bound is a contract; the upper one is a sanity bound.
TEST_P(BackendContractTest, ATimeoutNeverEndsEarly) {
  const std::chrono::nanoseconds timeouts[] = {1ns, 999us, 1500us, 2ms + 1ns, 10ms + 500us};
  for (const bool with_fd : {false, true}) {
    Pipe idle;
    if (with_fd) {
      ASSERT_FALSE(b().add(idle.r.get(), Interest::read, 1));
    }
    for (const auto timeout : timeouts) {
      for (int i = 0; i < 3; ++i) {
        const auto start = Clock::now();
        const Batch batch = poll(timeout);
        const auto took = Clock::now() - start;
        EXPECT_TRUE(batch.empty());
        EXPECT_GE(took, timeout) << "a wait of " << timeout.count() << " ns ended after "
                                 << took.count() << " ns, with " << (with_fd ? "an" : "no")
                                 << " fd registered";
        EXPECT_LT(took, timeout + 5s) << "sanity bound only";
      }
    }
    if (with_fd) b().remove(idle.r.get());
  }
}

std::atomic<int> signals_caught{0};
extern "C" void count_signal(int) { signals_caught.fetch_add(1); }

/// Installs a counting SIGUSR2 handler without SA_RESTART; restores the old one after.
class CountingHandler {
 public:
  CountingHandler() {
    struct sigaction sa {};
    sa.sa_handler = count_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0;
    ::sigaction(SIGUSR2, &sa, &old_);
  }
  ~CountingHandler() { ::sigaction(SIGUSR2, &old_, nullptr); }

 private:
  struct sigaction old_ {};
};

// A signal is delivered to the waiting thread. The wait then ends (select, poll, epoll) or
// goes on to its timeout (libuv resumes it inside); either way poll() reports success and
// appends nothing.
TEST_P(BackendContractTest, ASignalDuringAWaitIsSuccessWithNothingAppended) {
  Pipe idle;
  ASSERT_FALSE(b().add(idle.r.get(), Interest::read, 1));
  const CountingHandler handler;
  signals_caught.store(0);
  const pthread_t waiter = ::pthread_self();
  std::thread sender([waiter] {
    std::this_thread::sleep_for(50ms);
    ::pthread_kill(waiter, SIGUSR2);
  });
  const auto timeout = is("uv") ? 300ms : 5000ms;
  const auto start = Clock::now();
  const Batch batch = poll(timeout);  // checks success
  const auto took = Clock::now() - start;
  sender.join();
  EXPECT_TRUE(batch.empty());
  EXPECT_EQ(signals_caught.load(), 1);
  if (is("uv")) {
    EXPECT_GE(took, timeout) << "libuv was expected to resume its wait";
  } else {
    EXPECT_LT(took, 4s) << "the signal did not end the wait";
  }
  b().remove(idle.r.get());
}

// ---------------------------------------------------------------------------------------
// Threads and processes.

TEST_P(BackendContractTest, UsableFromAnotherThreadOneAtATime) {
  Pipe p;
  ASSERT_FALSE(b().add(p.r.get(), Interest::read, 1));
  ASSERT_TRUE(write_byte(p.w.get()));
  Batch batch;
  std::thread other([&] { batch = poll(); });
  other.join();
  ASSERT_EQ(batch.size(), 1u);
  EXPECT_EQ(batch[0].token, 1u);
  b().remove(p.r.get());
}

/// The child's exit statuses.
enum : int {
  kChildOk = 0,
  kChildAfterForkFailed = 10,
  kChildAddFailed,
  kChildPollFailed,
  kChildWrongBatch,
};

// The child rebuilds its kernel state, then removes the parent's fd from its own copy and
// watches one of its own. None of that may reach the parent's registrations.
TEST_P(BackendContractTest, AfterForkInAChildLeavesTheParentsRegistrationsWorking) {
  Pipe shared;
  ASSERT_FALSE(b().add(shared.r.get(), Interest::read, 1));
  const pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    if (b().after_fork()) ::_exit(kChildAfterForkFailed);
    b().remove(shared.r.get());
    int own[2];
    if (::pipe2(own, O_NONBLOCK) != 0 || !write_byte(own[1])) ::_exit(kChildAddFailed);
    if (b().add(own[0], Interest::read, 2)) ::_exit(kChildAddFailed);
    Batch out;
    out.reserve(4);
    if (b().poll(out, 0ns)) ::_exit(kChildPollFailed);
    if (out.size() != 1 || out[0].token != 2 || !out[0].events.readable())
      ::_exit(kChildWrongBatch);
    ::_exit(kChildOk);
  }
  int status = 0;
  pid_t done = 0;
  for (int i = 0; i < 500 && done == 0; ++i) {
    done = ::waitpid(pid, &status, WNOHANG);
    if (done == 0) std::this_thread::sleep_for(10ms);
  }
  if (done == 0) {
    ::kill(pid, SIGKILL);
    ::waitpid(pid, &status, 0);
    FAIL() << "the child did not finish within 5 s";
  }
  ASSERT_TRUE(WIFEXITED(status)) << "status " << status;
  EXPECT_EQ(WEXITSTATUS(status), kChildOk);

  ASSERT_TRUE(write_byte(shared.w.get()));
  const Batch batch = poll();
  ASSERT_EQ(batch.size(), 1u) << "the child's remove() reached the parent's registration";
  EXPECT_EQ(batch[0].token, 1u);
  b().remove(shared.r.get());
}

REACTOR_INSTANTIATE_ALL_BACKENDS(BackendContractTest);

}  // namespace
