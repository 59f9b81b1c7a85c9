// SPDX-License-Identifier: MIT
#pragma once
/// \file
/// A datagram socket (UDP over IPv4/IPv6, or Unix datagram) on a Reactor.
///
/// - One callback per datagram, with the sender's address; datagram boundaries are kept.
///   A datagram larger than Options::max_datagram is delivered cut to that size with
///   `truncated` set (never an overflow). A 0-byte datagram is delivered as such.
/// - Sends go out at once and their errors come back at once from send()/send_to()
///   (EMSGSIZE for an oversized datagram, EAGAIN when the socket buffer is full): nothing
///   is queued and nothing is dropped silently.
/// - Errors the kernel reports later (an ICMP port unreachable on a connected socket:
///   ECONNREFUSED) arrive through on_error; the socket stays usable.
/// - At most Options::reads_per_iteration datagrams per loop iteration (fairness).
/// - Thread rule: the loop's (reactor/core/reactor.hpp), checked by the debug checks on every
///   member but these, which any thread may call: the constructors (they touch no loop
///   state), local_address() and fd() (fixed by the constructor), and the destructor. A
///   DatagramSocket must not be used after its Reactor is destroyed (destroying it then is
///   safe). start() after stop() and stop() twice are not misuses.

#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <system_error>

#include "reactor/core/reactor.hpp"
#include "reactor/export.hpp"
#include "reactor/net/address.hpp"
#include "reactor/net/socket.hpp"

namespace reactor {

/// A bound datagram socket on a loop: datagrams in through on_datagram(), out through
/// send() and send_to(). Owns its fd; not copyable or movable. The file comment is its
/// contract.
class REACTOR_API DatagramSocket {
 public:
  /// Receive size, fairness and socket options, fixed at construction.
  struct Options {
    std::size_t max_datagram = 65536;  ///< receive size; larger datagrams are truncated
    /// Datagrams read per loop iteration at most, before other fds get their turn.
    unsigned reads_per_iteration = 16;
    /// SO_REUSEADDR before bind.
    bool reuse_address = false;
    bool reuse_port = false;  ///< SO_REUSEPORT: several sockets share the port (UDP)
  };
  /// Called with each datagram's bytes (valid during the call only), its sender, and whether
  /// it was cut to Options::max_datagram.
  using ReceiveHandler =
      std::function<void(std::string_view data, const Address& from, bool truncated)>;
  /// Called with an error the kernel reported after the fact (ECONNREFUSED, say).
  using ErrorHandler = std::function<void(std::error_code)>;

  /// Bound to `address` (port 0 / a Unix address with an empty path: the kernel picks;
  /// for Unix that is an abstract autobind name, so replies can reach it). Throws
  /// std::system_error and then holds no fd.
  DatagramSocket(Reactor& loop, const Address& address, Options options);
  /// As above, with the default Options.
  DatagramSocket(Reactor& loop, const Address& address)
      : DatagramSocket(loop, address, Options{}) {}
  /// Adopts a bound datagram socket (another loop's dup of a shared one, say). Throws
  /// std::system_error if it has no local address.
  DatagramSocket(Reactor& loop, Socket socket, Options options);
  DatagramSocket(const DatagramSocket&) = delete;
  DatagramSocket& operator=(const DatagramSocket&) = delete;
  ~DatagramSocket();

  /// Sets what runs for each datagram received; none set: datagrams are read and dropped.
  void on_datagram(ReceiveHandler h) {
    REACTOR_CHECK_LOOP_THREAD(loop_, "DatagramSocket::on_datagram()");
    on_datagram_ = std::move(h);
  }
  /// Sets what runs for a later error; none set: it is ignored.
  void on_error(ErrorHandler h) {
    REACTOR_CHECK_LOOP_THREAD(loop_, "DatagramSocket::on_error()");
    on_error_ = std::move(h);
  }

  /// Starts receiving (again, after stop()). Errors from the loop are returned.
  std::error_code start();
  /// Stops receiving (sending still works).
  void stop() noexcept {
    REACTOR_CHECK_LOOP_THREAD(loop_, "DatagramSocket::stop()");
    watcher_.stop();
  }

  /// Connected mode: only `peer`'s datagrams arrive, send() goes to it, and ICMP errors
  /// are reported.
  std::error_code connect(const Address& peer) noexcept;
  /// One datagram to the connected peer: EDESTADDRREQ before connect(), EMSGSIZE, EAGAIN
  /// (socket buffer full) and the kernel's other errors at once; nothing is queued.
  std::error_code send(std::string_view data) noexcept;
  /// One datagram to `to`, with send()'s errors.
  std::error_code send_to(const Address& to, std::string_view data) noexcept;

  /// The bound address (the kernel's pick when port 0 or an empty Unix path was asked).
  /// Thread rule: any thread.
  const Address& local_address() const noexcept { return local_; }
  /// The socket's fd, for socket options; do not read from it. Thread rule: any thread.
  int fd() const noexcept { return socket_.fd(); }

 private:
  void on_readable();

  Reactor& loop_;
  Options options_;
  Socket socket_;
  Address local_;
  IoWatcher watcher_;
  std::string buffer_;
  ReceiveHandler on_datagram_;
  ErrorHandler on_error_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);  // false once destroyed
};

}  // namespace reactor
