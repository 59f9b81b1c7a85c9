// SPDX-License-Identifier: MIT
// reactor-serve: the tutorial services on any transport, model and backend, in one program.
//   reactor-serve upper --model threading
//   reactor-serve time --transport udp --bind 127.0.0.1:0
//   reactor-serve echo --transport unix-stream --bind unix:@echo --model pool --threads 4
// It prints "listening on ADDR" once ready and a summary when SIGINT or SIGTERM stops it.
// Exit status: 0 after a clean stop (and for --help, --version), 2 for bad options (one line,
// "reactor-serve: reason"), 1 when the server cannot start.
#include <sys/resource.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <string>

#include "reactor/server/datagram_server.hpp"
#include "reactor/server/stream_server.hpp"
#include "reactor/version.hpp"
#include "services.hpp"
#include "tools/cli_checks.hpp"

using namespace reactor;

namespace {

struct Flags {
  std::string service;
  std::string transport = "tcp";
  std::string bind = "127.0.0.1:21567";
  std::string backend = "auto";
  std::string model = "reactor";
  unsigned threads = 0;
  std::size_t max_children = 40;
  std::size_t max_threads = 1024;
  std::size_t max_connections = 0;
  double idle_timeout = 0;
  double shutdown_drain = 3;
};

// The bounds of the options, said in --help: enough for any real use, and small enough that
// a typo cannot ask for gigabytes of threads.
constexpr unsigned kMaxThreads = 256;
constexpr std::size_t kMaxChildren = 4096;
constexpr std::size_t kMaxHandlerThreads = 16384;
constexpr std::size_t kMaxConnections = 1'000'000;
constexpr double kMaxSeconds = 86'400;

struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// The address to bind, checked against the transport.
Address bind_address(const Flags& flags) {
  std::error_code ec;
  Address address = Address::parse(flags.bind, ec);
  if (ec) {
    throw UsageError("--bind: bad address '" + flags.bind +
                     "': " + std::string(Address::parse_error(flags.bind)));
  }
  const bool wants_unix = flags.transport.starts_with("unix-");
  if (address.is_unix() != wants_unix) {
    throw UsageError("--bind " + flags.bind + " does not suit --transport " + flags.transport +
                     (wants_unix ? " (use unix:/PATH or unix:@NAME)" : " (use IP:PORT)"));
  }
  return address;
}

// What the parser cannot check alone. With no --transport, a unix: address means
// unix-stream (an explicit --transport must then suit the address: bind_address() checks).
// The default backend "auto" is $REACTOR_BACKEND's, so a bad value there is named as such.
void check_flags(const CLI::App& app, Flags& flags) {
  if (app.count("--transport") == 0 && flags.bind.starts_with("unix:"))
    flags.transport = "unix-stream";
  if (flags.backend == "auto") {
    if (std::string why = tools::backend_env_error(available_backends()); !why.empty())
      throw UsageError(why);
  }
}

ServerOptions server_options(const Flags& flags) {
  ServerOptions o;
  o.model = *parse_model(flags.model);  // checked by the parser
  o.backend = flags.backend;
  o.threads = flags.threads;
  o.max_children = flags.max_children;
  o.max_threads = flags.max_threads;
  o.max_connections = flags.max_connections;
  o.idle_timeout = std::chrono::milliseconds(std::llround(flags.idle_timeout * 1000));
  // Not loop().on_signal(): these reach the server even while a sync handler holds its
  // loop, and cancel the handlers' waits at once.
  o.shutdown_signals = {SIGINT, SIGTERM};
  o.shutdown_drain = std::chrono::milliseconds(std::llround(flags.shutdown_drain * 1000));
  // As Python's UDPServer: on UDP, SO_REUSEADDR would let a second server share the port.
  o.allow_reuse_address = flags.transport != "udp";
  return o;
}

// Many clients need many fds: take the whole allowance the hard limit grants.
void raise_fd_limit() {
  rlimit limit{};
  if (::getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur < limit.rlim_max) {
    limit.rlim_cur = limit.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &limit);
  }
}

// The same few steps for a StreamServer or a DatagramServer: announce the address, serve
// until a shutdown signal, close, report.
template <typename Server>
void run(Server& server) {
  std::printf("listening on %s\n", server.address().to_string().c_str());
  std::fflush(stdout);
  const auto start = std::chrono::steady_clock::now();
  server.serve_forever();
  server.server_close();  // joins the threads and reaps the children: the counts are final

  const ServerStats stats = server.stats();
  const std::chrono::duration<double> took = std::chrono::steady_clock::now() - start;
  // A client served to its last answer counts as served even if shutdown closed it.
  auto n = [](std::uint64_t v) { return static_cast<unsigned long long>(v); };
  std::fprintf(stderr,
               "served %llu of %llu accepted (%llu cut at shutdown, %llu timed out, %llu errors, "
               "%llu rejected) in %.1f s\n",
               n(stats.handled), n(stats.accepted), n(stats.cut), n(stats.timeouts),
               n(stats.errors), n(stats.rejected), took.count());
}

}  // namespace

int main(int argc, char** argv) {
  Flags flags;
  CLI::App app{"Serves one of the tutorial services until SIGINT or SIGTERM."};
  app.add_option("SERVICE", flags.service, "echo, upper, time, greet or print")
      ->required()
      ->check(CLI::IsMember(serve::service_names()));
  app.set_version_flag("--version", std::string("reactor-serve ") + version_string(),
                       "print the version and exit");
  app.add_option("--transport", flags.transport,
                 "tcp, udp, unix-stream or unix-dgram (default: unix-stream for a unix: --bind)")
      ->check(CLI::IsMember({"tcp", "udp", "unix-stream", "unix-dgram"}))
      ->capture_default_str();
  app.add_option("--bind", flags.bind, "IP:PORT (port 0: any free one), unix:/PATH, unix:@NAME")
      ->capture_default_str();
  std::vector<std::string> backends = available_backends();
  backends.insert(backends.begin(), "auto");
  app.add_option("--backend", flags.backend, "the loops' backend")
      ->check(CLI::IsMember(backends))
      ->capture_default_str();
  app.add_option("--model", flags.model, "sync, threading, forking, reactor or pool")
      ->check(CLI::IsMember({"sync", "threading", "forking", "reactor", "pool"}))
      ->capture_default_str();
  app.add_option("--threads", flags.threads, "pool: loops, at most 256 (0: one per core)")
      ->transform(tools::count_in(0, kMaxThreads));
  app.add_option("--max-children", flags.max_children, "forking: children at once, 1 to 4096")
      ->transform(tools::count_in(1, kMaxChildren))
      ->capture_default_str();
  app.add_option("--max-threads", flags.max_threads,
                 "threading: handler threads at once, 1 to 16384")
      ->transform(tools::count_in(1, kMaxHandlerThreads))
      ->capture_default_str();
  app.add_option("--max-connections", flags.max_connections,
                 "clients at once, at most 1000000 (0: no limit)")
      ->transform(tools::count_in(0, kMaxConnections));
  app.add_option("--idle-timeout", flags.idle_timeout,
                 "close a client silent this long, at most 86400 s (0: never)")
      ->check(tools::seconds_in(0, kMaxSeconds));
  app.add_option("--shutdown-drain", flags.shutdown_drain,
                 "on SIGINT/SIGTERM, let clients finish this long before cutting them, at most "
                 "86400 s")
      ->check(tools::seconds_in(0, kMaxSeconds))
      ->capture_default_str();

  try {
    app.parse(argc, argv);
    check_flags(app, flags);
    const Address address = bind_address(flags);
    const serve::Service& service = *serve::find_service(flags.service);
    const ServerOptions options = server_options(flags);
    raise_fd_limit();
    if (flags.transport == "tcp" || flags.transport == "unix-stream") {
      StreamServer server(address, serve::stream_service(service), options);
      run(server);
    } else {
      DatagramServer server(address, serve::datagram_service(service), options);
      run(server);
    }
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return app.exit(e);  // --help, --version
    std::fprintf(stderr, "reactor-serve: %s\n", tools::one_line(e).c_str());
    return 2;
  } catch (const UsageError& e) {
    std::fprintf(stderr, "reactor-serve: %s\n", e.what());
    return 2;
  } catch (const std::system_error& e) {  // EADDRINUSE, EACCES, ...
    std::fprintf(stderr, "reactor-serve: cannot serve on %s: %s\n", flags.bind.c_str(),
                 e.code().message().c_str());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "reactor-serve: %s\n", e.what());
    return 1;
  }
  return 0;
}
