// SPDX-License-Identifier: MIT
#pragma once
/// \file
/// The services of reactor-serve, after the Python socketserver tutorials. Each service is
/// one transform (what a client sent in, the reply out through a Reply), and three small
/// adapters run every transform on every transport and model:
///   - a blocking handler (sync, threading, forking): reads with BlockingStream;
///   - an event handler (reactor, pool): callbacks on a Connection;
///   - a datagram handler (every model): one datagram in, one datagram out.
///
///   echo   what arrives, sent back
///   upper  what arrives, a-z upper-cased (other bytes, 0x80 and up too, untouched)
///   time   each line, as "[ctime() of now] line" (the line keeps its own newline)
///   greet  "Thank you for connecting\n", then the connection closes
///   print  each line printed with the client's address on stdout; no reply
///
/// Over datagrams, time and print take each line of the datagram, greet answers any
/// datagram, echo and upper the whole datagram.

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "reactor/net/address.hpp"
#include "reactor/server/handlers.hpp"

namespace reactor::serve {

/// What a service replies to.
enum class Unit : std::uint8_t {
  bytes,       ///< whatever arrives, in any chunks (echo, upper)
  line,        ///< each line, '\n' included; a last line may lack it (time, print)
  connection,  ///< once per connection (per datagram), before reading anything (greet)
};

/// Where a service's reply goes: the connection (event models), the blocking stream, or the
/// reply datagram. Thread rule: the caller's; one per connection or datagram.
class Reply {
 public:
  /// Sends `bytes` after what was sent before (over datagrams: appends them to the one reply
  /// datagram; a call with no bytes still makes a reply). The bytes are not kept after the
  /// call, so a view of the input will do: echo sends what arrived without a copy of its own.
  virtual void send(std::string_view bytes) = 0;
  /// Memory to build a reply in, kept from unit to unit, so that a transform need not
  /// allocate for every message. One per thread, not per connection: a reply is built and
  /// sent within one call, and ten thousand idle connections should not each keep one.
  static std::string& scratch() noexcept {
    thread_local std::string text;
    return text;
  }

 protected:
  ~Reply() = default;
};

struct Service {
  std::string_view name;
  Unit unit;
  /// Answers one unit from `client` (for Unit::connection the unit is empty) through `out`;
  /// no call of out.send(): no reply. Thread rule: any thread, any process.
  void (*reply)(std::string_view unit, const Address& client, Reply& out);
};

/// The service called `name`, or nullptr.
const Service* find_service(std::string_view name) noexcept;
/// Every service name, in the order of the table above.
std::vector<std::string> service_names();

/// Both stream handler kinds, so that the service runs on every model.
StreamService stream_service(const Service& service);
/// The datagram handler.
DatagramHandler datagram_service(const Service& service);

}  // namespace reactor::serve
