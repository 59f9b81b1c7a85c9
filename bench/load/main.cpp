// SPDX-License-Identifier: MIT
// reactor-load: a load generator for echo servers, independent of the reactor library.
//
//   reactor-load --connect ADDR --conns N [--idle I] --size S [--pipeline K] --seconds T
//                [--mode pingpong|stream|connect] [--server-pid PID] [--warmup SEC]
//
// Prints one JSON line (report.hpp) on stdout. Exit status: 0 clean run; 1 a payload mismatch
// (nothing on stdout), any connection error or stall (JSON still printed), or a setup failure;
// 2 bad command line (one line, "reactor-load: reason"). Diagnostics go to stderr.
#include <csignal>
#include <cstdio>
#include <exception>
#include <optional>
#include <stdexcept>
#include <string>

#include <CLI/CLI.hpp>

#include "bench/load/echo_stream.hpp"
#include "bench/load/endpoint.hpp"
#include "bench/load/load_run.hpp"
#include "bench/load/options.hpp"
#include "bench/load/report.hpp"
#include "reactor/version.hpp"  // the macros only: reactor-load does not link the library
#include "tools/cli_checks.hpp"

namespace {

using namespace reactor::bench::load;
using reactor::tools::count_in;
using reactor::tools::seconds_in;

constexpr double kDay = 86'400;     // the longest time any option may ask for
constexpr int kMaxPid = 4'194'304;  // Linux's PID_MAX_LIMIT

void add_options(CLI::App& app, Options& o, std::string& mode) {
  app.option_defaults()->always_capture_default();
  app.set_version_flag("--version", "reactor-load " REACTOR_VERSION_STRING,
                       "print the version and exit");
  app.add_option("--connect", o.connect, "127.0.0.1:PORT, localhost:PORT, [::1]:PORT or unix:/PATH")
      ->required();
  app.add_option("--conns", o.conns, "active connections (connect mode: concurrent slots)")
      ->transform(count_in(1, 1'000'000));
  app.add_option("--idle", o.idle, "idle connections opened first, verified open at the end")
      ->transform(count_in(0, 1'000'000));
  app.add_option("--size", o.size, "message size in bytes")->transform(count_in(1, 1u << 30));
  app.add_option("--pipeline", o.pipeline, "pingpong: messages outstanding per connection")
      ->transform(count_in(1, 1u << 20));
  app.add_option("--seconds", o.seconds, "length of the measured window")
      ->check(seconds_in(0, kDay, false));
  app.add_option("--mode", mode, "what each connection does")
      ->check(CLI::IsMember({"pingpong", "stream", "connect"}));
  app.add_option("--server-pid", o.server_pid,
                 "report this process's CPU time in the window (0: none)")
      ->transform(count_in(0, kMaxPid));
  app.add_option("--warmup", o.warmup, "seconds of unmeasured traffic first")
      ->check(seconds_in(0, kDay));
  app.add_option("--grace", o.grace, "seconds the last echoes may take after the window")
      ->check(seconds_in(0, kDay));
  app.add_option("--connect-timeout", o.connect_timeout,
                 "seconds allowed for opening the idle and active connections")
      ->check(seconds_in(0, kDay, false));
  app.add_option("--window", o.window, "stream: unechoed bytes allowed per connection")
      ->transform(count_in(1, 1u << 30));
}

}  // namespace

int main(int argc, char** argv) {
  Options options;
  std::string mode = "pingpong";
  CLI::App app{
      "reactor-load: drives an echo server over loopback TCP or a Unix socket, checks "
      "every echoed byte and prints one JSON line of results."};
  add_options(app, options, mode);
  std::optional<Endpoint> endpoint;
  try {
    app.parse(argc, argv);
    endpoint = Endpoint::parse(options.connect);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return app.exit(e);  // --help, --version
    std::fprintf(stderr, "reactor-load: %s\n", reactor::tools::one_line(e).c_str());
    return 2;
  } catch (const std::invalid_argument& e) {  // --connect
    std::fprintf(stderr, "reactor-load: --connect: %s\n", e.what());
    return 2;
  }
  options.mode = mode == "stream"    ? Mode::kStream
                 : mode == "connect" ? Mode::kConnect
                                     : Mode::kPingPong;
  std::signal(SIGPIPE, SIG_IGN);
  try {
    LoadRun run(options, *endpoint);
    const Report report = run.run();
    std::printf("%s\n", to_json(report).c_str());
    std::fflush(stdout);
    if (report.errors.total() != 0) {
      std::fprintf(stderr, "reactor-load: %llu errors; first: %s\n",
                   static_cast<unsigned long long>(report.errors.total()),
                   report.errors.first.c_str());
      return 1;
    }
    return 0;
  } catch (const PayloadMismatch& e) {
    std::fprintf(stderr, "reactor-load: MISMATCH: %s\n", e.what());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "reactor-load: %s\n", e.what());
  }
  return 1;
}
