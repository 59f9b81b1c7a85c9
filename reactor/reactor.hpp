#pragma once
/// \file
/// Every public header of reactor in one include, for programs that would rather not pick:
/// \code
/// #include "reactor/reactor.hpp"
/// \endcode
/// Each header below can also be included on its own (each includes what it needs); a
/// program that uses only the loop compiles faster with reactor/core/reactor.hpp alone.
/// Headers under a detail/ folder, and reactor/core/handler_call.hpp (namespace detail), are
/// not API and are not listed. The install test checks that every other installed header is.

// The loop: Reactor, watchers, timers, signals, and the backend contract.
#include "reactor/core/backend.hpp"
#include "reactor/core/debug.hpp"
#include "reactor/core/io_watcher.hpp"
#include "reactor/core/reactor.hpp"
#include "reactor/core/signal_watcher.hpp"
#include "reactor/core/timer.hpp"

// Connections: addresses, sockets, listeners, connectors, buffered connections, datagrams.
#include "reactor/net/address.hpp"
#include "reactor/net/buffer.hpp"
#include "reactor/net/connection.hpp"
#include "reactor/net/connector.hpp"
#include "reactor/net/datagram.hpp"
#include "reactor/net/listener.hpp"
#include "reactor/net/socket.hpp"

// Servers: Python's socketserver in C++.
#include "reactor/server/access_list.hpp"
#include "reactor/server/blocking_stream.hpp"
#include "reactor/server/datagram_server.hpp"
#include "reactor/server/handlers.hpp"
#include "reactor/server/model.hpp"
#include "reactor/server/options.hpp"
#include "reactor/server/stream_server.hpp"

// Added with their features (issue 11), when they land: the logging hook
// "reactor/core/log.hpp" and the generated "reactor/version.hpp" (configured into the build
// tree and installed). Include them here; the install test fails until they are.
