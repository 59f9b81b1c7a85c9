// SPDX-License-Identifier: MIT
#include "reactor/net/listener.hpp"

#include "reactor/core/handler_call.hpp"
#include "reactor/core/log.hpp"
#include "reactor/net/detail/fd_shortage.hpp"

#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <mutex>
#include <thread>
#include <vector>

namespace reactor {

namespace detail {

std::atomic<unsigned> listeners_backing_off{0};

namespace {

// The listeners backing off, with the thread that registered them (their loop's). A close
// on that thread makes them retry at once: the fd it freed may be the one they wait for. A
// close on another thread does not (its loop may be running there); the timer covers that.
struct BackingOff {
  struct ListenerState* state;
  std::thread::id thread;
};
std::mutex backing_off_mutex;
std::vector<BackingOff>& backing_off_list() {
  static auto* list = new std::vector<BackingOff>;  // never destroyed: closes run at exit
  return *list;
}

}  // namespace

struct ListenerState {
  ListenerState(Reactor& l, Listener::AcceptHandler h, Listener::Options o)
      : loop(l), handler(std::move(h)), options(o) {}

  Reactor& loop;
  Listener::AcceptHandler handler;
  Listener::Options options;
  Socket socket;
  Address address;
  IoWatcher watcher;
  Timer backoff_timer;
  std::chrono::milliseconds backoff{0};
  std::uint64_t backoffs = 0;
  // The current shortage, from its first failed accept to the first accept that does not
  // fail for lack of fds or memory: for the reports.
  Reactor::Clock::time_point shortage_since{};
  unsigned retries = 0;
  bool in_shortage = false;
  bool registered = false;  // in backing_off_list()
  bool closed = false;
  bool paused = false;
  bool backing_off = false;

  bool armed() const noexcept { return !closed && !paused && !backing_off; }

  // Puts the fd in or out of the loop's set to match armed().
  void update() {
    if (closed) return;
    watcher.set_interest(armed() ? Interest::read : Interest::none);
  }

  void on_ready() {
    for (unsigned i = 0; i < options.accepts_per_event && armed(); ++i) {
      sockaddr_storage ss{};
      socklen_t len = sizeof ss;
      const int fd = ::accept4(socket.fd(), reinterpret_cast<sockaddr*>(&ss), &len,
                               SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd < 0) {
        const int e = errno;
        if (e == EINTR || e == ECONNABORTED || e == EPROTO || e == EPERM) continue;
        if (e == EAGAIN || e == EWOULDBLOCK) {
          end_shortage();  // nobody waits, and nothing failed for lack of fds
          break;
        }
        start_backoff(e);  // EMFILE, ENFILE, ENOBUFS, ENOMEM, or the listener itself broke
        break;
      }
      end_shortage();
      std::error_code ignored;
      const Address peer = Address::from_native(reinterpret_cast<sockaddr*>(&ss), len, ignored);
      // The handler may destroy the Listener (which clears `handler`); the caller's lock
      // keeps this state alive, and `closed` says whether the handler is still wanted.
      call_member(
          handler, [this] { return !closed; }, Socket(fd), peer);
    }
    update();
  }

  void start_backoff(int error) {
    ++backoffs;
    backing_off = true;
    const auto most = std::max(options.max_error_backoff, std::chrono::milliseconds{1});
    backoff = std::clamp(backoff * 2, std::min(options.error_backoff, most), most);
    if (!in_shortage) {
      in_shortage = true;
      shortage_since = loop.now();
      retries = 0;
      detail::log(LogLevel::warning,
                  "listener %s: accept failed: %s; backing off (retrying every %lld ms at "
                  "most, or when this thread closes a socket)",
                  address.to_string().c_str(), std::strerror(error),
                  static_cast<long long>(most.count()));
    }
    update();  // out of the kernel set: the retries are the timer's (or a close's)
    backoff_timer = loop.after(backoff, [this] { retry(); });
    enlist();
  }

  // Tries the backlog now, from the timer or after a close freed an fd.
  void retry() {
    if (!backing_off || closed) return;
    backing_off = false;
    ++retries;
    if (log_enabled(LogLevel::debug)) {
      detail::log(LogLevel::debug, "listener %s: retry %u of accepting, %lld ms into the shortage",
                  address.to_string().c_str(), retries, shortage_ms());
    }
    on_ready();  // EAGAIN (nobody waits) or a client: armed again; EMFILE: the next back-off
  }

  long long shortage_ms() const {
    return std::chrono::duration_cast<std::chrono::milliseconds>(loop.now() - shortage_since)
        .count();
  }

  void end_shortage() {
    backoff = std::chrono::milliseconds{0};
    if (!in_shortage) return;
    in_shortage = false;
    detail::log(LogLevel::info, "listener %s: accepting again after %lld ms and %u retries",
                address.to_string().c_str(), shortage_ms(), retries);
  }

  void enlist() {
    if (registered) return;
    const std::lock_guard<std::mutex> lock(backing_off_mutex);
    backing_off_list().push_back({this, std::this_thread::get_id()});
    registered = true;
    listeners_backing_off.fetch_add(1, std::memory_order_relaxed);
  }

  void delist() {
    if (!registered) return;
    const std::lock_guard<std::mutex> lock(backing_off_mutex);
    delist_locked();
  }

  void delist_locked() {
    auto& list = backing_off_list();
    list.erase(std::remove_if(list.begin(), list.end(),
                              [this](const BackingOff& b) { return b.state == this; }),
               list.end());
    registered = false;
    listeners_backing_off.fetch_sub(1, std::memory_order_relaxed);
  }
};

void retry_backing_off_listeners() noexcept {
  const std::lock_guard<std::mutex> lock(backing_off_mutex);
  auto& list = backing_off_list();
  const std::thread::id self = std::this_thread::get_id();
  for (std::size_t i = 0; i < list.size();) {
    ListenerState* s = list[i].state;
    if (list[i].thread != self) {
      ++i;
      continue;
    }
    s->delist_locked();  // once per back-off: the next closes cost a load again
    if (!s->backing_off || s->closed) continue;
    try {
      // Not from inside the close: that may be deep in a callback, even the accept
      // handler. A 0 ms timer runs the retry in the next iteration, without a wait.
      s->backoff_timer = s->loop.after(std::chrono::nanoseconds{0}, [s] { s->retry(); });
    } catch (...) {
      // No memory for a timer: the back-off timer, untouched, retries in its time.
    }
  }
}

}  // namespace detail

Listener::Listener(Reactor& loop, const Address& address, AcceptHandler handler, Options options)
    : state_(std::make_shared<detail::ListenerState>(loop, std::move(handler), options)) {
  detail::ListenerState& s = *state_;
  std::error_code ec;
  s.socket = Socket::open(address, SOCK_STREAM, ec);
  if (!ec && options.reuse_address && address.is_ip()) ec = s.socket.set_reuse_address(true);
  if (!ec && options.reuse_port) ec = s.socket.set_reuse_port(true);
  if (!ec) ec = s.socket.bind(address);
  if (!ec) ec = s.socket.listen(options.backlog);
  if (!ec) s.address = s.socket.local_address(ec);
  if (ec) {
    s.closed = true;
    s.socket.close();
    throw std::system_error(ec, "listen on " + address.to_string());
  }
  std::weak_ptr<detail::ListenerState> weak = state_;
  s.watcher = loop.watch(s.socket.fd(), Interest::read, [weak](IoEvents) {
    if (auto self = weak.lock()) self->on_ready();
  });
}

Listener::~Listener() {
  // Thread-checked through the watcher and the timer, which know whether the loop lives.
  detail::ListenerState& s = *state_;
  s.closed = true;
  s.delist();  // before the close below, which would look for it
  s.watcher.stop();
  s.backoff_timer.cancel();
  s.socket.close();
  s.handler = nullptr;
}

const Address& Listener::address() const noexcept { return state_->address; }
int Listener::fd() const noexcept { return state_->socket.fd(); }

void Listener::pause() {
  REACTOR_CHECK_LOOP_THREAD(state_->loop, "Listener::pause()");
  state_->paused = true;
  state_->update();
}

void Listener::resume() {
  REACTOR_CHECK_LOOP_THREAD(state_->loop, "Listener::resume()");
  state_->paused = false;
  state_->update();
}

bool Listener::accepting() const noexcept {
  REACTOR_CHECK_LOOP_THREAD(state_->loop, "Listener::accepting()");
  return state_->armed() && state_->watcher.interest() == Interest::read;
}

std::uint64_t Listener::backoffs() const noexcept {
  REACTOR_CHECK_LOOP_THREAD(state_->loop, "Listener::backoffs()");
  return state_->backoffs;
}

}  // namespace reactor
