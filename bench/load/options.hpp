// SPDX-License-Identifier: MIT
#pragma once
/// \file
/// What reactor-load was asked to do: the parsed command line, nothing else.

#include <cstdint>
#include <string>
#include <string_view>

namespace reactor::bench::load {

/// How the active connections use the server.
enum class Mode : std::uint8_t {
  kPingPong,  ///< each connection keeps `pipeline` messages outstanding, a new one per echo
  kStream,    ///< each connection writes continuously, at most `window` bytes unechoed
  kConnect,   ///< each slot repeats connect, one round trip of `size` bytes, close
};

/// "pingpong", "stream" or "connect".
constexpr std::string_view mode_name(Mode mode) noexcept {
  switch (mode) {
    case Mode::kPingPong:
      return "pingpong";
    case Mode::kStream:
      return "stream";
    case Mode::kConnect:
      break;
  }
  return "connect";
}

/// The run's parameters. Plain data; main() fills it from the command line.
struct Options {
  std::string connect;                ///< "127.0.0.1:port", "[::1]:port" or "unix:/path"
  Mode mode = Mode::kPingPong;        ///< see Mode
  std::uint32_t conns = 1;            ///< active connections (connect mode: concurrent slots)
  std::uint32_t idle = 0;             ///< extra connections opened first and never used
  std::uint32_t size = 64;            ///< message size in bytes
  std::uint32_t pipeline = 1;         ///< pingpong: messages outstanding per connection
  std::uint32_t window = 256 * 1024;  ///< stream: unechoed bytes allowed per connection
  double seconds = 5;                 ///< length of the measured window
  double warmup = 1;                  ///< traffic before the window, not counted
  double grace = 2;                   ///< after the window: how long outstanding echoes may take
  double connect_timeout = 10;        ///< bound on opening the idle and active connections
  int server_pid = 0;                 ///< 0: none; otherwise the server whose CPU time is reported
};

}  // namespace reactor::bench::load
