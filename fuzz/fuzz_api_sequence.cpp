// SPDX-License-Identifier: MIT
// fuzz_api_sequence: one sequence of Reactor operations, decoded from the input, run on every
// backend compiled in (select, poll, epoll, uv), each in a fresh loop over fresh sockets; the
// backends must agree, and each must keep the contract of reactor/core/backend.hpp and
// reactor/core/reactor.hpp on its own.
//
// The world: three AF_UNIX stream socketpairs (pairs 1 and 2 with the smallest send buffer, so
// that writes fill them), on six fixed descriptor numbers ("slots") far above the loop's own
// descriptors, so that a number the sequence closes is never reused by the library. At most 64
// operations: watch a slot (none / read / write / both, with how much its handler reads per
// call), set_interest, pause (Interest::none) and resume, unwatch, close properly (unwatch
// first), close behind the loop's back, dup2 one slot over another, write N bytes to a socket,
// shutdown (read, write, both), arm and cancel one-shot timers (0 to 1 ms), post a task, and
// run_once with a zero or tiny timeout (50 or 200 µs, at most twice per input, so that an
// input costs a few ms on all four backends).
//
// Checked on each backend by itself:
//   - every run_once delivers, to every watched slot, exactly the readiness a poll(2) of that
//     descriptor taken just before shows, masked by its interest (level-triggered: still
//     ready means reported again; error and hang-up count as readable and writable, as the
//     contract says, except as noted below); nothing for Interest::none; at most one
//     callback per slot per step;
//     never IoEvents::invalid for a descriptor that is open;
//   - bytes read are the bytes written, in order (nothing lost or consumed by the library);
//   - a timer never fires early, never twice, never after cancel(), and every live one fires
//     by the end; every posted task runs exactly once, in order;
//   - watcher_count() is the number of live watchers; no descriptor leaks.
// Checked across backends: the log of every operation's result (error codes, bytes written),
// and per run_once the readiness delivered per slot, the bytes read per socket and the tasks
// run, plus the set of timers that fired, are identical; the first difference aborts with
// both logs.
//
// Differences the contract allows, and how they are normalised away:
//   - Order of callbacks within one batch (select goes by number, poll by array position,
//     epoll and libuv by the kernel's list): each step is compared as a set. For the same
//     reason handlers never touch other registrations, and bytes read through two
//     descriptors of one socket (after dup2) are counted per socket, not per descriptor.
//   - The hang-up/error hint (IoEvents::hangup_or_error) is best effort (select cannot see
//     hang-ups): not compared.
//   - A hang-up without send room (shutdown both ways, or a peer that shut down, with our
//     bytes still queued at the peer): poll(2) shows POLLHUP and POLLIN but not POLLOUT. The
//     poll and epoll backends report it as readable and writable, libuv adds writable only
//     when the hang-up comes alone (so not to a read-write watcher, which reads the EOF), and
//     select cannot see it at all (a write-only watcher is not woken until there is room).
//     So writable is required only for a write-only watcher on a backend other than select;
//     otherwise it is optional, and not compared.
//   - When a timer fires relative to the I/O steps depends on the wall clock: only the set of
//     timers that fired is compared, after a final drain, and a timer cancelled (or replaced)
//     may or may not have fired before that; run_once's return value counts timer callbacks,
//     so it is not compared either.
//   - A descriptor closed or replaced behind the loop's back (close without unwatch, dup2 over
//     a watched number) is reported once as invalid by select and poll and dropped silently by
//     epoll and libuv; select and poll keep watching whatever reuses the number. Such a
//     watcher is "tainted" until the sequence unwatches it: its callbacks, set_interest
//     results and count are not compared, and its handler reads nothing (it could read
//     another socket's bytes). Every other watcher must still be served exactly (R2).
//   - Level-triggered everywhere by contract: no edge/level normalisation; a difference is a
//     bug.
//   - Spurious wakeups (a wait that ends with nothing to report) leave no trace in the log
//     and are allowed. Spurious readiness is not: a callback must match poll(2), so a
//     backend that reports a ready fd that is not ready fails on its own.
#include <dirent.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "fuzz/fuzz_input.hpp"
#include "reactor/core/reactor.hpp"

namespace {

using namespace std::chrono_literals;
using reactor::Interest;
using reactor::IoEvents;
using reactor::IoWatcher;
using reactor::Reactor;
using reactor::Timer;
using reactor::fuzz::Input;
using Clock = std::chrono::steady_clock;

constexpr int kSlots = 6;          // three socketpairs
constexpr int kFirstSlotFd = 400;  // slot i is descriptor kFirstSlotFd + i
constexpr std::size_t kMaxOps = 64;
constexpr int kTimers = 8;
// run_once calls that may block, per input: epoll rounds a wait up to whole milliseconds and
// the uv backend adds one more, so each can cost 2 ms whatever its timeout.
constexpr int kMaxWaits = 2;
constexpr auto kDrainLimit = 2s;  // a live timer that has not fired by then is lost

struct Op {
  enum Kind : std::uint8_t {
    watch,
    modify,
    unwatch,
    close,
    close_behind,
    dup2,
    write,
    shutdown,
    pause,
    resume,
    timer,
    cancel,
    run_once,
    post,
  };
  Kind kind;
  std::uint8_t a;   // slot, timer index or task id
  std::uint8_t b;   // interest, or the dup2 target slot
  std::uint32_t n;  // read chunk, bytes to write, delay or timeout (µs)
};

const char* const kKindNames[] = {"watch", "modify", "unwatch",  "close", "close_behind",
                                  "dup2",  "write",  "shutdown", "pause", "resume",
                                  "timer", "cancel", "run_once", "post"};

std::vector<Op> decode(Input& in) {
  // Weighted: run_once, watch and write are what most sequences need.
  static constexpr Op::Kind kKinds[] = {Op::watch,    Op::watch,        Op::modify,   Op::unwatch,
                                        Op::close,    Op::close_behind, Op::dup2,     Op::write,
                                        Op::shutdown, Op::pause,        Op::resume,   Op::timer,
                                        Op::cancel,   Op::post,         Op::run_once, Op::run_once};
  static constexpr std::uint32_t kChunks[] = {0, 1, 100, 4096, 65536};
  static constexpr std::uint32_t kWrites[] = {1, 7, 100, 1000, 4096, 16384, 65536, 200000};
  static constexpr std::uint32_t kTimeouts[] = {0, 0, 0, 0, 0, 50, 200};
  std::vector<Op> ops;
  int waits = 0;
  while (!in.empty() && ops.size() < kMaxOps) {
    Op op{};
    op.kind = in.pick(std::span<const Op::Kind>(kKinds));
    const std::uint8_t x = in.u8();
    op.a = static_cast<std::uint8_t>(x % kSlots);
    switch (op.kind) {
      case Op::watch:
        op.b = static_cast<std::uint8_t>(x >> 5);  // 0..7: the interest is b & 3
        op.n = in.pick(std::span<const std::uint32_t>(kChunks));
        break;
      case Op::modify:
        op.b = static_cast<std::uint8_t>(x >> 6);
        break;
      case Op::dup2:
        op.b = static_cast<std::uint8_t>((x >> 4) % kSlots);
        break;
      case Op::shutdown:
        op.b = static_cast<std::uint8_t>((x >> 4) % 3);  // SHUT_RD, SHUT_WR, SHUT_RDWR
        break;
      case Op::write:
        op.n = in.pick(std::span<const std::uint32_t>(kWrites));
        break;
      case Op::timer:
        op.a = static_cast<std::uint8_t>(x % kTimers);
        op.n = 100u * (in.u8() % 11);  // 0..1 ms
        break;
      case Op::cancel:
        op.a = static_cast<std::uint8_t>(x % kTimers);
        break;
      case Op::run_once:
        op.n = waits < kMaxWaits ? kTimeouts[x % std::size(kTimeouts)] : 0;
        waits += op.n != 0 ? 1 : 0;
        break;
      case Op::post:
        op.a = x;
        break;
      default:
        break;
    }
    ops.push_back(op);
  }
  return ops;
}

std::string describe(const std::vector<Op>& ops) {
  std::string out;
  for (std::size_t i = 0; i < ops.size(); ++i) {
    const Op& op = ops[i];
    char line[96];
    std::snprintf(line, sizeof line, "  %2zu %-12s a=%u b=%u n=%u\n", i, kKindNames[op.kind], op.a,
                  op.b, op.n);
    out += line;
  }
  return out;
}

// The bytes written into socket `object`: what its peer reads, in order.
char pattern(int object, std::uint64_t k) {
  return static_cast<char>(object * 37 + k * 13 + (k >> 8));
}

int count_open_fds() {
  int n = 0;
  if (DIR* d = ::opendir("/proc/self/fd")) {
    while (::readdir(d) != nullptr) ++n;
    ::closedir(d);
  }
  return n;
}

std::string errno_name(const std::error_code& ec) {
  return ec ? std::to_string(ec.value()) : std::string("ok");
}

// One backend's run of the sequence.
class Run {
 public:
  Run(std::string backend, const std::vector<Op>& ops) : backend_(std::move(backend)), ops_(ops) {}

  // Runs the sequence; the log is what the other backends must reproduce.
  const std::string& execute() {
    loop_ = std::make_unique<Reactor>(backend_);
    open_pairs();
    for (op_index_ = 0; op_index_ < ops_.size(); ++op_index_) apply(ops_[op_index_]);
    op_index_ = ops_.size();
    finish();
    return log_;
  }

 private:
  struct Slot {
    int fd = -1;        // fixed number
    bool open = false;  // the number names a socket
    int object = -1;    // which socket (0..5; slot i starts on socket i)
    IoWatcher watcher;
    bool held = false;     // `watcher` came from a successful watch() and was not stopped
    bool tainted = false;  // its number was closed or replaced behind the loop's back
    Interest interest = Interest::none;
    Interest saved = Interest::none;  // for resume
    std::uint32_t chunk = 0;          // bytes its handler reads per call
  };
  struct TimerSlot {
    Timer timer;
    int instance = -1;
  };
  struct Step {
    std::array<std::uint8_t, kSlots> bits{};      // readiness delivered, 0x80: delivered
    std::array<std::uint64_t, kSlots> read_by{};  // bytes read per socket
    std::vector<int> tasks;
  };

  [[noreturn]] void fail(const std::string& what) {
    std::fprintf(stderr, "\nfuzz_api_sequence: backend %s, operation %zu: %s\nsequence:\n%s",
                 backend_.c_str(), op_index_, what.c_str(), describe(ops_).c_str());
    std::fprintf(stderr, "log so far (%s):\n%s\n", backend_.c_str(), log_.c_str());
    reactor::fuzz::fail("backend contract", __FILE__, __LINE__);
  }

  void open_pairs() {
    for (int p = 0; p < kSlots / 2; ++p) {
      int sv[2];
      if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) != 0)
        fail(std::string("socketpair: ") + std::strerror(errno));
      for (int e = 0; e < 2; ++e) {
        const int i = 2 * p + e;
        if (p > 0) {
          const int small = 1;  // the kernel rounds it up to its minimum
          ::setsockopt(sv[e], SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
        }
        slots_[i].fd = kFirstSlotFd + i;
        if (::dup2(sv[e], slots_[i].fd) != slots_[i].fd) fail("dup2 to a slot number");
        ::close(sv[e]);
        slots_[i].open = true;
        slots_[i].object = i;
      }
    }
  }

  void line(const std::string& text) {
    log_ += text;
    log_ += '\n';
  }

  void apply(const Op& op) {
    switch (op.kind) {
      case Op::watch:
        return watch(op.a, static_cast<Interest>(op.b & 3), op.n);
      case Op::modify:
        return modify(op.a, static_cast<Interest>(op.b & 3), "modify");
      case Op::unwatch:
        return unwatch(op.a);
      case Op::close:
        return close(op.a, true);
      case Op::close_behind:
        return close(op.a, false);
      case Op::dup2:
        return dup2(op.a, op.b);
      case Op::write:
        return write(op.a, op.n);
      case Op::shutdown:
        return shutdown(op.a, op.b);
      case Op::pause:
        return pause(op.a);
      case Op::resume:
        return modify(op.a, slots_[op.a].saved, "resume");
      case Op::timer:
        return arm(op.a, op.n);
      case Op::cancel:
        return cancel(op.a);
      case Op::run_once:
        return run_once(op.n);
      case Op::post:
        return post(op.a);
    }
  }

  void watch(int i, Interest interest, std::uint32_t chunk) {
    Slot& s = slots_[i];
    if (s.held && s.tainted) unwatch(i);  // replaced: a fresh, comparable registration
    std::error_code ec;
    IoWatcher w = loop_->watch(
        s.fd, interest, [this, i](IoEvents ev) { on_io(i, ev); }, ec);
    line("watch s" + std::to_string(i) + " " + std::to_string(static_cast<int>(interest)) + " -> " +
         errno_name(ec));
    if (ec) {
      if (s.held && ec != std::errc::file_exists) fail("watching a watched fd: not EEXIST");
      if (w.active()) fail("a failed watch() returned an active watcher");
      return;
    }
    if (s.held) fail("watch() of a watched fd succeeded");
    if (!s.open) fail("watch() of a closed fd succeeded");
    s.watcher = std::move(w);
    s.held = true;
    s.tainted = false;
    s.interest = interest;
    s.saved = interest;
    s.chunk = chunk;
  }

  void modify(int i, Interest interest, const char* what) {
    Slot& s = slots_[i];
    const std::error_code ec = s.watcher.set_interest(interest);
    if (s.tainted) return;
    line(std::string(what) + " s" + std::to_string(i) + " " +
         std::to_string(static_cast<int>(interest)) + " -> " + errno_name(ec));
    if (!s.held) {
      if (ec != std::errc::bad_file_descriptor) fail("set_interest on no watcher: not EBADF");
      return;
    }
    if (ec) fail("set_interest on a live watcher failed: " + ec.message());
    s.interest = interest;
  }

  void pause(int i) {
    Slot& s = slots_[i];
    if (s.held) s.saved = s.interest;
    modify(i, Interest::none, "pause");
  }

  void unwatch(int i) {
    Slot& s = slots_[i];
    s.watcher.stop();
    if (s.watcher.active()) fail("stop() left the watcher active");
    if (!s.tainted) line("unwatch s" + std::to_string(i));
    s.held = false;
    s.tainted = false;
    s.interest = Interest::none;
  }

  void close(int i, bool properly) {
    Slot& s = slots_[i];
    if (!s.open) return;
    if (properly) {
      if (s.held) unwatch(i);
    } else if (s.held) {
      s.tainted = true;
    }
    ::close(s.fd);
    s.open = false;
    s.object = -1;
    line(std::string(properly ? "close" : "close_behind") + " s" + std::to_string(i));
  }

  void dup2(int from, int to) {
    Slot& src = slots_[from];
    Slot& dst = slots_[to];
    if (!src.open || from == to) return;
    if (::dup2(src.fd, dst.fd) != dst.fd) fail(std::string("dup2: ") + std::strerror(errno));
    if (dst.held) dst.tainted = true;
    dst.open = true;
    dst.object = src.object;
    line("dup2 s" + std::to_string(from) + " s" + std::to_string(to));
  }

  void write(int i, std::uint32_t n) {
    const Slot& s = slots_[i];
    if (!s.open) return;
    static char bytes[200000];
    std::uint64_t& at = written_[s.object];
    for (std::uint32_t k = 0; k < n; ++k) bytes[k] = pattern(s.object, at + k);
    const ssize_t got = ::send(s.fd, bytes, n, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (got > 0) at += static_cast<std::uint64_t>(got);
    line("write s" + std::to_string(i) + " " + std::to_string(n) + " -> " +
         (got >= 0 ? std::to_string(got) : "errno " + std::to_string(errno)));
  }

  void shutdown(int i, int how) {
    const Slot& s = slots_[i];
    if (!s.open) return;
    const int rc = ::shutdown(s.fd, how);
    line("shutdown s" + std::to_string(i) + " " + std::to_string(how) + " -> " +
         (rc == 0 ? std::string("ok") : "errno " + std::to_string(errno)));
  }

  void on_io(int i, IoEvents ev) {
    Slot& s = slots_[i];
    if (s.tainted) return;  // see the file comment
    if (!s.held) fail("a callback for a slot that is not watched");
    if (ev.invalid()) fail("IoEvents::invalid for an open descriptor");
    if ((step_.bits[i] & 0x80) != 0) fail("two callbacks for one slot in one run_once");
    const std::uint8_t rw = ev.bits & (IoEvents::kReadable | IoEvents::kWritable);
    if (rw == 0) fail("a callback with neither readable nor writable");
    if ((rw & ~static_cast<std::uint8_t>(s.interest)) != 0) fail("delivered outside the interest");
    step_.bits[i] = static_cast<std::uint8_t>(0x80 | rw);
    if (!ev.readable() || s.chunk == 0) return;

    static char buf[65536];
    const ssize_t got = ::read(s.fd, buf, s.chunk);
    if (got <= 0) return;  // EOF, EAGAIN (another descriptor of this socket read first), reset
    // The stream into this socket is what was written into its peer.
    const int peer = s.object ^ 1;
    std::uint64_t& at = read_[s.object];
    for (ssize_t k = 0; k < got; ++k) {
      if (buf[k] != pattern(peer, at + static_cast<std::uint64_t>(k)))
        fail("bytes read differ from the bytes written (lost or reordered)");
    }
    at += static_cast<std::uint64_t>(got);
    step_.read_by[s.object] += static_cast<std::uint64_t>(got);
  }

  // What each clean, watched slot must be reported as (`must`) and may be reported as
  // (`may`, a superset), from a poll(2) of it, within its interest; `same` is the part every
  // backend must report alike, which is what the log compares.
  struct Expected {
    std::array<std::uint8_t, kSlots> must{};
    std::array<std::uint8_t, kSlots> may{};
    std::array<std::uint8_t, kSlots> same{};
  };
  Expected readiness() {
    Expected e;
    pollfd pfds[kSlots];
    int which[kSlots];
    nfds_t n = 0;
    for (int i = 0; i < kSlots; ++i) {
      const Slot& s = slots_[i];
      if (!s.held || s.tainted || !s.open || s.interest == Interest::none) continue;
      pfds[n] = pollfd{s.fd, POLLIN | POLLOUT, 0};
      which[n++] = i;
    }
    if (n != 0 && ::poll(pfds, n, 0) < 0) fail(std::string("poll: ") + std::strerror(errno));
    for (nfds_t k = 0; k < n; ++k) {
      const short r = pfds[k].revents;
      const auto interest = static_cast<std::uint8_t>(slots_[which[k]].interest);
      std::uint8_t must = 0;
      std::uint8_t may = 0;
      if (r & (POLLIN | POLLPRI | POLLHUP | POLLERR)) must |= IoEvents::kReadable;
      if (r & (POLLOUT | POLLERR)) must |= IoEvents::kWritable;
      e.same[which[k]] = must & interest;
      if ((r & (POLLOUT | POLLERR)) == 0 && (r & POLLHUP) != 0) {
        // A hang-up without send room (see the file comment): writable is owed only to a
        // write-only watcher, which has no other way to find out, and select cannot see it.
        if ((interest & IoEvents::kReadable) != 0 || backend_ == "select") {
          may |= IoEvents::kWritable;
        } else {
          must |= IoEvents::kWritable;
        }
      }
      e.must[which[k]] = must & interest;
      e.may[which[k]] = (must | may) & interest;
    }
    return e;
  }

  void run_once(std::uint32_t timeout_us) {
    const Expected expected = readiness();
    step_ = Step{};
    loop_->run_once(std::chrono::microseconds(timeout_us));
    std::string text = "run_once";
    for (int i = 0; i < kSlots; ++i) {
      const Slot& s = slots_[i];
      if (s.tainted) continue;
      const std::uint8_t got = step_.bits[i] & 0x7f;
      const std::uint8_t must = expected.must[i];
      const std::uint8_t may = expected.may[i];
      if ((got & must) != must || (got & ~may) != 0) {
        fail("slot " + std::to_string(i) + ": delivered " + std::to_string(got) +
             ", but poll(2) showed " + std::to_string(must) + " (or up to " + std::to_string(may) +
             ") within interest " + std::to_string(static_cast<int>(s.interest)) +
             " (1 readable, 2 writable)");
      }
      // What is optional is left out of the comparison, and a callback carrying only that
      // with it.
      const std::uint8_t compared = got & expected.same[i];
      if (compared != 0) text += " s" + std::to_string(i) + "=" + std::to_string(compared);
    }
    for (int o = 0; o < kSlots; ++o) {
      if (step_.read_by[o] != 0)
        text += " o" + std::to_string(o) + "+" + std::to_string(step_.read_by[o]);
    }
    for (int t : step_.tasks) text += " t" + std::to_string(t);
    line(text);
    check_count();
  }

  void check_count() {
    std::size_t held = 0;
    bool any_tainted = false;
    for (const Slot& s : slots_) {
      held += s.held ? 1 : 0;
      any_tainted = any_tainted || s.tainted;
    }
    if (!any_tainted && loop_->watcher_count() != held) fail("watcher_count() is wrong");
  }

  void arm(int index, std::uint32_t delay_us) {
    TimerSlot& t = timers_[index];
    if (t.instance >= 0) withdraw(t.instance);  // replaced
    const int instance = static_cast<int>(op_index_);
    const Clock::time_point armed = Clock::now();
    const auto delay = std::chrono::microseconds(delay_us);
    t.timer = loop_->after(delay, [this, instance, armed, delay] {
      if (cancelled_[instance]) fail("a cancelled timer fired");
      if (fired_[instance]) fail("a one-shot timer fired twice");
      if (Clock::now() - armed < delay) fail("a timer fired early");
      fired_[instance] = true;
    });
    t.instance = instance;
    armed_[instance] = true;
    line("timer " + std::to_string(index) + " " + std::to_string(delay_us));
  }

  void cancel(int index) {
    TimerSlot& t = timers_[index];
    t.timer.cancel();
    if (t.timer.active()) fail("cancel() left the timer active");
    if (t.instance >= 0) withdraw(t.instance);
    line("cancel " + std::to_string(index));
  }

  // Cancelled or replaced: it must not fire from now on, and whether it fired before is a
  // matter of time, so it is left out of the comparison.
  void withdraw(int instance) {
    withdrawn_[instance] = true;
    if (!fired_[instance]) cancelled_[instance] = true;
  }

  void post(int id) {
    ++posted_;
    loop_->post([this, id] {
      step_.tasks.push_back(id);
      ++ran_;
    });
    line("post " + std::to_string(id));
  }

  void finish() {
    // Stop watching, run what was posted, then wait for every live timer.
    for (int i = 0; i < kSlots; ++i) {
      if (slots_[i].held) unwatch(i);
    }
    step_ = Step{};
    loop_->run_once(0ns);
    std::string text = "drain";
    for (int t : step_.tasks) text += " t" + std::to_string(t);
    line(text);
    if (ran_ != posted_) fail("a posted task did not run");

    const Clock::time_point limit = Clock::now() + kDrainLimit;
    for (;;) {
      bool waiting = false;
      for (std::size_t k = 0; k < kMaxOps; ++k) {
        waiting = waiting || (armed_[k] && !cancelled_[k] && !fired_[k]);
      }
      if (!waiting) break;
      if (Clock::now() > limit) fail("a live timer never fired");
      loop_->run_once(1ms);
    }
    text = "fired";
    for (std::size_t k = 0; k < kMaxOps; ++k) {
      if (armed_[k] && !withdrawn_[k]) text += " " + std::to_string(k);
    }
    line(text);
    if (loop_->watcher_count() != 0) fail("watchers left after unwatching every slot");

    for (TimerSlot& t : timers_) t.timer = Timer();
    for (Slot& s : slots_) {
      if (s.open) ::close(s.fd);
      s.open = false;
    }
    loop_.reset();
  }

  std::string backend_;
  const std::vector<Op>& ops_;
  std::unique_ptr<Reactor> loop_;
  std::array<Slot, kSlots> slots_;
  std::array<TimerSlot, kTimers> timers_;
  std::array<bool, kMaxOps> armed_{};
  std::array<bool, kMaxOps> fired_{};
  std::array<bool, kMaxOps> cancelled_{};  // withdrawn before it fired
  std::array<bool, kMaxOps> withdrawn_{};
  std::array<std::uint64_t, kSlots> written_{};  // bytes written into each socket
  std::array<std::uint64_t, kSlots> read_{};     // bytes read from each socket
  int posted_ = 0;
  int ran_ = 0;
  Step step_;
  std::size_t op_index_ = 0;
  std::string log_;
};

std::vector<std::string> g_backends;
bool g_trace = false;  // $FUZZ_TRACE set: print each sequence and each backend's log

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  g_backends = reactor::available_backends();
  g_trace = std::getenv("FUZZ_TRACE") != nullptr;
  // libuv opens process-wide descriptors with its first loop and keeps them: make every
  // backend once before counting.
  for (const std::string& b : g_backends) {
    Reactor warm(b);
    warm.run_once(0ns);
  }
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  Input in(data, size);
  const std::vector<Op> ops = decode(in);
  // Counted here rather than once: libFuzzer's symbolizer opens descriptors between runs.
  const int baseline_fds = count_open_fds();
  if (g_trace) std::fprintf(stderr, "sequence:\n%s", describe(ops).c_str());
  std::string first_log;
  for (std::size_t k = 0; k < g_backends.size(); ++k) {
    if (g_trace) std::fprintf(stderr, "--- %s\n", g_backends[k].c_str());
    Run run(g_backends[k], ops);
    const std::string log = run.execute();
    if (g_trace) std::fprintf(stderr, "%s", log.c_str());
    if (count_open_fds() != baseline_fds) {
      std::fprintf(stderr, "\nfuzz_api_sequence: backend %s leaked a descriptor\n%s",
                   g_backends[k].c_str(), describe(ops).c_str());
      reactor::fuzz::fail("descriptor leak", __FILE__, __LINE__);
    }
    if (k == 0) {
      first_log = log;
    } else if (log != first_log) {
      std::fprintf(stderr,
                   "\nfuzz_api_sequence: backends %s and %s disagree\nsequence:\n%s\n"
                   "--- %s\n%s--- %s\n%s",
                   g_backends[0].c_str(), g_backends[k].c_str(), describe(ops).c_str(),
                   g_backends[0].c_str(), first_log.c_str(), g_backends[k].c_str(), log.c_str());
      reactor::fuzz::fail("backends disagree", __FILE__, __LINE__);
    }
  }
  return 0;
}
