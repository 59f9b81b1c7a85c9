#include "bench/load/report.hpp"

#include <cstdio>

namespace reactor::bench::load {

namespace {

// Appends `"key":value` pairs with the commas in between; no nesting beyond what begin/end do.
class JsonLine {
 public:
  JsonLine() { text_ = "{"; }

  void add(const char* key, const std::string& value) {
    put_key(key);
    text_ += '"';
    for (const char c : value) {
      if (c == '"' || c == '\\') {
        text_ += '\\';
        text_ += c;
      } else if (static_cast<unsigned char>(c) < 0x20) {
        char esc[8];
        std::snprintf(esc, sizeof esc, "\\u%04x", c);
        text_ += esc;
      } else {
        text_ += c;
      }
    }
    text_ += '"';
  }
  void add(const char* key, std::uint64_t value) {
    put_key(key);
    text_ += std::to_string(value);
  }
  void add(const char* key, double value, int decimals) {
    put_key(key);
    char number[64];
    std::snprintf(number, sizeof number, "%.*f", decimals, value);
    text_ += number;
  }
  void add_bool(const char* key, bool value) {
    put_key(key);
    text_ += value ? "true" : "false";
  }
  void add_null(const char* key) {
    put_key(key);
    text_ += "null";
  }
  void begin(const char* key) {
    put_key(key);
    text_ += '{';
    first_ = true;
  }
  void end() {
    text_ += '}';
    first_ = false;
  }
  std::string finish() {
    text_ += '}';
    return std::move(text_);
  }

 private:
  void put_key(const char* key) {
    if (!first_) text_ += ',';
    first_ = false;
    text_ += '"';
    text_ += key;
    text_ += "\":";
  }

  std::string text_;
  bool first_ = true;
};

double per(double amount, double over) { return over > 0 ? amount / over : 0.0; }

}  // namespace

std::string to_json(const Report& r) {
  const auto messages = static_cast<double>(r.messages);
  JsonLine j;
  j.add("mode", r.mode);
  j.add("addr", r.address);
  j.add("conns", r.conns);
  j.add("idle", r.idle);
  j.add("size", r.size);
  j.add("pipeline", r.pipeline);
  j.add("warmup", r.warmup, 3);
  j.add("seconds", r.seconds, 6);
  j.add("messages", r.messages);
  j.add("messages_per_s", per(messages, r.seconds), 1);
  if (r.mode == "connect") {
    j.add("connects", r.connects);
    j.add("connects_per_s", per(static_cast<double>(r.connects), r.seconds), 1);
  }
  j.add("bytes", r.bytes);
  j.add("mb_per_s", per(static_cast<double>(r.bytes) / 1e6, r.seconds), 3);
  j.begin("latency_us");
  j.add("p50", r.p50_us, 2);
  j.add("p90", r.p90_us, 2);
  j.add("p99", r.p99_us, 2);
  j.add("p999", r.p999_us, 2);
  j.add("max", r.max_us, 2);
  j.end();
  j.add("latency_samples", r.latency_samples);
  j.add("errors", r.errors.total());
  j.begin("error_kinds");
  j.add("connect", r.errors.connect);
  j.add("reset", r.errors.reset);
  j.add("closed", r.errors.closed);
  j.add("stalled", r.errors.stalled);
  j.add("idle_closed", r.errors.idle_closed);
  j.add("other", r.errors.other);
  j.end();
  j.add("idle_open", r.idle_open);
  j.add("connect_retries", r.connect_retries);
  if (r.server_cpu_us) {
    j.add("server_cpu_us", *r.server_cpu_us);
    j.add("server_cpu_us_per_msg", per(static_cast<double>(*r.server_cpu_us), messages), 3);
    j.add("server_cpu_util", per(static_cast<double>(*r.server_cpu_us) / 1e6, r.seconds), 3);
    j.add_bool("server_cpu_exact", r.server_cpu_exact);
  } else if (r.server_cpu_asked) {
    j.add_null("server_cpu_us");
    j.add_null("server_cpu_us_per_msg");
    j.add_null("server_cpu_util");
  }
  j.add("client_cpu_us", r.client_cpu_us);
  j.add("client_cpu_us_per_msg", per(static_cast<double>(r.client_cpu_us), messages), 3);
  j.add("client_cpu_util", per(static_cast<double>(r.client_cpu_us) / 1e6, r.seconds), 3);
  return j.finish();
}

}  // namespace reactor::bench::load
