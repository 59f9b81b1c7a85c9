// reactor-load: a load generator for echo servers, independent of the reactor library.
//
//   reactor-load --connect ADDR --conns N [--idle I] --size S [--pipeline K] --seconds T
//                [--mode pingpong|stream|connect] [--server-pid PID] [--warmup SEC]
//
// Prints one JSON line (report.hpp) on stdout. Exit status: 0 clean run; 1 a payload mismatch
// (nothing on stdout), any connection error or stall (JSON still printed), or a setup failure;
// 2 bad command line. Diagnostics go to stderr.
#include <csignal>
#include <cstdio>
#include <exception>
#include <string>

#include <CLI/CLI.hpp>

#include "bench/load/echo_stream.hpp"
#include "bench/load/endpoint.hpp"
#include "bench/load/load_run.hpp"
#include "bench/load/options.hpp"
#include "bench/load/report.hpp"

namespace {

using namespace reactor::bench::load;

void add_options(CLI::App& app, Options& o, std::string& mode) {
  app.option_defaults()->always_capture_default();
  app.add_option("--connect", o.connect, "127.0.0.1:PORT, [::1]:PORT or unix:/PATH")->required();
  app.add_option("--conns", o.conns, "active connections (connect mode: concurrent slots)")
      ->check(CLI::Range(1u, 1'000'000u));
  app.add_option("--idle", o.idle, "idle connections opened first, verified open at the end");
  app.add_option("--size", o.size, "message size in bytes")->check(CLI::Range(1u, 1u << 30));
  app.add_option("--pipeline", o.pipeline, "pingpong: messages outstanding per connection")
      ->check(CLI::Range(1u, 1u << 20));
  app.add_option("--seconds", o.seconds, "length of the measured window")
      ->check(CLI::PositiveNumber);
  app.add_option("--mode", mode, "what each connection does")
      ->check(CLI::IsMember({"pingpong", "stream", "connect"}));
  app.add_option("--server-pid", o.server_pid, "report this process's CPU time in the window")
      ->check(CLI::PositiveNumber);
  app.add_option("--warmup", o.warmup, "seconds of unmeasured traffic first")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--grace", o.grace, "seconds the last echoes may take after the window")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--connect-timeout", o.connect_timeout,
                 "seconds allowed for opening the idle and active connections")
      ->check(CLI::PositiveNumber);
  app.add_option("--window", o.window, "stream: unechoed bytes allowed per connection")
      ->check(CLI::Range(1u, 1u << 30));
}

}  // namespace

int main(int argc, char** argv) {
  Options options;
  std::string mode = "pingpong";
  CLI::App app{
      "reactor-load: drives an echo server over loopback TCP or a Unix socket, checks "
      "every echoed byte and prints one JSON line of results."};
  add_options(app, options, mode);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e);
    return code == 0 ? 0 : 2;
  }
  options.mode = mode == "stream"    ? Mode::kStream
                 : mode == "connect" ? Mode::kConnect
                                     : Mode::kPingPong;
  std::signal(SIGPIPE, SIG_IGN);
  try {
    LoadRun run(options, Endpoint::parse(options.connect));
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
