// SPDX-License-Identifier: MIT
#include "bench/load/report.hpp"

#include <cmath>
#include <nlohmann/json.hpp>

namespace reactor::bench::load {

namespace {

double per(double amount, double over) { return over > 0 ? amount / over : 0.0; }

// nlohmann prints the shortest text that reads back as the same double; rounding first
// keeps the line short and says how precise each figure is.
double rounded(double value, int decimals) {
  const double scale = std::pow(10.0, decimals);
  return std::round(value * scale) / scale;
}

}  // namespace

std::string to_json(const Report& r) {
  const auto messages = static_cast<double>(r.messages);
  // ordered_json keeps the keys in the order written here, which is the order people read.
  nlohmann::ordered_json j;
  j["mode"] = r.mode;
  j["addr"] = r.address;
  j["conns"] = r.conns;
  j["idle"] = r.idle;
  j["size"] = r.size;
  j["pipeline"] = r.pipeline;
  j["warmup"] = rounded(r.warmup, 3);
  j["seconds"] = rounded(r.seconds, 6);
  j["messages"] = r.messages;
  j["messages_per_s"] = rounded(per(messages, r.seconds), 1);
  if (r.mode == "connect") {
    j["connects"] = r.connects;
    j["connects_per_s"] = rounded(per(static_cast<double>(r.connects), r.seconds), 1);
  }
  j["bytes"] = r.bytes;
  j["mb_per_s"] = rounded(per(static_cast<double>(r.bytes) / 1e6, r.seconds), 3);
  j["latency_us"] = {{"p50", rounded(r.p50_us, 2)},
                     {"p90", rounded(r.p90_us, 2)},
                     {"p99", rounded(r.p99_us, 2)},
                     {"p999", rounded(r.p999_us, 2)},
                     {"max", rounded(r.max_us, 2)}};
  j["latency_samples"] = r.latency_samples;
  j["errors"] = r.errors.total();
  j["error_kinds"] = {{"connect", r.errors.connect},         {"reset", r.errors.reset},
                      {"closed", r.errors.closed},           {"stalled", r.errors.stalled},
                      {"idle_closed", r.errors.idle_closed}, {"other", r.errors.other}};
  j["idle_open"] = r.idle_open;
  j["connect_retries"] = r.connect_retries;
  if (r.server_cpu_us) {
    const auto cpu = static_cast<double>(*r.server_cpu_us);
    j["server_cpu_us"] = *r.server_cpu_us;
    j["server_cpu_us_per_msg"] = rounded(per(cpu, messages), 3);
    j["server_cpu_util"] = rounded(per(cpu / 1e6, r.seconds), 3);
    j["server_cpu_exact"] = r.server_cpu_exact;
  } else if (r.server_cpu_asked) {
    j["server_cpu_us"] = nullptr;
    j["server_cpu_us_per_msg"] = nullptr;
    j["server_cpu_util"] = nullptr;
  }
  const auto client_cpu = static_cast<double>(r.client_cpu_us);
  j["client_cpu_us"] = r.client_cpu_us;
  j["client_cpu_us_per_msg"] = rounded(per(client_cpu, messages), 3);
  j["client_cpu_util"] = rounded(per(client_cpu / 1e6, r.seconds), 3);
  // Strings reach here from the command line: replace, not throw, on invalid UTF-8.
  return j.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
}

}  // namespace reactor::bench::load
