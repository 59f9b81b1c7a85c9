// SPDX-License-Identifier: MIT
/*
 * uv backend: a real libuv loop.
 *
 * Mechanism: one uv_loop_t; one uv_poll_t per watched fd; one uv_timer_t for the wait's
 * timeout. poll() starts the timer and runs uv_run(UV_RUN_ONCE); the poll callbacks append
 * to the batch. On Linux libuv is itself epoll, level-triggered, so readiness matches the
 * epoll backend's.
 *
 * Quirks handled here:
 * - A batch with less room than the ready fds: libuv reports them in the same order each wait,
 *   so the ones left out are set aside and the next batches take turns (take_turns()).
 * - libuv abort()s when epoll_ctl fails inside uv_run. uv_poll_start only queues the change
 *   (as an EPOLL_CTL_ADD: it stops the handle first); the next uv_run makes the call, and it
 *   fails if the fd was closed (or its number reused by a file epoll refuses) behind our back
 *   in between. So modify() checks, before every uv_poll_start, that the fd still names the
 *   same file (fstat: device and inode recorded at add()), and answers EBADF instead; and
 *   poll() checks again, before uv_run, every fd started since the last one (add(), modify(),
 *   the restart after an error): one that no longer names its file is stopped there, and so
 *   dropped silently, as epoll drops a closed fd it already had.
 * - On EPOLLERR libuv stops the handle and reports UV_EBADF, even though the fd is fine and
 *   merely has a pending socket error. We report "hang-up or error" plus the interest (the
 *   contract's level-triggered error report), and start the handle again. Only when the fd
 *   really is closed (fcntl says EBADF) is it reported invalid.
 * - epoll keys its entries by file and number. When a watched fd is closed behind our back
 *   while a dup keeps the file open, the entry stays, and no epoll_ctl by number reaches it:
 *   its events would reach whatever watch later takes the number (or, with none, make libuv
 *   wake and disarm in vain). So remove() and modify(none) check the file (fstat); when it
 *   moved, the next poll() first rebuilds libuv's epoll set with uv_loop_fork(), which
 *   re-adds the live watches to a fresh instance. Correct use never pays for that.
 * - libuv adds the interest to a hang-up only when the hang-up comes alone. A hung-up socket
 *   that is readable (its EOF) but has no send room is therefore reported readable, not
 *   writable, to a read-write watcher (epoll and poll report both); its read finds the EOF.
 *   Telling this apart from a mere half close (UV_DISCONNECT) would cost a poll(2) per event.
 * - uv_poll_init puts the fd in non-blocking mode (a libuv side effect; our sockets are
 *   non-blocking anyway).
 * - A uv_poll_t may be freed only after its close callback, which runs inside a later
 *   uv_run; remove() closes the handle and the callback frees it.
 * - In one UV_RUN_ONCE libuv may call epoll_wait several times and report an fd twice; the
 *   second report is merged into the first entry.
 * - libuv's loop time is cached in whole milliseconds: the clock is refreshed before the
 *   timeout timer is started, and the timeout is rounded up by a further millisecond, so
 *   that the wait never ends early.
 *
 * On a caller's loop (detail::make_uv_backend_on, Reactor(uv_loop_t*)) the loop is borrowed:
 * never closed here, and the backend's own handles (the watches, the timer, and a prepare,
 * a check and an idle handle) are closed, not run to their end, when it is destroyed; their
 * close callbacks free them in the caller's next uv_run. poll() still works (a uv_run of
 * that loop, which also runs the caller's handles). When the caller's own uv_run drives the
 * loop, the prepare handle does before the wait what poll() does (drop closed fds, arm the
 * timer for the Reactor's nearest deadline, or the idle handle so that libuv does not block
 * at all), the poll callbacks fill the Reactor's batch as in poll(), and the check handle,
 * right after the wait, hands the batch to the Reactor and calls uv_stop() when the Reactor
 * was stopped. Both handles do nothing inside poll() itself.
 * The repair of stale kernel entries (uv_loop_fork, see above) then rebuilds the caller's
 * whole epoll set, its own fds included (libuv re-adds them all), and re-creates libuv's
 * async wake-up fd: a uv_async_send() from another thread at that very moment may be lost.
 * Only a watched fd closed before its watcher, while a dup keeps the file open, leads there.
 *
 * Limits: those of epoll.
 */
#include <fcntl.h>
#include <sys/stat.h>
#include <uv.h>

#include <cerrno>
#include <climits>
#include <memory>
#include <new>
#include <stdexcept>
#include <system_error>

#include "reactor/core/backend.hpp"
#include "reactor/core/detail/hosted_backend.hpp"

namespace reactor::backends {

namespace {

std::error_code uv_code(int status) noexcept { return {-status, std::generic_category()}; }

int uv_mask(Interest interest) noexcept {
  return (has(interest, Interest::read) ? UV_READABLE : 0) |
         (has(interest, Interest::write) ? UV_WRITABLE : 0);
}

// A wait of `ns`, in libuv's whole milliseconds, never shorter: rounded up, plus one for
// libuv's cached clock.
std::uint64_t wait_ms(std::int64_t ns) noexcept {
  return static_cast<std::uint64_t>(ns / 1'000'000 + (ns % 1'000'000 != 0 ? 1 : 0) + 1);
}

class UvBackend;

// The backend's own handles, on the heap: on a caller's loop they outlive the backend until
// their close callbacks run in the caller's next uv_run. The last callback frees the block.
struct OwnHandles {
  uv_timer_t timer;      // ends a wait: poll()'s timeout, or the Reactor's nearest deadline
  uv_prepare_t prepare;  // caller's loop only: before each of its waits
  uv_check_t check;      // caller's loop only: after each of its waits
  uv_idle_t idle;        // caller's loop only: keeps its wait from blocking
  int open = 0;          // handles initialised and not yet closed
};

// One watched fd, 200 bytes (libuv's handle is 160 of them). `handle` comes first so that a
// uv_handle_t* converts back to a Watch*; its `data` names the owning backend.
struct Watch {
  uv_poll_t handle;
  int fd;
  Interest interest = Interest::none;
  bool started = false;  // ever handed to uv_poll_start: may be in the kernel's set
  std::uint64_t token;
  dev_t device;
  ino_t inode;
  std::uint32_t batch = 0;      // the poll() that last reported this fd (0: none)
  std::uint32_t out_index = 0;  // where, in that batch
};
static_assert(sizeof(Watch) <= sizeof(uv_poll_t) + 40);

class UvBackend final : public detail::HostedBackend {
 public:
  // A loop of its own.
  UvBackend() : owned_(std::make_unique<uv_loop_t>()), loop_(owned_.get()) {
    if (int rc = uv_loop_init(loop_); rc != 0) throw std::system_error(uv_code(rc), "uv_loop_init");
    open_handles();
  }

  // The caller's loop, borrowed.
  explicit UvBackend(uv_loop_t* loop) : loop_(loop) {
    if (loop_ == nullptr) throw std::invalid_argument("reactor: null uv_loop_t");
    open_handles();
  }

  ~UvBackend() override {
    for (Watch* w : watches_) {
      if (w != nullptr) close(w);
    }
    close_handles();
    if (owned_) {
      // Close callbacks run inside uv_run; the loop can be closed once they have.
      while (uv_run(loop_, UV_RUN_NOWAIT) != 0) {
      }
      uv_loop_close(loop_);
    }
  }

  void host(const detail::HostHooks& hooks, std::vector<Readiness>& batch) noexcept override {
    if (owned_) return;  // nobody else runs a private loop
    hooks_ = hooks;
    host_batch_ = &batch;
    uv_prepare_start(&own_->prepare,
                     [](uv_prepare_t* h) { static_cast<UvBackend*>(h->data)->before_host_wait(); });
    uv_check_start(&own_->check,
                   [](uv_check_t* h) { static_cast<UvBackend*>(h->data)->after_host_wait(); });
  }

  std::string_view name() const noexcept override { return "uv"; }

  std::error_code add(int fd, Interest interest, std::uint64_t token) noexcept override {
    if (fd < 0) return std::make_error_code(std::errc::bad_file_descriptor);
    if (find(fd) != nullptr) return std::make_error_code(std::errc::file_exists);
    struct stat st {};
    if (::fstat(fd, &st) != 0) return {errno, std::generic_category()};
    Watch* w = nullptr;
    try {
      if (static_cast<std::size_t>(fd) >= watches_.size()) {
        watches_.resize(fd + 1, nullptr);
        queued_.resize(fd + 1, false);
        // One entry per fd at most, so start() never has to allocate.
        unflushed_.reserve(watches_.size());
      }
      w = new Watch{};
    } catch (const std::bad_alloc&) {
      return std::make_error_code(std::errc::not_enough_memory);
    }
    if (int rc = uv_poll_init(loop_, &w->handle, fd); rc != 0) {
      delete w;  // never initialised as a handle: no close needed
      return uv_code(rc);
    }
    w->handle.data = this;
    w->fd = fd;
    w->token = token;
    w->device = st.st_dev;
    w->inode = st.st_ino;
    watches_[fd] = w;
    if (interest != Interest::none) {
      if (int rc = start(*w, interest); rc != 0) {
        remove(fd);
        return uv_code(rc);
      }
    }
    w->interest = interest;
    return {};
  }

  std::error_code modify(int fd, Interest interest, std::uint64_t token) noexcept override {
    Watch* w = find(fd);
    if (w == nullptr) return std::make_error_code(std::errc::no_such_file_or_directory);
    w->token = token;
    if (interest == w->interest) return {};
    if (interest == Interest::none) {
      forget(*w);
      uv_poll_stop(&w->handle);
    } else {
      if (!same_file(*w)) return std::make_error_code(std::errc::bad_file_descriptor);
      if (int rc = start(*w, interest); rc != 0) return uv_code(rc);
    }
    w->interest = interest;
    return {};
  }

  void remove(int fd) noexcept override {
    if (Watch* w = find(fd)) {
      forget(*w);
      watches_[fd] = nullptr;
      close(w);
    }
  }

  std::error_code poll(std::vector<Readiness>& out,
                       std::optional<std::chrono::nanoseconds> timeout) noexcept override {
    if (out.size() == out.capacity()) return std::make_error_code(std::errc::no_buffer_space);
    drop_closed();
    if (rebuild_) {
      if (auto ec = rebuild()) return ec;
    }
    out_ = &out;
    next_batch();
    uv_run_mode mode = UV_RUN_ONCE;
    if (timeout && timeout->count() <= 0) {
      mode = UV_RUN_NOWAIT;
    } else if (timeout) {
      uv_update_time(loop_);
      uv_timer_start(
          &own_->timer, [](uv_timer_t*) {}, wait_ms(timeout->count()), 0);
    }
    const std::size_t first = out.size();
    in_poll_ = true;
    uv_run(loop_, mode);
    in_poll_ = false;
    take_turns(out, first);
    uv_timer_stop(&own_->timer);
    out_ = nullptr;
    return {};
  }

  std::error_code after_fork() noexcept override { return rebuild(); }

 private:
  void open_handles() {
    own_ = new OwnHandles{};
    uv_timer_init(loop_, &own_->timer);
    own_->open = 1;
    if (!owned_) {
      uv_prepare_init(loop_, &own_->prepare);
      uv_check_init(loop_, &own_->check);
      uv_idle_init(loop_, &own_->idle);
      own_->prepare.data = this;
      own_->check.data = this;
      own_->open = 4;
    }
  }

  void close_handles() noexcept {
    const auto closed = [](uv_handle_t* h) {
      auto* own = static_cast<OwnHandles*>(h->data);
      if (--own->open == 0) delete own;
    };
    // From here on `data` names the block, not the backend.
    own_->timer.data = own_;
    uv_close(reinterpret_cast<uv_handle_t*>(&own_->timer), closed);
    if (!owned_) {
      own_->prepare.data = own_;
      own_->check.data = own_;
      own_->idle.data = own_;
      uv_close(reinterpret_cast<uv_handle_t*>(&own_->prepare), closed);
      uv_close(reinterpret_cast<uv_handle_t*>(&own_->check), closed);
      uv_close(reinterpret_cast<uv_handle_t*>(&own_->idle), closed);
    }
  }

  // The caller's uv_run is about to wait: what poll() does before its own uv_run.
  void before_host_wait() noexcept {
    if (in_poll_) return;
    drop_closed();
    // On failure the stale entries stay (nothing to report the error to); the next wait
    // tries again.
    if (rebuild_) rebuild();
    host_batch_->clear();
    out_ = host_batch_;
    next_batch();
    const std::optional<std::chrono::nanoseconds> wait = hooks_.next_wait(hooks_.loop);
    if (wait && wait->count() <= 0) {
      uv_idle_start(&own_->idle, [](uv_idle_t*) {});
    } else if (wait) {
      uv_update_time(loop_);
      uv_timer_start(
          &own_->timer, [](uv_timer_t*) {}, wait_ms(wait->count()), 0);
    }
  }

  // The caller's uv_run has waited: the Reactor runs what the wait found, and what is due.
  void after_host_wait() noexcept {
    if (in_poll_ || out_ == nullptr) return;  // null: the Reactor came after the prepare
    take_turns(*out_, 0);
    out_ = nullptr;
    uv_timer_stop(&own_->timer);
    uv_idle_stop(&own_->idle);
    if (hooks_.after_wait(hooks_.loop)) uv_stop(loop_);
  }

  // libuv hands the ready fds over in the kernel's order, which stays the same from one wait to
  // the next while they stay ready: a batch too small for them all would take the same first
  // ones every time. So when some were set aside, the batch's new entries and those are taken
  // as one ring, and the batch gets the room's worth starting a little further on each time.
  // Batch numbers are 32 bits: when they wrap, every watch forgets its last one, so that a
  // watch last reported 2^32 batches ago is not taken for one reported in this batch.
  void next_batch() noexcept {
    if (++batch_ != 0) return;
    for (Watch* w : watches_) {
      if (w != nullptr) w->batch = 0;
    }
    batch_ = 1;
  }

  void take_turns(std::vector<Readiness>& out, std::size_t first) noexcept {
    if (set_aside_.empty()) return;
    const std::size_t room = out.size() - first;
    try {
      ring_.assign(out.begin() + static_cast<std::ptrdiff_t>(first), out.end());
      ring_.insert(ring_.end(), set_aside_.begin(), set_aside_.end());
    } catch (const std::bad_alloc&) {
      set_aside_.clear();
      return;  // this batch as it came
    }
    set_aside_.clear();
    const std::size_t start = turn_ % ring_.size();
    turn_ += room;
    out.resize(first);
    for (std::size_t i = 0; i < room; ++i) out.push_back(ring_[(start + i) % ring_.size()]);
  }

  Watch* find(int fd) const noexcept {
    return fd >= 0 && static_cast<std::size_t>(fd) < watches_.size() ? watches_[fd] : nullptr;
  }

  static bool same_file(const Watch& w) noexcept {
    struct stat st {};
    return ::fstat(w.fd, &st) == 0 && st.st_dev == w.device && st.st_ino == w.inode;
  }

  // uv_poll_start, remembering the fd for drop_closed().
  int start(Watch& w, Interest interest) noexcept {
    const int rc = uv_poll_start(&w.handle, uv_mask(interest), on_poll);
    w.started = w.started || rc == 0;
    if (rc == 0 && !queued_[w.fd]) {
      queued_[w.fd] = true;
      unflushed_.push_back(w.fd);  // within the capacity reserved by add()
    }
    return rc;
  }

  // Stops every handle started since the last uv_run whose fd no longer names the file it
  // was added with, so that uv_run never passes libuv a closed fd (see the file comment).
  void drop_closed() noexcept {
    for (int fd : unflushed_) {
      queued_[fd] = false;
      if (Watch* w = find(fd)) stop_if_moved(*w);
    }
    unflushed_.clear();
  }

  void stop_if_moved(Watch& w) noexcept {
    if (w.interest != Interest::none && !same_file(w)) {
      uv_poll_stop(&w.handle);
      w.interest = Interest::none;
    }
  }

  // Before a watch stops: if its fd no longer names its file, the kernel may still hold an
  // entry for (that file, this number), which no epoll_ctl by number can reach. Rebuild.
  void forget(const Watch& w) noexcept {
    if (w.started && !same_file(w)) rebuild_ = true;
  }

  // A fresh epoll set holding exactly the live watches (uv_loop_fork re-adds them all, so a
  // moved fd among them is stopped first, or libuv would abort on it).
  std::error_code rebuild() noexcept {
    rebuild_ = false;
    for (Watch* w : watches_) {
      if (w != nullptr) stop_if_moved(*w);
    }
    if (int rc = uv_loop_fork(loop_); rc != 0) return uv_code(rc);
    return {};
  }

  static void close(Watch* w) noexcept {
    uv_close(reinterpret_cast<uv_handle_t*>(&w->handle),
             [](uv_handle_t* h) { delete reinterpret_cast<Watch*>(h); });
  }

  static void on_poll(uv_poll_t* handle, int status, int events) {
    Watch* w = reinterpret_cast<Watch*>(handle);
    static_cast<UvBackend*>(w->handle.data)->report(*w, status, events);
  }

  void report(Watch& w, int status, int events) noexcept {
    std::uint8_t bits = 0;
    if (status < 0) {
      if (::fcntl(w.fd, F_GETFD) < 0) {
        bits = IoEvents::kInvalid;
      } else {
        // A pending socket error, which libuv calls EBADF after stopping the handle.
        bits = IoEvents::kHangupOrError | static_cast<std::uint8_t>(w.interest);
        if (w.interest != Interest::none) start(w, w.interest);
      }
    } else {
      if (events & UV_READABLE) bits |= IoEvents::kReadable;
      if (events & UV_WRITABLE) bits |= IoEvents::kWritable;
      if (events & UV_DISCONNECT) bits |= IoEvents::kHangupOrError;
    }
    if (bits == 0 || out_ == nullptr) return;
    if (w.batch == batch_) {
      if (w.out_index & kSetAside) {
        set_aside_[w.out_index & ~kSetAside].events.bits |= bits;
      } else {
        (*out_)[w.out_index].events.bits |= bits;
      }
      return;
    }
    w.batch = batch_;
    if (out_->size() == out_->capacity()) {
      // No room: owed to a later batch (level-triggered). Kept aside so that the batch can be
      // rotated (see take_turns()); without memory it is simply left out.
      try {
        set_aside_.push_back(Readiness{w.token, IoEvents{bits}});
      } catch (const std::bad_alloc&) {
        w.batch = 0;
        return;
      }
      w.out_index = kSetAside | static_cast<std::uint32_t>(set_aside_.size() - 1);
      return;
    }
    w.out_index = static_cast<std::uint32_t>(out_->size());
    out_->push_back(Readiness{w.token, IoEvents{bits}});
  }

  std::unique_ptr<uv_loop_t> owned_;  // null on a caller's loop
  uv_loop_t* loop_;
  OwnHandles* own_ = nullptr;  // freed by the handles' close callbacks
  detail::HostHooks hooks_;
  std::vector<Readiness>* host_batch_ = nullptr;
  bool in_poll_ = false;         // inside poll()'s own uv_run: the prepare and check do nothing
  std::vector<Watch*> watches_;  // by fd
  std::vector<int> unflushed_;   // fds started since the last uv_run
  std::vector<bool> queued_;     // by fd: in unflushed_
  bool rebuild_ = false;         // stale kernel entries possible: see forget()
  std::vector<Readiness>* out_ = nullptr;
  std::uint32_t batch_ = 0;
  // Reports of a wait that found the batch full, and the scratch take_turns() rotates in.
  static constexpr std::uint32_t kSetAside = std::uint32_t{1} << 31;  // in Watch::out_index
  std::vector<Readiness> set_aside_;
  std::vector<Readiness> ring_;
  std::size_t turn_ = 0;
};

}  // namespace

std::unique_ptr<Backend> make_uv() { return std::make_unique<UvBackend>(); }

}  // namespace reactor::backends

namespace reactor::detail {

std::unique_ptr<Backend> make_uv_backend_on(uv_loop_s* loop) {
  return std::make_unique<backends::UvBackend>(loop);
}

}  // namespace reactor::detail
