// SPDX-License-Identifier: MIT
#pragma once
/// \file
/// Command-line checks shared by reactor-serve, reactor-client and reactor-load (CLI11).
/// Each refusal is one phrase, which the program prints as "PROGRAM: --option: phrase"; each
/// program exits 2 for a usage error.

#include <CLI/CLI.hpp>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

namespace reactor::tools {

/// A whole number in [min, max], written with decimal digits only: no sign (so "-5" is
/// refused rather than wrapped), no hex, and a leading 0 is not octal ("010" is ten). The text
/// is rewritten to its plain decimal form before CLI11 converts it, since CLI11 reads a
/// leading 0 as octal: attach it with Option::transform(), not check() (which would rewrite a
/// copy).
inline CLI::Validator count_in(std::uint64_t min, std::uint64_t max) {
  const std::string range = std::to_string(min) + ".." + std::to_string(max);
  return CLI::Validator(
      [min, max, range](std::string& text) -> std::string {
        const bool digits = !text.empty() && text.find_first_not_of("0123456789") == text.npos;
        if (!digits) return "'" + text + "' is not a whole number " + range;
        std::uint64_t value = 0;
        const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
        if (ec != std::errc{} || value < min || value > max)
          return "'" + text + "' is out of range " + range;
        text = std::to_string(value);
        return {};
      },
      range);
}

/// A number of seconds in [min, max] (or (min, max] when `min_allowed` is false): decimal,
/// finite ("inf" and "nan" are refused).
inline CLI::Validator seconds_in(double min, double max, bool min_allowed = true) {
  auto show = [](double v) {
    std::string s = std::to_string(v);
    s.erase(s.find_last_not_of('0') + 1);
    if (s.ends_with('.')) s.pop_back();
    return s;
  };
  const std::string range = (min_allowed ? ">= " : "> ") + show(min) + " and <= " + show(max);
  return CLI::Validator(
      [min, max, min_allowed, range](std::string& text) -> std::string {
        double value = 0;
        const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
        const bool number = !text.empty() && ec == std::errc{} && end == text.data() + text.size();
        if (!number || !std::isfinite(value) || value < min || (value == min && !min_allowed) ||
            value > max)
          return "'" + text + "' is not a number of seconds " + range;
        return {};
      },
      "SECONDS");
}

/// Empty when $REACTOR_BACKEND is unset, empty or one of `known`; otherwise the reason, which
/// names the variable (the default backend "auto" comes from it).
inline std::string backend_env_error(const std::vector<std::string>& known) {
  const char* value = std::getenv("REACTOR_BACKEND");
  if (value == nullptr || *value == '\0') return {};
  std::string list;
  for (const std::string& name : known) {
    if (name == value) return {};
    list += (list.empty() ? "" : ", ") + name;
  }
  return "$REACTOR_BACKEND: unknown backend '" + std::string(value) + "' (compiled in: " + list +
         ")";
}

/// One line for a CLI11 parse error: the message without CLI11's "Run with --help" line.
inline std::string one_line(const CLI::ParseError& e) {
  std::string text = e.what();
  for (char& c : text)
    if (c == '\n') c = ' ';
  return text + " (see --help)";
}

}  // namespace reactor::tools
